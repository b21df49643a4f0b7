// swift-tools-version: 6.2
import PackageDescription

let strictSwift6: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "apheresisd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "apheresisd", targets: ["apheresisd"]),
        .executable(name: "optia-sim", targets: ["optia-sim"]),
        .executable(name: "apheresisctl", targets: ["apheresisctl"]),
        .library(name: "SeparatorProtocol", targets: ["SeparatorProtocol"]),
        // For the benchmark package (Benchmarks/), which measures the ingest path from outside.
        .library(name: "ApheresisCore", targets: ["ApheresisCore"]),
        .library(name: "RecordStore", targets: ["RecordStore"]),
        .library(name: "LiveState", targets: ["LiveState"]),
        .library(name: "Ingest", targets: ["Ingest"]),
        .library(name: "SimulatorKit", targets: ["SimulatorKit"]),
        // For the fuzz package (Fuzz/): the libFuzzer targets call these entries.
        .library(name: "FuzzEntries", targets: ["FuzzEntries"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // TLS to the hospital's interface engine (HospitalLink): SwiftNIO's own TLS, BoringSSL inside.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // The central record (docs/central.md): PostgreSQL's wire protocol on SwiftNIO, TLS through
        // swift-nio-ssl already here; the maintained Swift client of the server (Vapor's, used alone).
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // C libraries from Debian (apt: libserialport-dev, libsystemd-dev).
        .systemLibrary(
            name: "CSerialPort",
            pkgConfig: "libserialport",
            providers: [.apt(["libserialport-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),

        .target(name: "CPosix"),
        // libzint draws the Code 128 symbols of label previews (apt: libzint-dev; Debian ships no .pc file).
        .systemLibrary(name: "CZint", providers: [.apt(["libzint-dev"])]),
        // libsodium: Argon2id password hashes (apt: libsodium-dev).
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),

        // Pure modules: values in, values out, no I/O.
        .target(name: "Quantities", swiftSettings: strictSwift6),
        // Small text formats several modules write and read alike: fixed-width hex, host:port.
        .target(name: "TextFormats", swiftSettings: strictSwift6),
        // The version every executable prints for --version (one constant; bump it there).
        .target(name: "ApheresisVersion", swiftSettings: strictSwift6),
        .target(name: "SeparatorProtocol", swiftSettings: strictSwift6),

        .target(name: "ApheresisCore", dependencies: ["Quantities", "SeparatorProtocol"], swiftSettings: strictSwift6),
        .target(name: "ISBT128", swiftSettings: strictSwift6),
        // HL7 v2 for the hospital's interface engine: IHE PCD-01/PCD-04 messages, MLLP framing, ACKs; pure.
        .target(name: "HL7", swiftSettings: strictSwift6),
        // The settings the cell lab's workflow runs by (product, labels, printer address), as values:
        // DaemonConfiguration reads them from TOML, ProductWorkflow uses them, neither imports the other.
        .target(name: "WorkflowSettings", dependencies: ["ApheresisCore", "TextFormats"], swiftSettings: strictSwift6),
        .target(name: "Credentials", dependencies: ["CSodium"], swiftSettings: strictSwift6),

        // Cryostorage labels: one layout, rendered as ZPL, PDF and SVG; pure.
        .target(name: "Labels", dependencies: ["CZint"], swiftSettings: strictSwift6),
        // Outgoing TCP connections' failures in an admin's words (label printer, hospital interface).
        .target(
            name: "ConnectionErrorText",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strictSwift6
        ),
        // The raw TCP label printer client, on SwiftNIO (Labels stays pure rendering).
        .target(
            name: "LabelPrinting",
            dependencies: [
                "TextFormats", "ConnectionErrorText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),

        // The store: SQLite through GRDB.
        .target(
            name: "RecordStore",
            dependencies: [
                "Quantities", "SeparatorProtocol", "ApheresisCore", "TextFormats", "HL7",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                // The audit trail's heads go to the journal through swift-log (docs/products.md).
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),

        // Configuration file (TOML) and procedure profiles.
        .target(
            name: "DaemonConfiguration",
            dependencies: [
                "Quantities", "SeparatorProtocol", "ApheresisCore", "ISBT128", "TextFormats", "WorkflowSettings",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strictSwift6
        ),

        // The cell lab's workflow: products, lab values, release, labels (CLI and API share it).
        .target(
            name: "ProductWorkflow",
            dependencies: [
                "ApheresisCore", "Quantities", "RecordStore", "ISBT128", "Labels", "LabelPrinting", "Credentials",
                "WorkflowSettings",
            ],
            swiftSettings: strictSwift6
        ),

        // What the daemon knows now and the store does not: link health, the live feed and its
        // events, each run's watch. Ingest writes it; the web edge reads it.
        .target(
            name: "LiveState",
            dependencies: ["ApheresisCore", "Quantities", "RecordStore"],
            swiftSettings: strictSwift6
        ),

        // The path of every message: decode (by the link's dialect), judge, commit, publish; live
        // links and export files through one entry point, in one turn per device.
        .target(
            name: "Ingest",
            dependencies: [
                "ApheresisCore", "SeparatorProtocol", "RecordStore", "LiveState",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),

        // The hospital interface: sends the store's HL7 outbox to each destination over MLLP (SwiftNIO).
        .target(
            name: "HospitalLink",
            dependencies: [
                "HL7", "RecordStore", "LiveState", "TextFormats", "ConnectionErrorText",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),

        // The central record in PostgreSQL: its schema and migrations, replication of a workstation's
        // store into it, DIN blocks, and the reads of the central dashboard (docs/central.md).
        .target(
            name: "CentralStore",
            dependencies: [
                "RecordStore", "LiveState", "DaemonConfiguration",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),
        // `apheresisd --central`: the dashboard and read API over the central database.
        .target(
            name: "CentralWeb",
            dependencies: [
                "CentralStore", "WebEdge",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("Page/central.html")],
            swiftSettings: strictSwift6
        ),

        // The unit's view over HTTP: API, live stream, dashboard, metrics. An edge: nothing inside imports it.
        .target(
            name: "WebEdge",
            dependencies: [
                "ProductWorkflow", "WorkflowSettings", "RecordStore", "ApheresisCore", "SeparatorProtocol", "Quantities",
                "LiveState", "TextFormats", "ApheresisVersion",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The dashboard's files, compiled in as byte arrays (PackageResources.index_html, ...):
            // nothing to install beside the binary, and no Bundle.module.
            resources: [
                .embedInCode("Dashboard/index.html"),
                .embedInCode("Dashboard/dashboard.css"),
                .embedInCode("Dashboard/dashboard.js"),
                .embedInCode("OpenAPI/openapi.json"),
            ],
            swiftSettings: strictSwift6
        ),

        // sd_notify, watchdog, journal.
        .target(
            name: "SystemdSupport",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),

        // The daemon: links, receiving, watching, storing, as services.
        .target(
            name: "ApheresisDaemon",
            dependencies: [
                "SeparatorProtocol", "ApheresisCore", "RecordStore", "DaemonConfiguration",
                "SystemdSupport", "DeviceLinks", "WebEdge", "ProductWorkflow", "LiveState", "Ingest", "HL7", "HospitalLink",
                "CentralStore", "ApheresisVersion",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "apheresisd",
            dependencies: [
                "ApheresisDaemon", "DaemonConfiguration", "SystemdSupport", "ApheresisVersion", "SimulatorKit", "TextFormats",
                "CentralStore", "CentralWeb",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6
        ),

        .executableTarget(
            name: "apheresisctl",
            dependencies: [
                "ProductWorkflow", "WorkflowSettings", "RecordStore", "DaemonConfiguration", "ApheresisCore", "Quantities",
                "SeparatorProtocol", "ApheresisVersion", "CentralStore",
                // The audit heads apheresisctl writes go to the journal too (docs/products.md).
                "SystemdSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift6
        ),

        // File descriptors: pseudo-terminals, serial ports, TCP sockets.
        .target(name: "DeviceLinks", dependencies: ["CSerialPort", "CPosix", "TextFormats"], swiftSettings: strictSwift6),

        // The simulator of the separator.
        .target(
            name: "SimulatorKit",
            dependencies: [
                "Quantities", "SeparatorProtocol", "DeviceLinks", "TextFormats",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            path: "simulator/SimulatorKit",
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "optia-sim",
            dependencies: [
                "SimulatorKit", "SeparatorProtocol", "Quantities", "DeviceLinks", "ApheresisVersion",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "simulator/optia-sim",
            swiftSettings: strictSwift6
        ),

        // One entry per untrusted-input surface, with the invariants that must hold on any bytes:
        // the fuzz targets (Fuzz/) and FuzzRegressionTests call them alike.
        .target(
            name: "FuzzEntries",
            dependencies: ["SeparatorProtocol", "DaemonConfiguration", "WebEdge"],
            swiftSettings: strictSwift6
        ),

        .testTarget(
            name: "SeparatorProtocolTests",
            dependencies: [
                "SeparatorProtocol",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SimulatorKitTests",
            dependencies: ["SimulatorKit", "SeparatorProtocol", "Quantities"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "ApheresisCoreTests",
            dependencies: ["ApheresisCore", "SeparatorProtocol", "Quantities", "SimulatorKit"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "RecordStoreTests",
            dependencies: [
                "RecordStore", "ApheresisCore", "SeparatorProtocol", "Quantities",
                .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "DaemonConfigurationTests",
            dependencies: ["DaemonConfiguration", "WorkflowSettings", "ApheresisCore", "SeparatorProtocol", "Quantities"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "HL7Tests", dependencies: ["HL7", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strictSwift6),
        .testTarget(name: "TextFormatsTests", dependencies: ["TextFormats"], swiftSettings: strictSwift6),
        .testTarget(name: "CredentialsTests", dependencies: ["Credentials"], swiftSettings: strictSwift6),
        .testTarget(
            name: "WebEdgeTests",
            dependencies: [
                "WebEdge", "ProductWorkflow", "RecordStore", "WorkflowSettings", "LiveState", "ApheresisVersion",
                .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift6),
        .testTarget(name: "LiveStateTests", dependencies: ["LiveState"], swiftSettings: strictSwift6),
        // The ingest contract in process: a real SQLite file, no child process.
        .testTarget(
            name: "IngestTests",
            dependencies: [
                "Ingest", "LiveState", "RecordStore", "ApheresisCore", "SeparatorProtocol", "HL7", "PipelineTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "ISBT128Tests",
            dependencies: ["ISBT128", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "LabelsTests",
            dependencies: ["Labels"],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "LabelPrintingTests",
            dependencies: [
                "LabelPrinting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "SystemdSupportTests",
            dependencies: ["SystemdSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift6
        ),
        // What fuzzing found (Inputs/<target>/) and hand-made hostile inputs, through FuzzEntries.
        .testTarget(
            name: "FuzzRegressionTests",
            dependencies: ["FuzzEntries", "SeparatorProtocol"],
            exclude: ["Inputs"],
            swiftSettings: strictSwift6
        ),
        // The ingest pipeline over a real store file, fed a scenario from the real simulator engine.
        .target(
            name: "PipelineTestSupport",
            dependencies: [
                "Ingest", "LiveState", "RecordStore", "ApheresisCore", "SeparatorProtocol", "SimulatorKit",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/Support/PipelineTestSupport", swiftSettings: strictSwift6),
        // A PostgreSQL cluster of a test's own (initdb/pg_ctl in a temporary directory, loopback):
        // for the central database's tests, in process and with daemons.
        .target(name: "PostgresTestCluster", path: "Tests/Support/PostgresTestCluster", swiftSettings: strictSwift6),
        // Replication into a real PostgreSQL from a real SQLite store, in process.
        .testTarget(
            name: "CentralStoreTests",
            dependencies: [
                "CentralStore", "RecordStore", "LiveState", "PipelineTestSupport", "PostgresTestCluster",
                .product(name: "Logging", package: "swift-log"), .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: strictSwift6
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "SeparatorProtocol", "SimulatorKit", "DeviceLinks", "RecordStore", "ApheresisCore",
                "ProductWorkflow", "WorkflowSettings", "DaemonConfiguration", "Labels", "Quantities", "PostgresTestCluster",
                "PipelineTestSupport", "ApheresisVersion",
            ],
            resources: [],
            swiftSettings: strictSwift6
        ),
    ]
)
