import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

@Suite("Opening and migrating")
struct OpenAndMigrateTests {
    @Test func migratesAnEmptyFileCreatingDirectories() async throws {
        let dir = try TempDirectory()
        let path = dir.path + "/nested/deeper/store.sqlite"
        let store = try await RecordStore.open(path: path)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try await store.counts() == StoreCounts(messages: 0, samples: 0, runs: 0, openRuns: 0, activeAlarms: 0, quarantined: 0))
        #expect(RecordStore.schemaVersion == 8)
        try await store.close()
    }

    @Test func reopeningKeepsDataAndDoesNotMigrateAgain() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        try await store.commit(Fixture.telemetry(2, minutes: 5))
        try await store.close()

        // A second "v1" would fail on CREATE TABLE; reopening must just find the data.
        let reopened = try await RecordStore.open(path: dir.file())
        #expect(try await reopened.lastSequence(deviceSerial: Fixture.device.serialNumber) == 2)
        #expect(try await reopened.messages().count == 2)
        #expect(try await reopened.counts().samples == 1)
        #expect(try await reopened.commit(Fixture.telemetry(2, minutes: 5)) == .duplicate)
        try await reopened.close()
    }

    @Test func refusesAFileWithANewerMigration() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        try await store.executeForTesting("INSERT INTO grdb_migrations (identifier) VALUES ('v99-future')")
        try await store.close()

        await #expect {
            _ = try await RecordStore.open(path: dir.file())
        } throws: { error in
            guard case RecordStoreError.schemaTooNew(_, _, let known, let unknown) = error else { return false }
            return known == RecordStore.schemaVersion && unknown == ["v99-future"] && "\(error)".contains("refusing to open")
        }
    }

    @Test func refusesAFileWithANewerUserVersion() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let newer = RecordStore.schemaVersion + 1
        try await store.executeForTesting("PRAGMA user_version = \(newer)")
        try await store.close()
        await #expect {
            _ = try await RecordStore.open(path: dir.file())
        } throws: { error in
            if case RecordStoreError.schemaTooNew(_, newer, RecordStore.schemaVersion, _) = error { true } else { false }
        }
    }

    @Test func refusesAFileThatIsNotADatabase() async throws {
        let dir = try TempDirectory()
        try Data("this is not sqlite, just a text file that is long enough to have a header".utf8).write(
            to: URL(fileURLWithPath: dir.file()))
        await #expect {
            _ = try await RecordStore.open(path: dir.file())
        } throws: { error in
            if case RecordStoreError.cannotOpen = error { true } else { false }
        }
    }

    @Test func twoInstancesOneAfterTheOtherSeeEachOthersCommits() async throws {
        let dir = try TempDirectory()
        let first = try await RecordStore.open(path: dir.file())
        try await first.commit(Fixture.runStart(1))
        try await first.close()

        let second = try await RecordStore.open(path: dir.file())
        #expect(try await second.commit(Fixture.runStart(1)) == .duplicate)
        try await second.commit(Fixture.telemetry(2, minutes: 5))
        try await second.checkpoint()
        try await second.close()

        let third = try await RecordStore.open(path: dir.file())
        #expect(try await third.messages().map(\.sequence) == [1, 2])
        try await third.close()
    }

    @Test func historyTablesAreAppendOnly() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        try await store.commit(Fixture.telemetry(2, minutes: 5))
        try await store.quarantine(raw: [1, 2, 3], reason: "bad", deviceSerial: nil, atUnixMilliseconds: 1)
        for sql in [
            "DELETE FROM messages", "UPDATE messages SET raw = x'00'", "DELETE FROM samples",
            "UPDATE samples SET inlet_vol_ml = 0", "DELETE FROM quarantine", "DELETE FROM events",
        ] {
            await #expect(throws: (any Error).self, "\(sql)") { try await store.executeForTesting(sql) }
        }
        #expect(try await store.counts().messages == 2)
        try await store.close()
    }
}
