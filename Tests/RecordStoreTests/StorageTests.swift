import Foundation
import GRDB
import SeparatorProtocol
import Testing

@testable import RecordStore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The WAL's bounds, the disk reserve, and how storage failures are classified, on real files
/// (and, where mounting is permitted, on a real small tmpfs).
@Suite("Disk space")
struct StorageTests {
    static func fileSize(_ path: String) -> Int64 {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : 0
    }

    /// A TICK with raw bytes padded to `padding` extra bytes (a message that needs new pages).
    static func padded(_ m: SeparatorMessage, _ padding: Int) -> [UInt8] {
        E1394Encoder.encode(m) + [UInt8](repeating: 0x20, count: padding)
    }

    // MARK: WAL bounds

    @Test func theWalStaysWithinItsBoundOverHundredsOfMessages() async throws {
        let dir = try TempDirectory()
        let path = dir.file()
        let store = try await RecordStore.open(path: path)
        let options = store.options
        #expect(options == RecordStore.Options(reserveBytes: 16 << 20, journalSizeLimitBytes: 4 << 20, walAutocheckpointPages: 256))
        // The pragmas are in force on the writer connection.
        #expect(try await store.valueForTesting("PRAGMA journal_size_limit") == String(options.journalSizeLimitBytes))
        #expect(try await store.valueForTesting("PRAGMA wal_autocheckpoint") == String(options.walAutocheckpointPages))
        #expect(try await store.valueForTesting("PRAGMA synchronous") == "2")  // FULL
        let pageSize = Int64(try #require(try await store.valueForTesting("PRAGMA page_size").flatMap { Int64($0) }))

        try await store.commit(Fixture.runStart(1))
        var largest: Int64 = 0
        let count = 400
        for i in 1...count {
            try await store.commit(Fixture.telemetry(UInt64(i + 1), minutes: Double(i) * 0.1), at: Fixture.now + Int64(i) * 5000)
            largest = max(largest, Self.fileSize(path + "-wal"))
        }
        // A WAL of `walAutocheckpointPages` frames plus the transaction that crossed it, with slack for a few more.
        let frame = pageSize + 24
        let bound = 32 + Int64(options.walAutocheckpointPages + 64) * frame
        print("WAL bound test: \(count) TICK commits, largest -wal file \(largest) bytes (bound \(bound), page size \(pageSize))")
        #expect(largest > 0)
        #expect(largest <= bound)
        #expect(largest <= options.journalSizeLimitBytes)
        #expect(try await store.counts().messages == count + 1)
        try await store.close()
    }

    @Test func aLaggingReaderLetsTheWalGrowAndJournalSizeLimitCutsItBack() async throws {
        let dir = try TempDirectory()
        let path = dir.file()
        let options = RecordStore.Options(journalSizeLimitBytes: 512 * 1024, walAutocheckpointPages: 64)
        let store = try await RecordStore.open(path: path, options: options)
        try await store.commit(Fixture.runStart(1))
        for i in 1...5 { try await store.commit(Fixture.telemetry(UInt64(i + 1), minutes: Double(i))) }

        // A reader that stays in its transaction (a backup, a long export): checkpoints cannot start the
        // WAL over while it reads, so the WAL grows past both bounds.
        let hold = try await store.holdReadTransactionForTesting()
        let sizeBefore = Self.fileSize(path + "-wal")
        let grown = 150
        for i in 6..<(6 + grown) { try await store.commit(Fixture.telemetry(UInt64(i + 1), minutes: Double(i))) }
        let sizeHeld = Self.fileSize(path + "-wal")
        let perMessage = (sizeHeld - sizeBefore) / Int64(grown)
        print("WAL growth while a reader holds it: \(perMessage) bytes per TICK commit; -wal \(sizeHeld) bytes after \(grown) commits")
        #expect(sizeHeld > options.journalSizeLimitBytes)

        // Once the reader is gone, the next checkpoint completes, the WAL starts over and is cut back to
        // journal_size_limit within a few commits.
        hold.release()
        var next = 6 + grown
        var commitsToShrink: Int?
        for n in 1...10 {
            try await store.commit(Fixture.telemetry(UInt64(next + 1), minutes: Double(next)))
            next += 1
            if Self.fileSize(path + "-wal") <= options.journalSizeLimitBytes {
                commitsToShrink = n
                break
            }
        }
        print("WAL cut back to \(Self.fileSize(path + "-wal")) bytes after \(commitsToShrink.map(String.init) ?? "more than 10") commits")
        #expect(commitsToShrink != nil && commitsToShrink! <= 3)
        try await store.close()
    }

    // MARK: The reserve

    @Test func belowTheReserveDeviceDataIsRefusedAndNothingIsWritten() async throws {
        let dir = try TempDirectory()
        let path = dir.file()
        let first = try await RecordStore.open(path: path)
        try await first.commit(Fixture.runStart(1))
        try await first.commit(
            Fixture.telemetry(2, minutes: 5), alarms: [AlarmChange(kind: .raised, code: "AC_HIGH", level: "warning")])
        let free = try await first.freeBytes()
        #expect(free > 0)
        try await first.close()

        // A reserve larger than the whole volume's free space: every device-data write is refused.
        let reserve = free + (1 << 40)
        let store = try await RecordStore.open(path: path, options: RecordStore.Options(reserveBytes: reserve))
        let runRef = try #require(try await store.openRuns().first?.id)
        let before = try await store.tableCounts()
        let eventsBefore = try await store.events()

        // A message already stored is still recognised (and so ACKed again): it needs no space.
        #expect(try await store.commit(Fixture.runStart(1)) == .duplicate)

        func refused(_ what: String, _ body: () async throws -> Void) async {
            do {
                try await body()
                Issue.record("\(what) should have been refused for the reserve")
            } catch {
                guard case RecordStoreError.storageFull(let p, let f, let r) = error else {
                    Issue.record("\(what): expected storageFull, got \(error)")
                    return
                }
                #expect(p == path && f < r && r == reserve, "\(what)")
            }
        }
        let tick = Fixture.telemetry(3, minutes: 10)
        await refused("commit") { _ = try await store.commit(tick) }
        do {
            try await store.commit(tick)
        } catch {
            let text = "\(error)"
            #expect(text.contains(path) && text.contains("NOT acknowledged") && text.contains("reserve"))
            #expect(text.contains(RecordStore.directory(of: path)))
            guard case .full(let measured?) = RecordStore.storageFailure(error) else {
                Issue.record("not classified as full: \(RecordStore.storageFailure(error))")
                return
            }
            #expect(measured < reserve)
            #expect(RecordStore.storageFailure(error).description.contains("full"))
        }
        // A different message with a stored sequence number would be quarantined: refused too.
        await refused("conflicting commit") { _ = try await store.commit(Fixture.telemetry(2, minutes: 6)) }
        await refused("quarantine") {
            _ = try await store.quarantine(raw: [1, 2, 3], reason: "x", deviceSerial: nil, atUnixMilliseconds: 1)
        }
        await refused("recordEvent") {
            _ = try await store.recordEvent(kind: "link_down", deviceSerial: Fixture.device.serialNumber, atUnixMilliseconds: 1)
        }
        await refused("recordAlarmChanges") {
            try await store.recordAlarmChanges(
                deviceSerial: "S1", runID: nil, changes: [AlarmChange(kind: .raised, code: "STALE", level: "warning")],
                atUnixMilliseconds: 1)
        }
        await refused("heartbeat") { _ = try await store.heartbeat(atUnixMilliseconds: 1) }
        await refused("ingestExport") {
            _ = try await store.ingestExport(
                try ExportTests.exportFile(Fixture.wholeRun(first: 50, runID: "RUN-F")), path: "/f.csv", contentSHA256: "ff",
                atUnixMilliseconds: 1)
        }
        await refused("recordMalformedExport") {
            try await store.recordMalformedExport(path: "/m.csv", contentSHA256: "mm", reason: "bad", atUnixMilliseconds: 1)
        }
        await refused("closeRunAbandoned") {
            _ = try await store.closeRunAbandoned(
                runRef: runRef, reason: "timeout", alarms: [AlarmChange(kind: .cleared, code: "AC_HIGH", level: "warning")],
                atUnixMilliseconds: 1)
        }
        await refused("recordDeviceLink") {
            _ = try await store.recordDeviceLink(serial: Fixture.device.serialNumber, linkName: "bay-1")
        }
        #expect(try await store.tableCounts() == before)
        #expect(try await store.events() == eventsBefore)
        #expect(try await store.lastSequence(deviceSerial: Fixture.device.serialNumber) == 2)

        // What tells of the failure may use the reserve; checkpoints are never refused.
        let failed = try await store.recordEvent(
            kind: "store_failed", deviceSerial: nil, detail: "disk full", atUnixMilliseconds: 2, usingReserve: true)
        #expect(try await store.events().last?.id == failed)
        #expect(try await store.heartbeat(atUnixMilliseconds: 3, usingReserve: true).openRuns == 1)
        try await store.checkpoint()
        try await store.close()

        // With space again (here: the default reserve), the refused message is stored, exactly once.
        let recovered = try await RecordStore.open(path: path)
        #expect(storedRef(try await recovered.commit(tick)) != nil)
        #expect(try await recovered.commit(tick) == .duplicate)
        #expect(try await recovered.messages().filter { $0.sequence == 3 }.count == 1)
        try await recovered.close()
    }

    @Test func sqliteFullIsClassifiedAndTheMessageCommitsOnceAfterwards() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        let pages = try #require(try await store.valueForTesting("PRAGMA page_count"))
        // The file may not grow: SQLite itself answers SQLITE_FULL, as on a full disk.
        try await store.executeForTesting("PRAGMA max_page_count = \(pages)")
        #expect(try await store.valueForTesting("PRAGMA max_page_count") == pages)
        let before = try await store.tableCounts()

        let tick = Fixture.telemetry(2, minutes: 5)
        let raw = Self.padded(tick, 64 * 1024)  // overflow pages: the commit must grow the file
        var failure: StorageFailure?
        do {
            _ = try await store.commit(tick, raw: raw, receivedAtUnixMilliseconds: Fixture.now)
            Issue.record("the commit should have failed with SQLITE_FULL")
        } catch {
            failure = RecordStore.storageFailure(error)
            #expect("\(error)".contains("full"))
        }
        #expect(failure == .full(freeBytes: nil))
        #expect(failure?.description.contains("disk is full") == true)
        #expect(try await store.tableCounts() == before)
        #expect(try await store.lastSequence(deviceSerial: Fixture.device.serialNumber) == 1)

        try await store.executeForTesting("PRAGMA max_page_count = 1073741823")
        #expect(storedRef(try await store.commit(tick, raw: raw, receivedAtUnixMilliseconds: Fixture.now)) != nil)
        #expect(try await store.commit(tick, raw: raw, receivedAtUnixMilliseconds: Fixture.now + 1) == .duplicate)
        let stored = try await store.messages().filter { $0.sequence == 2 }
        #expect(stored.count == 1 && stored.first?.raw == raw)
        #expect(try await store.counts().samples == 1)
        try await store.close()
    }

