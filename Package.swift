// swift-tools-version: 6.2
import PackageDescription

let strictSwift6: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "apheresisd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "optia-sim", targets: ["optia-sim"]),
        .library(name: "SeparatorProtocol", targets: ["SeparatorProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
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

        // Pure modules: values in, values out, no I/O.
        .target(name: "Quantities", swiftSettings: strictSwift6),
        .target(name: "SeparatorProtocol", dependencies: ["Quantities"], swiftSettings: strictSwift6),

        // File descriptors: pseudo-terminals, serial ports, TCP sockets.
        .target(name: "DeviceLinks", dependencies: ["CSerialPort", "CPosix"], swiftSettings: strictSwift6),

        // The simulator of the separator.
        .target(
            name: "SimulatorKit",
            dependencies: [
                "Quantities", "SeparatorProtocol", "DeviceLinks",
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            path: "simulator/SimulatorKit",
            swiftSettings: strictSwift6
        ),
        .executableTarget(
            name: "optia-sim",
            dependencies: [
                "SimulatorKit", "SeparatorProtocol", "DeviceLinks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "simulator/optia-sim",
            swiftSettings: strictSwift6
        ),

        .testTarget(
            name: "SeparatorProtocolTests",
            dependencies: [
                "SeparatorProtocol", "Quantities",
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
            name: "IntegrationTests",
            dependencies: ["SeparatorProtocol", "SimulatorKit", "DeviceLinks"],
            resources: [],
            swiftSettings: strictSwift6
        ),
    ]
)
