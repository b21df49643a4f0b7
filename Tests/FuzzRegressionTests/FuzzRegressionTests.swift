import Foundation
import FuzzEntries
import Testing

/// Every input fuzzing found (`Inputs/<target>/<kind>-<sha1>`, kept by scripts/fuzz/run_fuzz.py)
/// replayed through the same FuzzEntries function the fuzz target calls, in the normal build. Each
/// target's inputs run in a child process, so that an input that traps again fails its target's
/// test with the broken invariant's message instead of ending the whole test run.
@Suite struct FuzzRegressionTests {
    static let inputs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Inputs")

    static func found(_ target: FuzzTarget) -> [URL] {
        let directory = inputs.appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    /// Traps, as the fuzz target did, on an input that breaks an invariant again; an input that hung
    /// must now take well under libFuzzer's 5 s (this build has no sanitizer to slow it down).
    static func replay(_ target: FuzzTarget) throws {
        for url in found(target) {
            let data = Array(try Data(contentsOf: url))
            let elapsed = ContinuousClock().measure { target.run(data) }
            let hung = url.lastPathComponent.hasPrefix("timeout-")
            precondition(!hung || elapsed < .seconds(2), "\(target.rawValue)/\(url.lastPathComponent) still takes \(elapsed)")
        }
    }

    /// The status a replay child exits with when every input passed. Not 0: an exit test that
    /// fails returns no result, and the broken invariant's message is in the child's stderr.
    static let replayedAll: CInt = 3

    @Test(arguments: FuzzTarget.allCases)
    func foundInputsStayFixed(_ target: FuzzTarget) async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { [target] in
            try FuzzRegressionTests.replay(target)
            exit(FuzzRegressionTests.replayedAll)
        }
        guard let result else { return }
        #expect(
            result.exitStatus == .exitCode(Self.replayedAll),
            "an input of Inputs/\(target.rawValue)/ breaks an invariant again:\n\(String(decoding: result.standardErrorContent, as: UTF8.self))")
    }

    /// The kept inputs are named by their content, as run_fuzz.py names them.
    @Test func foundInputsAreNamedByKindAndContent() throws {
        for target in FuzzTarget.allCases {
            for url in Self.found(target) {
                let name = url.lastPathComponent
                let kind = name.split(separator: "-").first.map(String.init) ?? ""
                #expect(["crash", "timeout", "leak", "oom"].contains(kind), "\(target.rawValue)/\(name)")
                #expect(name.count == kind.count + 1 + 40, "\(target.rawValue)/\(name): not <kind>-<sha1>")
            }
        }
    }
}
