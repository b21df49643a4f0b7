import Foundation
import GRDB
import Testing

@testable import RecordStore

/// `backup(to:)` (apheresisctl backup) on real SQLite files, while another task keeps writing, and
/// the restore that docs/store.md, "Backups", describes: the copy in place of the store, its heads
/// as the anchor file, the same key.
@Suite("Backup and restore")
struct BackupTests {
    @Test func aBackupTakenWhileWritingRestoresToAStoreWhoseTrailVerifies() async throws {
        let dir = try TempDirectory()
        let (store, _) = try await ProductStoreTests.fullTrail(dir)
        for m in Fixture.wholeRun(first: 1, runID: "RUN-B") { try await store.commit(m) }

        // A writer that goes on during the backup: audited user changes and messages.
        let writer = Task {
            var n = 0
            while !Task.isCancelled, n < 400 {
                n += 1
                _ = try await store.createUser(
                    name: "u\(n)", fullName: "User \(n)", role: .lab, passwordHash: "x", createdBy: "sup", reason: nil,
                    atUnixMilliseconds: Fixture.now + Int64(n))
                try await store.commit(Fixture.telemetry(UInt64(100 + n), minutes: 30 + Double(n) / 60, runID: "RUN-B"))
            }
            return n
        }
        // Let the writer get going, then copy in the middle of it.
        while try await store.counts().messages < 20 { try await Task.sleep(for: .milliseconds(5)) }
        let backupDirectory = dir.path + "/backups"
        try FileManager.default.createDirectory(atPath: backupDirectory, withIntermediateDirectories: true)
        let made = try await store.backup(to: backupDirectory + "/copy.sqlite")
        let written = try await writer.value
        #expect(written == 400)

        // The copy is one snapshot: its trail is a prefix of the store's, shorter than the final one.
        let headSeq = try #require(made.auditHeadSeq)
        let finalHead = try await store.verifyAudit().entries
        #expect(headSeq < Int64(finalHead), "the writer went on after the snapshot")
        #expect(made.auditEntries == headSeq)
        #expect(made.bytes > 0)
        #expect(made.anchorPath == backupDirectory + "/copy.sqlite.heads")
        #expect(made.anchorHeads > 0)
        let heads = try String(contentsOfFile: made.anchorPath, encoding: .utf8)
        #expect(heads.hasPrefix(AnchorFile.headerPrefix))
        #expect(!heads.contains("seq=\(headSeq + 1) "), "no head past the copy's last entry")
        let storeMessages = try await store.counts().messages
        let sourceHashAtHead = try await store.auditHash(seq: headSeq)
        #expect(sourceHashAtHead == made.auditHeadHash)
        try await store.close()

        // A backup never overwrites.
        let reopenedSource = try await RecordStore.open(path: dir.file())
        await #expect(throws: StoreBackupError.destinationExists(made.path)) { _ = try await reopenedSource.backup(to: made.path) }
        try await reopenedSource.close()

        // Restore: the copy as a new store's file, its heads as that store's anchor file, the same key.
        let restored = try TempDirectory()
        try FileManager.default.copyItem(atPath: made.path, toPath: restored.file())
        try FileManager.default.createDirectory(atPath: restored.path + "/audit-anchor", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: made.anchorPath, toPath: restored.path + "/audit-anchor/store.sqlite.heads")
        let keyFile = dir.path + "/audit-key/audit.key"
        let reopened = try await RecordStore.open(path: restored.file(), audit: AuditOptions(key: .file(keyFile)))
        let verification = try await reopened.verifyAudit()
        #expect(verification.isIntact, "\(verification.problems)")
        #expect(Int64(verification.entries) == headSeq)
        #expect(verification.headHash == made.auditHeadHash)
        let restoredMessages = try await reopened.counts().messages
        #expect(restoredMessages > 7 && restoredMessages < storeMessages, "\(restoredMessages) of \(storeMessages)")
        // The restored store goes on: an audited write anchors and still verifies.
        _ = try await reopened.createUser(
            name: "after-restore", fullName: "After", role: .lab, passwordHash: "x", createdBy: "sup", reason: nil,
            atUnixMilliseconds: Fixture.now + 10_000)
        let after = try await reopened.verifyAudit()
        #expect(after.isIntact && after.warnings.isEmpty, "\(after.problems) \(after.warnings)")
        try await reopened.close()
    }

    @Test func aDestinationThatExistsOrCannotBeWrittenIsRefusedByName() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        #expect(FileManager.default.createFile(atPath: dir.path + "/taken.sqlite.heads", contents: Data()))
        await #expect(throws: StoreBackupError.destinationExists(dir.path + "/taken.sqlite.heads")) {
            _ = try await store.backup(to: dir.path + "/taken.sqlite")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/taken.sqlite"))
        await #expect(throws: StoreBackupError.self) {
            _ = try await store.backup(to: dir.path + "/missing-directory/copy.sqlite")
        }
        // Nothing half-written is left behind under any name.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("partial") }
        #expect(left.isEmpty, "\(left)")
        try await store.close()
    }
}
