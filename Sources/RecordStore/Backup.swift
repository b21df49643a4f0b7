import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// What `backup(to:)` wrote.
public struct StoreBackup: Sendable {
    /// The database copy.
    public var path: String
    /// The anchor heads that belong to the copy (`<path>.heads`): the source's anchor file cut at
    /// the copy's last audit entry. Restore it as the store's anchor file (docs/store.md, "Backups").
    public var anchorPath: String
    public var bytes: UInt64
    /// Audit entries in the copy and its last one (0 and nil for a trail without entries).
    public var auditEntries: Int64
    public var auditHeadSeq: Int64?
    public var auditHeadHash: String?
    /// Heads written to `anchorPath` (after its header).
    public var anchorHeads: Int
    /// The source's anchor file had no head for the copy's last entry yet (written after each commit,
    /// so a backup taken right after one may miss it): the restored store reports its anchor as
    /// behind, a warning, and anchors again at its next audited write.
    public var anchorBehind: Bool
}

public enum StoreBackupError: Error, CustomStringConvertible, Equatable {
    case destinationExists(String)
    case destinationDirectory(String, reason: String)
    case integrity(String, result: String)
    case write(String, reason: String)

    public var description: String {
        switch self {
        case .destinationExists(let path): "\(path) already exists; a backup never overwrites a file: name a new one"
        case .destinationDirectory(let path, let reason): "cannot write a backup into \(path): \(reason)"
        case .integrity(let path, let result): "the copy \(path) failed PRAGMA integrity_check (\(result)); it was removed"
        case .write(let path, let reason): "cannot write \(path): \(reason)"
        }
    }
}

extension RecordStore {
    /// A consistent copy of the store, made while it is in use: SQLite's online backup API (through
    /// GRDB) copies every page from one read snapshot, so writers go on and the copy is exactly the
    /// store at one commit. The copy is written under a temporary name, checked with
    /// `PRAGMA integrity_check`, fsynced, then renamed to `destination` (so a half-written backup is
    /// never taken for one). The audit anchor heads up to the copy's last entry go beside it as
    /// `<destination>.heads`: with them and the audit key, the restored store verifies. The key is
    /// not copied (it must not travel with the data: docs/store.md, "Backups").
    public func backup(to destination: String) async throws -> StoreBackup {
        let pool = self.pool
        let anchorSource = audit.anchorPath
        return try await Self.offPool {
            try Self.backupSynchronously(pool: pool, anchorSource: anchorSource, destination: destination)
        }
    }

    private static func backupSynchronously(pool: DatabasePool, anchorSource: String, destination: String) throws -> StoreBackup {
        let anchorPath = destination + ".heads"
        for path in [destination, anchorPath] where access(path, F_OK) == 0 {
            throw StoreBackupError.destinationExists(path)
        }
        let directory = directory(of: destination)
        guard access(directory, W_OK) == 0 else {
            throw StoreBackupError.destinationDirectory(directory, reason: String(cString: strerror(errno)))
        }
        let name = URL(fileURLWithPath: destination).lastPathComponent
        let temporary = directory + "/.\(name).partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(temporary) }

        var head: (entries: Int64, seq: Int64?, hash: String?)
        do {
            let copy = try DatabaseQueue(path: temporary)
            try pool.backup(to: copy)
            head = try copy.read { db in
                let result = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                guard result == ["ok"] else { throw StoreBackupError.integrity(destination, result: result.prefix(3).joined(separator: "; ")) }
                let entries = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_log") ?? 0
                let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                return (entries, last?["seq"], last?["hash"])
            }
            try copy.close()
        } catch let error as StoreBackupError {
            throw error
        } catch {
            throw StoreBackupError.write(temporary, reason: "\(error)")
        }
        try fsyncFile(temporary)

        // The anchor's header and its heads up to the copy's last entry; later heads belong to
        // entries the copy does not have, and would read as a trail cut short.
        let anchor = AnchorFile.read(anchorSource)
        var lines: [String] = []
        var anchorHeads = 0
        var anchorBehind = head.seq != nil
        if anchor.exists, anchor.unreadable == nil, let storeID = anchor.storeID, let keyedFrom = anchor.keyedFromSeq {
            lines.append(AnchorFile.header(storeID: storeID, keyedFromSeq: keyedFrom))
            for h in anchor.heads where h.seq <= (head.seq ?? 0) {
                lines.append("seq=\(h.seq) hash=\(h.hash) at=\(h.atUnixMilliseconds)\n")
                anchorHeads += 1
                if h.seq == head.seq { anchorBehind = false }
            }
        }
        let anchorTemporary = temporary + ".heads"
        defer { unlink(anchorTemporary) }
        do {
            try Data(lines.joined().utf8).write(to: URL(fileURLWithPath: anchorTemporary))
            chmod(anchorTemporary, 0o640)
            try fsyncFile(anchorTemporary)
        } catch let error as StoreBackupError {
            throw error
        } catch {
            throw StoreBackupError.write(anchorTemporary, reason: "\(error)")
        }
        // The heads first: a database copy is never published without them.
        for (from, to) in [(anchorTemporary, anchorPath), (temporary, destination)] {
            // link(2) refuses an existing name: a backup started at the same moment is not overwritten.
            guard link(from, to) == 0 else {
                let reason = errno == EEXIST ? nil : String(cString: strerror(errno))
                if to == destination { unlink(anchorPath) }
                if let reason { throw StoreBackupError.write(to, reason: reason) }
                throw StoreBackupError.destinationExists(to)
            }
        }
        AnchorFile.syncDirectory(directory)
        var info = stat()
        let bytes = stat(destination, &info) == 0 ? UInt64(info.st_size) : 0
        return StoreBackup(
            path: destination, anchorPath: anchorPath, bytes: bytes, auditEntries: head.entries, auditHeadSeq: head.seq,
            auditHeadHash: head.hash, anchorHeads: anchorHeads, anchorBehind: anchorBehind)
    }

    private static func fsyncFile(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreBackupError.write(path, reason: String(cString: strerror(errno))) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw StoreBackupError.write(path, reason: String(cString: strerror(errno))) }
    }
}
