// swift-tools-version: 6.2
// The benchmarks live in their own package so that the project's build (and CI's
// `swift build --build-tests`) never resolves or compiles package-benchmark.
// Run them through the Makefile (`make bench`, `make bench-check`, `make bench-smoke`).
import Foundation
import PackageDescription

// APHERESISD_PATH measures another checkout (e.g. the commit before a change) with the same benchmarks.
let projectPath = ProcessInfo.processInfo.environment["APHERESISD_PATH"] ?? ".."
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "apheresisd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its folder name, which differs between clones.
        .package(name: "apheresisd", path: projectPath),
        // Its default traits need a package the local mirror lacks; MallocInterposer alone gives the malloc counters.
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        // The ingest benchmark silences the pipeline's journal lines.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(
            name: "BenchSupport",
            dependencies: [.product(name: "SeparatorProtocol", package: "apheresisd")],
            swiftSettings: swift6
        ),
        // Writes the decode stream file that ProtocolDecode and scripts/bench/astm_anchor.py read.
        .executableTarget(name: "bench-stream", dependencies: ["BenchSupport"], swiftSettings: swift6),
        // Decode passes for valgrind (scripts/bench/counts.py): instruction and malloc counts without perf counters.
        .executableTarget(name: "bench-count", dependencies: ["BenchSupport"], swiftSettings: swift6),
        // The system SQLite (apt: libsqlite3-dev), the one GRDB links here too.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .executableTarget(
            name: "StoreAnchor",
            dependencies: ["BenchSupport", "CSQLite", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/StoreAnchor",
            swiftSettings: swift6,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The ingest path in process: IngestPipeline over a real SQLite file (docs/performance.md).
        .executableTarget(
            name: "IngestPath",
            dependencies: [
                .product(name: "Ingest", package: "apheresisd"), .product(name: "LiveState", package: "apheresisd"),
                .product(name: "RecordStore", package: "apheresisd"), .product(name: "ApheresisCore", package: "apheresisd"),
                .product(name: "SeparatorProtocol", package: "apheresisd"), .product(name: "SimulatorKit", package: "apheresisd"),
                .product(name: "Logging", package: "swift-log"), .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/IngestPath",
            swiftSettings: swift6,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ProtocolDecode",
            dependencies: ["BenchSupport", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/ProtocolDecode",
            swiftSettings: swift6,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
