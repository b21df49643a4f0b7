import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

/// Products, DINs, users, signatures, prints and the audit chain, on real SQLite files.
@Suite("Products and the audit trail")
struct ProductStoreTests {
    static let hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"

    /// A closed run (the fixture's whole run), a supervisor and a lab user.
    static func prepared(_ dir: borrowing TempDirectory, runs: Int = 1) async throws -> (RecordStore, [Int64], UserRow) {
        let store = try await RecordStore.open(path: dir.file())
        var refs: [Int64] = []
        for r in 0..<runs {
            for m in Fixture.wholeRun(first: UInt64(1 + r * 7), runID: "RUN-\(r + 1)") { try await store.commit(m) }
            refs.append(try #require(try await store.run(deviceSerial: Fixture.device.serialNumber, runID: "RUN-\(r + 1)")).id)
        }
        _ = try await store.createUser(
            name: "sup", fullName: "Sue Pervisor", role: .supervisor, passwordHash: hash, createdBy: nil, reason: "bootstrap",
            atUnixMilliseconds: Fixture.now)
        let lab = try await store.createUser(
            name: "lab1", fullName: "Lab One", role: .lab, passwordHash: hash, createdBy: "sup", reason: nil,
            atUnixMilliseconds: Fixture.now)
        return (store, refs, lab)
    }

    static func product(_ store: RecordStore, run: Int64) async throws -> ProductRow {
        try await store.createProduct(
            runRef: run, facility: "G1234", dinYear: 26, dinFlags: "00", productDescriptionCode: "S9999", typeOfCollection: "1",
            productName: "MNC", collectedVolumeCubicMetres: 160e-6, collectedAtUnixMilliseconds: Fixture.now,
            // The run's audited weight: verify checks a product's mass against it.
            patientMassKilograms: Fixture.patient.weightKilograms, by: "lab1", atUnixMilliseconds: Fixture.now,
            din: { "G123426" + String(repeating: "0", count: 6 - String($0).count) + String($0) })
    }

    static let lab = LabResultInput(
        wbcCellsPerCubicMetre: 2e12, cd3Fraction: 0.448, cd3CellsPerCubicMetre: nil, viabilityFraction: 0.97,
        qcVolumeCubicMetres: 5e-6, recoveryFraction: nil, reducedVolumeCubicMetres: nil)

    static func computation(units: Int = 4) -> ComputationInput {
        ComputationInput(
            policyReducedVolumeCubicMetres: 140e-6, policyUnitVolumeCubicMetres: 35e-6, policyUnitCD3MinCells: 25e6,
            policyUnitCD3MaxCells: 36e6, policySufficientCD3CellsPerCubicMetre: 20e9, collectedVolumeCubicMetres: 160e-6,
            qcVolumeCubicMetres: 5e-6, volumeAfterQCCubicMetres: 155e-6, collectedTNCCells: 320e6, collectedCD3Cells: 143.36e6,
            collectedCD3CellsPerCubicMetre: 896e9, collectionSufficient: true, tncBeforeReductionCells: 310e6,
            cd3BeforeReductionCells: 138.88e6, recoveryFraction: 1, recoveryMeasured: false, reducedVolumeCubicMetres: 140e-6,
            cd3AfterReductionCellsPerCubicMetre: 992e9, tncAfterReductionCellsPerCubicMetre: 2214e9, unitVolumeCubicMetres: 35e-6,
            remainderVolumeCubicMetres: 0, viabilityFraction: 0.97, patientMassKilograms: 20,
            units: (0..<units).map { i in
                UnitInput(
                    index: i, divisionCode: ["A0", "B0", "C0", "D0"][i], productCode: "S99991" + ["A0", "B0", "C0", "D0"][i],
                    volumeCubicMetres: 35e-6, cd3Cells: 34.72e6, tncCells: 77.5e6, cd3CellsPerKilogram: 1.736e6,
                    doseFlag: "within_band")
            })
    }

    @Test func dinSequencesAreAssignedInOrderAndNeverTwice() async throws {
        let dir = try TempDirectory()
        let (store, runs, _) = try await Self.prepared(dir, runs: 3)
        let a = try await Self.product(store, run: runs[0])
        let b = try await Self.product(store, run: runs[1])
        #expect(a.dinSequence == 1 && b.dinSequence == 2)
        #expect(a.din == "G123426000001" && b.din == "G123426000002")
        await #expect(throws: ProductStoreError.productExists(runRef: runs[0], din: "G123426000001")) {
            _ = try await Self.product(store, run: runs[0])
        }
        // A failed assignment spends nothing; the next product gets the next number.
        let c = try await Self.product(store, run: runs[2])
        #expect(c.dinSequence == 3)
        // The counter cannot be wound back, even with raw SQL.
        await #expect(throws: (any Error).self) {
            try await store.executeForTesting("UPDATE din_sequences SET last_sequence = 1")
        }
        try await store.close()
    }

    @Test func anOpenRunCannotBecomeAProduct() async throws {
        let dir = try TempDirectory()
        let (store, _, _) = try await Self.prepared(dir, runs: 0)
        try await store.commit(Fixture.runStart(100, runID: "OPEN"))
        let open = try #require(try await store.run(deviceSerial: Fixture.device.serialNumber, runID: "OPEN"))
        await #expect(throws: ProductStoreError.runNotClosed(runRef: open.id, runID: "OPEN")) {
            _ = try await Self.product(store, run: open.id)
        }
        await #expect(throws: ProductStoreError.unknownRun(999)) { _ = try await Self.product(store, run: 999) }
        try await store.close()
    }

    @Test func labVersionsKeepTheOldValuesAndSupersedeTheRelease() async throws {
        let dir = try TempDirectory()
        let (store, runs, lab) = try await Self.prepared(dir)
        let p = try await Self.product(store, run: runs[0])
        #expect(try await store.currentRelease(productRef: p.id) == nil)
        await #expect(throws: ProductStoreError.signatureNotCurrent(productRef: p.id)) {
            _ = try await store.recordLabelPrints(
                productRef: p.id, signatureRef: 1, prints: [], format: "zpl", destination: "file", by: "lab1",
                atUnixMilliseconds: Fixture.now)
        }
        let (first, c1, units) = try await store.recordLabResult(
            productRef: p.id, values: Self.lab, computation: Self.computation(), by: "lab1", reason: nil,
            atUnixMilliseconds: Fixture.now)
        #expect(first.version == 1 && units.count == 4 && c1.values.units.count == 4)
        let signature = try await store.recordRelease(
            productRef: p.id, computationRef: c1.id, user: lab, signedContentSHA256: "abc", atUnixMilliseconds: Fixture.now)
        #expect(try await store.currentRelease(productRef: p.id) == signature)
        let prints = try await store.recordLabelPrints(
            productRef: p.id, signatureRef: signature.id, prints: units.map { ($0.id, "h") }, format: "zpl",
            destination: "file", by: "lab1", atUnixMilliseconds: Fixture.now)
        #expect(prints.count == 4 && prints.allSatisfy { $0.signatureRef == signature.id })

        var corrected = Self.lab
        corrected.viabilityFraction = 0.95
        // A correction without a reason is refused inside the transaction.
        await #expect(throws: ProductStoreError.reasonRequired(productRef: p.id, version: 2)) {
            _ = try await store.recordLabResult(
                productRef: p.id, values: corrected, computation: Self.computation(units: 3), by: "lab1", reason: " ",
                atUnixMilliseconds: Fixture.now + 1)
        }
        let (second, c2, newUnits) = try await store.recordLabResult(
            productRef: p.id, values: corrected, computation: Self.computation(units: 3), by: "lab1", reason: "typo",
            atUnixMilliseconds: Fixture.now + 1)
        #expect(second.version == 2)
        #expect(try await store.labResults(productRef: p.id).map(\.values.viabilityFraction) == [0.97, 0.95])
        #expect(try await store.currentComputation(productRef: p.id)?.1.count == 3)
        #expect(try await store.currentRelease(productRef: p.id) == nil)
        // A signature on the old values is refused: the signer did not see the new ones.
        await #expect(throws: ProductStoreError.computationSuperseded(productRef: p.id, signed: c1.id, current: c2.id)) {
            _ = try await store.recordRelease(
                productRef: p.id, computationRef: c1.id, user: lab, signedContentSHA256: "abc", atUnixMilliseconds: Fixture.now)
        }
        // Labels rendered from the old release are not recorded once new values arrived.
        await #expect(throws: ProductStoreError.signatureNotCurrent(productRef: p.id)) {
            _ = try await store.recordLabelPrints(
                productRef: p.id, signatureRef: signature.id, prints: units.map { ($0.id, "h") }, format: "zpl",
                destination: "file", by: "lab1", atUnixMilliseconds: Fixture.now)
        }
        let secondRelease = try await store.recordRelease(
            productRef: p.id, computationRef: c2.id, user: lab, signedContentSHA256: "def", atUnixMilliseconds: Fixture.now + 2)
        await #expect(throws: ProductStoreError.printSuperseded(productRef: p.id, signatureRef: signature.id)) {
            _ = try await store.recordLabelPrints(
                productRef: p.id, signatureRef: signature.id, prints: newUnits.map { ($0.id, "h") }, format: "zpl",
                destination: "file", by: "lab1", atUnixMilliseconds: Fixture.now)
        }
        await #expect(throws: ProductStoreError.unitNotInRelease(unitRef: units[0].id, signatureRef: secondRelease.id)) {
            _ = try await store.recordLabelPrints(
                productRef: p.id, signatureRef: secondRelease.id, prints: [(units[0].id, "h")], format: "zpl",
                destination: "file", by: "lab1", atUnixMilliseconds: Fixture.now)
        }
        let correction = try #require(try await store.auditEntries(entity: "lab_result", entityID: String(second.id)).first)
        #expect(correction.action == "lab.correct" && correction.reason == "typo")
        #expect(correction.oldValue?.contains("\"viability_fraction\":0.97") == true)
        #expect(correction.newValue?.contains("\"viability_fraction\":0.95") == true)
        try await store.close()
    }

    @Test func onlyTheFirstUserNeedsNoSigner() async throws {
        let dir = try TempDirectory()
        let (store, _, _) = try await Self.prepared(dir, runs: 0)
        await #expect(throws: ProductStoreError.signerRequired) {
            _ = try await store.createUser(
                name: "sneaky", fullName: "S", role: .supervisor, passwordHash: Self.hash, createdBy: nil, reason: nil,
                atUnixMilliseconds: Fixture.now)
        }
        try await store.close()
    }

    @Test func aPasswordHashSwappedInTheFileIsFound() async throws {
        let dir = try TempDirectory()
        let (store, _, _) = try await Self.prepared(dir, runs: 0)
        try await store.close()
        try Self.sqlite(dir.file(), "UPDATE users SET password_hash = '$argon2id$v=19$m=65536,t=2,p=1$AAAA$BBBB' WHERE name = 'sup'")
        let reopened = try await RecordStore.open(path: dir.file())
        let v = try await reopened.verifyAudit()
        #expect(v.problems.first?.description.contains("user 1 in table users differs") == true, "\(v.problems)")
        try await reopened.close()
    }

    @Test func newTablesAreAppendOnly() async throws {
        let dir = try TempDirectory()
        let (store, runs, _) = try await Self.prepared(dir)
        _ = try await Self.product(store, run: runs[0])
        for sql in [
            "DELETE FROM audit_log", "UPDATE audit_log SET actor = 'x'", "UPDATE products SET din = 'x'", "DELETE FROM products",
            "DELETE FROM users", "UPDATE users SET name = 'x'", "DELETE FROM din_sequences",
        ] {
            await #expect(throws: (any Error).self, "\(sql)") { try await store.executeForTesting(sql) }
        }
        try await store.close()
    }

    // MARK: Tampering, through the sqlite3 command-line tool on the file itself

    /// A product with lab values, release and prints: every kind of audited row.
    static func fullTrail(_ dir: borrowing TempDirectory) async throws -> (RecordStore, Int) {
        let (store, runs, lab) = try await Self.prepared(dir)
        let p = try await Self.product(store, run: runs[0])
        let (_, c, units) = try await store.recordLabResult(
            productRef: p.id, values: Self.lab, computation: Self.computation(), by: "lab1", reason: nil,
            atUnixMilliseconds: Fixture.now)
        _ = try await store.recordRelease(
            productRef: p.id, computationRef: c.id, user: lab, signedContentSHA256: "abc", atUnixMilliseconds: Fixture.now)
        let signature = try #require(try await store.currentRelease(productRef: p.id))
        _ = try await store.recordLabelPrints(
            productRef: p.id, signatureRef: signature.id, prints: units.map { ($0.id, "h") }, format: "zpl",
            destination: "file", by: "lab1", atUnixMilliseconds: Fixture.now)
        _ = try await store.disableUser(name: "lab1", by: "sup", reason: "left", atUnixMilliseconds: Fixture.now + 5)
        let verification = try await store.verifyAudit()
        #expect(verification.isIntact, "\(verification.problems)")
        return (store, verification.entries)
    }

    static func sqlite(_ file: String, _ sql: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [file, sql]
        let err = Pipe()
        process.standardError = err
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "sqlite3: \(text)")
    }

    static let dropTriggers = "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; "

    @Test func aChangeToAnyFieldOfAnyEntryIsFoundAtThatEntry() async throws {
        let dir = try TempDirectory()
        let (store, count) = try await Self.fullTrail(dir)
        try await store.close()
        #expect(count >= 14)
        try Self.sqlite(dir.file(), Self.dropTriggers)
        let original = dir.file()
        let columns = ["at_unix_ms = at_unix_ms + 1", "actor = 'mallory'", "action = 'x'", "entity = 'x'", "entity_id = '999'",
            "old_value = '{}'", "new_value = '{}'", "reason = 'changed'", "previous_hash = hash", "hash = previous_hash"]
        for seq in 1...count {
            for (k, change) in columns.enumerated() where (seq + k) % 3 == 0 || seq == count || seq == 1 {
                let copy = dir.file("tamper-\(seq)-\(k).sqlite")
                try FileManager.default.copyItem(atPath: original, toPath: copy)
                try Self.sqlite(copy, "UPDATE audit_log SET \(change) WHERE seq = \(seq)")
                // A copy has no anchor file of its own: opened to verify (an ordinary open refuses it).
                let tampered = try await RecordStore.open(path: copy, audit: AuditOptions(verifyOnly: true))
                let v = try await tampered.verifyAudit()
                try await tampered.close()
                #expect(!v.isIntact, "\(change) at \(seq) went unnoticed")
                // The first problem names the changed entry (or, for an edit that leaves the hash
                // valid-looking such as copying hashes, the entry that no longer links to it).
                #expect(v.problems.first?.seq == Int64(seq) || v.problems.first?.seq == Int64(seq + 1), "\(change) at \(seq): \(v.problems)")
            }
        }
    }

    /// Entries cut off the end together with the rows they recorded leave a sound chain: the anchor
    /// file finds that by itself (AuditAnchorTests), and a head hash written down earlier still does.
    @Test func aCutOffEndIsFoundAgainstAHeadWrittenDownEarlier() async throws {
        let dir = try TempDirectory()
        let (store, runs, _) = try await Self.prepared(dir)
        let head = try await store.verifyAudit().headHash
        _ = try await Self.product(store, run: runs[0])
        let laterHead = try await store.verifyAudit().headHash
        try await store.close()
        try Self.sqlite(
            dir.file(),
            Self.dropTriggers + "DROP TRIGGER products_no_delete; DELETE FROM products; DELETE FROM audit_log WHERE entity = 'product'")
        let tampered = try await RecordStore.open(path: dir.file())
        #expect(try await tampered.verifyAudit().problems.contains { $0.message.contains("entries were cut off its end") })
        #expect(try await tampered.verifyAudit(expectedHead: head).problems.allSatisfy { !$0.message.contains("written down earlier") })
        let v = try await tampered.verifyAudit(expectedHead: laterHead)
        #expect(v.problems.first?.description.contains("written down earlier is not in the trail") == true, "\(v.problems)")
        try await tampered.close()
    }

    @Test func removedReorderedAndCutOffEntriesAreFound() async throws {
        let dir = try TempDirectory()
        let (store, count) = try await Self.fullTrail(dir)
        try await store.close()
        try Self.sqlite(dir.file(), Self.dropTriggers)

        func check(_ name: String, _ sql: String, firstBad: Int64?, contains text: String) async throws {
            let copy = dir.file("\(name).sqlite")
            try FileManager.default.copyItem(atPath: dir.file(), toPath: copy)
            try Self.sqlite(copy, sql)
            // A copy has no anchor file of its own: opened to verify (an ordinary open refuses it).
            let tampered = try await RecordStore.open(path: copy, audit: AuditOptions(verifyOnly: true))
            let v = try await tampered.verifyAudit()
            try await tampered.close()
            #expect(!v.isIntact, "\(name)")
            #expect(v.problems.first?.seq == firstBad, "\(name): \(v.problems)")
            #expect(v.problems.first?.description.contains(text) == true, "\(name): \(v.problems)")
        }
        try await check("removed", "DELETE FROM audit_log WHERE seq = 5", firstBad: 5, contains: "missing")
        // Swap two entries' contents (keeping their positions): each no longer chains.
        try await check(
            "swapped",
            """
            UPDATE audit_log SET seq = -1 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 5;
            UPDATE audit_log SET seq = 5 WHERE seq = -1;
            """, firstBad: 4, contains: "previous_hash")
        // The last entry removed: the chain itself is sound, but the user it recorded no longer matches.
        try await check("cut", "DELETE FROM audit_log WHERE seq = \(count)", firstBad: nil, contains: "user 2")
        // A record changed behind the trail's back.
        try await check(
            "record", "DROP TRIGGER units_no_update; UPDATE units SET cd3_cells = 99e6 WHERE id = 2", firstBad: nil,
            contains: "unit 2 in table units differs")
    }
}
