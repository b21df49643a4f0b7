import Foundation
import RecordStore
import SeparatorProtocol
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// No DIN is ever issued twice, even when apheresisctl is killed (SIGKILL) at any moment of an
/// assignment: each is one SQLite transaction, committed with synchronous = FULL or not at all.
extension Integration {
    @Suite("DIN assignment under kill -9", .serialized)
    struct DINAssignmentTests {
        static let device = DeviceIdentity(model: "OPTIA-SIM", softwareVersion: "1.0", serialNumber: "1OPT00555")
        static let start = DeviceTimestamp(year: 2026, month: 11, day: 24, hour: 9, minute: 0, second: 0)!

        /// A closed run with a collected volume: RUN_START, one TICK, RUN_END.
        static func closedRun(_ n: Int, store: RecordStore) async throws {
            let order = Order(runID: "KILL-\(n)", procedure: .cmnc, runStart: start)
            let patient = Patient(
                id: "P-\(n)", familyName: "Test", givenName: "Child", birthDate: CalendarDate(year: 2016, month: 3, day: 12),
                sex: .male, heightCentimetres: 138, weightKilograms: 32)
            let end = start.adding(seconds: 3600)
            let messages = [
                SeparatorMessage(
                    sequenceNumber: UInt64(n * 3 + 1), device: device, timestamp: start, kind: .runStart, patient: patient,
                    order: order, results: []),
                SeparatorMessage(
                    sequenceNumber: UInt64(n * 3 + 2), device: device, timestamp: end, kind: .runEnd, patient: patient, order: order,
                    results: [
                        ResultRecord(sequence: 1, code: .runTime, value: .number(60), unit: "min", timestamp: end),
                        ResultRecord(sequence: 2, code: .collectVolume, value: .number(180), unit: "mL", timestamp: end),
                    ]),
            ]
            for m in messages {
                _ = try await store.commit(m, raw: E1394Encoder.encode(m), receivedAtUnixMilliseconds: 1_795_000_000_000)
            }
        }

        @Test("products created while apheresisctl is killed at random moments: every DIN once, none reused")
        func killNineDuringAssignment() async throws {
            let directory = try Paths.temporaryDirectory("din-kill")
            defer { try? FileManager.default.removeItem(at: directory) }
            let state = directory.appendingPathComponent("state")
            let database = state.appendingPathComponent("apheresisd.sqlite").path
            let configPath = directory.appendingPathComponent("apheresisd.toml")
            try """
            format = 1
            [daemon]
            state_directory = "\(state.path)"
            [product]
            facility_identification_number = "G1234"
            facility_name = "Test"
            product_description_code = "S1234"
            """.write(to: configPath, atomically: true, encoding: .utf8)
            let runs = 24
            let store = try await RecordStore.open(path: database)
            for n in 0..<runs { try await Self.closedRun(n, store: store) }
            let refs = try await store.runs().map(\.id)
            #expect(refs.count == runs)
            let config = ["--config", configPath.path]
            var r = try Ctl.run(["user", "add", "sup", "--full-name", "S", "--role", "supervisor"] + config, stdin: ["sup-password-1", "sup-password-1"], in: directory)
            #expect(r.status == 0, "\(r)")
            r = try Ctl.run(
                ["user", "add", "lab1", "--full-name", "L", "--role", "lab", "--by", "sup"] + config,
                stdin: ["sup-password-1", "lab-password-1", "lab-password-1"], in: directory)
            #expect(r.status == 0, "\(r)")

            // Kill each create after a pseudo-random delay spanning its whole life (password hash
            // check ~0.2 s, then the transaction), measured on the first one, which runs to its end: a
            // slower build (a sanitizer's) has a longer life, and the kills must still land all over it.
            var generator = SplitMix(seed: 4)
            var completed: [Int64: String] = [:]  // run -> what apheresisctl printed
            var killed = 0
            var lifeMilliseconds = 0
            for ref in refs {
                let started = ContinuousClock.now
                let running = try Ctl.start(["product", "create", "--run", String(ref), "--user", "lab1"] + config, stdin: ["lab-password-1"], in: directory)
                if lifeMilliseconds == 0 {
                    running.process.waitUntilExit()
                    let life = ContinuousClock.now - started
                    lifeMilliseconds = max(1, Int(life.components.seconds * 1000 + life.components.attoseconds / 1_000_000_000_000_000))
                }
                try await Task.sleep(for: .milliseconds(Int(generator.next() % UInt64(lifeMilliseconds * 13 / 10))))
                if running.process.isRunning {
                    kill(running.process.processIdentifier, SIGKILL)
                    killed += 1
                }
                running.process.waitUntilExit()
                let result = running.result()
                if running.process.terminationReason == .exit, result.status == 0 { completed[ref] = result.stdout }
            }
            #expect(killed > 0 && killed < runs, "killed \(killed) of \(runs): the delays did not span the process's life")

            // Finish the runs whose create was killed before its commit.
            let made = Set(try await store.products().map(\.runRef))
            for ref in refs where !made.contains(ref) {
                r = try Ctl.run(["product", "create", "--run", String(ref), "--user", "lab1"] + config, stdin: ["lab-password-1"], in: directory)
                #expect(r.status == 0, "\(r)")
            }
            let products = try await store.products()
            #expect(products.count == runs)
            #expect(Set(products.map(\.din)).count == runs)
            #expect(Set(products.map(\.dinSequence)).count == runs)
            #expect(Set(products.map(\.runRef)).count == runs)
            // Every DIN a finished process reported is in the store, for the run it named.
            let byRun = Dictionary(uniqueKeysWithValues: products.map { ($0.runRef, $0) })
            #expect(!completed.isEmpty)
            for (ref, printed) in completed {
                let product = try #require(byRun[ref], "run \(ref) reported \(printed) but has no product")
                let eyeReadable = "\(product.din.prefix(5)) \(product.din.dropFirst(5).prefix(2)) \(product.din.suffix(6))"
                #expect(printed.contains("DIN \(eyeReadable)"), "run \(ref): printed \(printed), stored \(product.din)")
            }
            // Sequences are spent in order and none was handed out twice; the counter matches.
            let sequences = products.map(\.dinSequence).sorted()
            #expect(sequences == Array(1...runs), "\(sequences)")
            let verification = try await store.verifyAudit()
            #expect(verification.isIntact, "\(verification.problems)")
            try await store.close()
        }
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
