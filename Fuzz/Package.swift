// swift-tools-version: 6.2
// The libFuzzer targets live in their own package so that the project's build never links
// libFuzzer (whose `main` replaces the program's). Each target is only the libFuzzer entry point
// around one function of FuzzEntries (Sources/FuzzEntries), where the invariants are.
// Build and run them through the Makefile (`make fuzz`, `make fuzz-smoke`; mk/fuzz.mk).
import PackageDescription

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

/// One executable per surface, named `fuzz-<target>` after `FuzzTarget`'s names.
func fuzzTarget(_ name: String) -> Target {
    .executableTarget(
        name: "fuzz-\(name)",
        dependencies: [.product(name: "FuzzEntries", package: "apheresisd")],
        swiftSettings: swift6
    )
}

let package = Package(
    name: "apheresisd-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        // Named, because a path dependency is otherwise known by its folder name, which differs between clones.
        .package(name: "apheresisd", path: "..")
    ],
    targets: ["e1381", "e1394", "export-csv", "config", "api-bodies"].map(fuzzTarget)
)