    @Test func aReadOnlyStoreIsClassifiedAsReadOnly() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        // query_only makes SQLite refuse writes with SQLITE_READONLY, as a read-only remount would.
        try await store.executeForTesting("PRAGMA query_only = 1")
        let tick = Fixture.telemetry(2, minutes: 5)
        do {
            try await store.commit(tick)
            Issue.record("the commit should have failed with SQLITE_READONLY")
        } catch {
            #expect(RecordStore.storageFailure(error) == .readOnly)
            #expect(RecordStore.storageFailure(error).description.contains("read-only"))
        }
        try await store.executeForTesting("PRAGMA query_only = 0")
        #expect(storedRef(try await store.commit(tick)) != nil)
        #expect(try await store.messages().count == 2)
        try await store.close()
    }

    @Test func otherFailuresAreClassified() {
        #expect(RecordStore.storageFailure(POSIXError(.ENOSPC)) == .full(freeBytes: nil))
        #expect(RecordStore.storageFailure(POSIXError(.EROFS)) == .readOnly)
        guard case .ioError(let detail) = RecordStore.storageFailure(POSIXError(.EIO)) else {
            Issue.record("EIO is an I/O error")
            return
        }
        #expect(detail.contains("EIO"))
        let full = RecordStoreError.storageFull(path: "/var/lib/apheresisd/store.sqlite", freeBytes: 1_000, reserveBytes: 16 << 20)
        #expect(RecordStore.storageFailure(full) == .full(freeBytes: 1_000))
        #expect(full.description.contains("16.0 MiB"))
        let bug = RecordStoreError.noActiveAlarm(deviceSerial: "S", runID: nil, code: "X", kind: .cleared)
        #expect(RecordStore.storageFailure(bug) == .other(bug.description))
    }

    // MARK: A real small volume

    @Test func onASmallTmpfsTheReserveHoldsAndTheStoreRecovers() async throws {
        let volume = try TmpfsMount.mountOrCancel(sizeBytes: 2 << 20)
        defer { volume.unmount() }
        let path = volume.path + "/store.sqlite"
        let reserve: UInt64 = 512 * 1024
        let store = try await RecordStore.open(path: path, options: RecordStore.Options(reserveBytes: reserve))
        try await store.commit(Fixture.runStart(1))

        // Something else fills the volume until less than the reserve is free.
        let free = try await store.freeBytes()
        #expect(free > reserve)
        let filler = volume.path + "/filler"
        try TmpfsMount.write(filler, bytes: Int(free - reserve) + 64 * 1024)
        let left = try await store.freeBytes()
        #expect(left < reserve)
        let before = try await store.tableCounts()

        let tick = Fixture.telemetry(2, minutes: 5)
        await #expect {
            try await store.commit(tick)
        } throws: { error in
            if case RecordStoreError.storageFull(path, let f, reserve) = error { f < reserve } else { false }
        }
        #expect(try await store.tableCounts() == before)
        // The failure can be told from the reserve.
        try await store.recordEvent(kind: "store_failed", deviceSerial: nil, detail: "disk full", atUnixMilliseconds: 2, usingReserve: true)

        try FileManager.default.removeItem(atPath: filler)
        #expect(try await store.freeBytes() > reserve)
        #expect(storedRef(try await store.commit(tick)) != nil)
        #expect(try await store.commit(tick) == .duplicate)
        #expect(try await store.messages().map(\.sequence) == [1, 2])
        try await store.recordEvent(kind: "store_recovered", deviceSerial: nil, atUnixMilliseconds: 3, usingReserve: true)
        #expect(try await store.events().suffix(2).map(\.kind) == ["store_failed", "store_recovered"])
        try await store.close()
    }

    @Test func storesOpenedAtOnceOnANewFileMigrateItOnce() async throws {
        // The daemon starting while apheresisctl (or a test) opens the same new store: both used to
        // read "nothing applied" and run the first migration twice ("table devices already exists").
        for round in 0..<20 {
            let dir = try TempDirectory()
            let path = dir.file()
            let stores = try await withThrowingTaskGroup(of: RecordStore.self) { group in
                for _ in 0..<4 { group.addTask { try await RecordStore.open(path: path) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(stores.count == 4, "round \(round)")
            for store in stores { try await store.close() }
        }
    }

    @Test func anIOErrorOnAVolumeRemountedReadOnlyIsToldAsReadOnly() async throws {
        let volume = try TmpfsMount.mountOrCancel(sizeBytes: 2 << 20)
        defer { volume.unmount() }
        let path = volume.path + "/store.sqlite"
        let store = try await RecordStore.open(path: path, options: RecordStore.Options(reserveBytes: 0))
        try await store.commit(Fixture.runStart(1))
        try await store.close()
        // What SQLite says when write(2) meets EROFS: SQLITE_IOERR_WRITE, not SQLITE_READONLY.
        let ioError = DatabaseError(resultCode: .SQLITE_IOERR_WRITE, message: "disk I/O error")
        #expect(RecordStore.failure(of: ioError, storePath: path) == .ioError("SQLITE_IOERR_WRITE: disk I/O error"))
        // The kernel remounts a failing disk read-only (no file open for writing, or it refuses).
        let (status, output) = TmpfsMount.run("/usr/bin/mount", ["-o", "remount,ro", volume.path])
        try #require(status == 0, "mount -o remount,ro: \(output)")
        #expect(RecordStore.failure(of: ioError, storePath: path) == .readOnly)
        // The store cannot even be opened there; that too is told as read-only.
        do {
            let reopened = try await RecordStore.open(path: path, options: RecordStore.Options(reserveBytes: 0))
            try await reopened.commit(Fixture.telemetry(2, minutes: 5))
            Issue.record("a write on a read-only volume should fail")
        } catch {
            #expect(RecordStore.failure(of: error, storePath: path) == .readOnly, "\(error)")
        }
        _ = TmpfsMount.run("/usr/bin/mount", ["-o", "remount,rw", volume.path])
    }

    @Test func aMalformedDatabaseReadIsToldAsTheDiskRatherThanAsAnUnknownFault() {
        let corrupt = DatabaseError(resultCode: .SQLITE_CORRUPT, message: "database disk image is malformed")
        guard case .ioError(let detail) = RecordStore.storageFailure(corrupt) else {
            Issue.record("SQLITE_CORRUPT should be an I/O error class: \(RecordStore.storageFailure(corrupt))")
            return
        }
        #expect(detail.contains("SQLITE_CORRUPT") && detail.contains("disk may be returning errors"))
        #expect(RecordStore.isStoreError(corrupt))
        #expect(!RecordStore.isStoreError(RecordStoreError.runNotFound(runRef: 1)))
    }

    @Test func onAFullTmpfsSQLiteFailsAsFullAndTheMessageCommitsOnceAfterwards() async throws {
        let volume = try TmpfsMount.mountOrCancel(sizeBytes: 2 << 20)
        defer { volume.unmount() }
        let path = volume.path + "/store.sqlite"
        // No reserve: SQLite itself meets the full disk.
        let store = try await RecordStore.open(path: path, options: RecordStore.Options(reserveBytes: 0))
        try await store.commit(Fixture.runStart(1))
        // An empty WAL: the next commit must extend it, so it cannot reuse space the WAL already holds.
        try await store.checkpoint()
        #expect(Self.fileSize(path + "-wal") == 0)
        let filler = volume.path + "/filler"
        try TmpfsMount.fill(filler)
        #expect(try await store.freeBytes() < 4096)
        let before = try await store.tableCounts()

        let tick = Fixture.telemetry(2, minutes: 5)
        let raw = Self.padded(tick, 16 * 1024)
        do {
            _ = try await store.commit(tick, raw: raw, receivedAtUnixMilliseconds: Fixture.now)
            Issue.record("the commit should have failed on a full disk")
        } catch {
            print("commit on a full tmpfs: \(error) -> \(RecordStore.storageFailure(error))")
            #expect(RecordStore.storageFailure(error) == .full(freeBytes: nil))
        }
        #expect(try await store.tableCounts() == before)

        try FileManager.default.removeItem(atPath: filler)
        #expect(storedRef(try await store.commit(tick, raw: raw, receivedAtUnixMilliseconds: Fixture.now)) != nil)
        #expect(try await store.commit(tick, raw: raw, receivedAtUnixMilliseconds: Fixture.now) == .duplicate)
        #expect(try await store.messages().map(\.sequence) == [1, 2])
        try await store.close()
        // Reopened (WAL replayed), the data is all there.
        let reopened = try await RecordStore.open(path: path)
        #expect(try await reopened.messages().map(\.sequence) == [1, 2])
        try await reopened.close()
    }
}

/// A tmpfs of a given size on a fresh directory, unmounted (lazily if still busy) and removed by
/// `unmount()` or, failing that, when released.
final class TmpfsMount: Sendable {
    let path: String

    private init(path: String) { self.path = path }

    /// Mounts, or cancels the running test with the reason (mounting needs root or CAP_SYS_ADMIN).
    static func mountOrCancel(sizeBytes: Int) throws -> TmpfsMount {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("recordstore-tmpfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeBytes)", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            try Test.cancel("cannot mount a tmpfs here (mount -t tmpfs exited \(status): \(output)); this test needs root or CAP_SYS_ADMIN")
        }
        return TmpfsMount(path: path)
    }

    func unmount() {
        guard FileManager.default.fileExists(atPath: path) else { return }
        if Self.run("/usr/bin/umount", [path]).status != 0 {
            _ = Self.run("/usr/bin/umount", ["-l", path])
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    deinit { unmount() }

    /// Writes `bytes` real bytes (tmpfs allocates on write, so a sparse file would not fill it).
    static func write(_ path: String, bytes: Int) throws {
        try Data(repeating: 0xA5, count: bytes).write(to: URL(fileURLWithPath: path))
    }

    /// Writes until the volume refuses (ENOSPC).
    static func fill(_ path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw POSIXError(.EIO) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let chunk = Data(repeating: 0x5A, count: 4096)
        do {
            while true { try handle.write(contentsOf: chunk) }
        } catch {
            // ENOSPC: the volume is full.
        }
    }

    static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            return (-1, "\(error)")
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        return (process.terminationStatus, text)
    }
}
