import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Disk space: the WAL's bounds, the reserve kept free on the store's volume, and what a failed
// write means for the staff. docs/store.md, "Disk space".

extension RecordStore {
    /// How the store uses its volume. The defaults suit the daemon's workload (one small transaction
    /// per message, every 1-60 s per separator, a few separators); docs/store.md explains them.
    public struct Options: Hashable, Sendable {
        /// Free space the store leaves on its volume. A write of device data (message, alarm step, event,
        /// quarantine, export file, heartbeat) is refused with `RecordStoreError.storageFull` while less
        /// than this is free, before SQLite writes anything: the reserve stays available for checkpoints
        /// (which copy the WAL into the main file) and for the few rows that tell of the failure and the
        /// recovery (`recordEvent(..., usingReserve: true)`). 0 turns the check off.
        public var reserveBytes: UInt64
        /// `PRAGMA journal_size_limit`: after a checkpoint lets SQLite start the WAL over, the WAL file is
        /// truncated to at most this size. Negative: no limit (SQLite's default).
        public var journalSizeLimitBytes: Int64
        /// `PRAGMA wal_autocheckpoint`: the writer checkpoints (passively) once the WAL holds this many
        /// pages. 0 or negative turns automatic checkpoints off (not advised).
        public var walAutocheckpointPages: Int

        public init(
            reserveBytes: UInt64 = 16 * 1024 * 1024, journalSizeLimitBytes: Int64 = 4 * 1024 * 1024,
            walAutocheckpointPages: Int = 256
        ) {
            self.reserveBytes = reserveBytes
            self.journalSizeLimitBytes = journalSizeLimitBytes
            self.walAutocheckpointPages = walAutocheckpointPages
        }
    }

    /// Bytes free for this process on the volume holding the database (statvfs `f_bavail * f_frsize`
    /// of its directory): the number the reserve is compared with. For metrics and the status line.
    /// Throws `POSIXError` when the volume cannot be queried.
    public func freeBytes() async throws -> UInt64 {
        let directory = self.directory
        return try await Self.offPool { try Self.freeBytes(directory: directory) }
    }

    /// The store's files on disk: the database and its write-ahead log (bytes; 0 for a file that is
    /// not there, as the WAL between checkpoints that truncate it). For metrics.
    public func fileSizes() async throws -> (database: UInt64, wal: UInt64) {
        let path = self.path
        return try await Self.offPool {
            func size(_ file: String) -> UInt64 {
                var info = stat()
                return stat(file, &info) == 0 ? UInt64(info.st_size) : 0
            }
            return (size(path), size(path + "-wal"))
        }
    }

    /// What a failed write of this store means (`storageFailure(_:)`), told apart further by looking at
    /// the store's volume: SQLite reports a write refused by a read-only volume (EROFS) as
    /// SQLITE_IOERR_WRITE or _FSYNC, never as SQLITE_READONLY, so an I/O error on a volume that is now
    /// read-only (the kernel remounts a failing disk read-only) is told as read-only.
    public func failure(of error: any Error) -> StorageFailure {
        Self.failure(of: error, storePath: path)
    }

    /// `failure(of:)` for the store at `storePath`.
    public static func failure(of error: any Error, storePath: String) -> StorageFailure {
        let failure = storageFailure(error)
        guard case .ioError = failure, volumeIsReadOnly(directory: directory(of: storePath), file: storePath) else { return failure }
        return .readOnly
    }

    /// True when the volume holding `directory` is mounted read-only, or the file cannot be written
    /// because its file system is read-only.
    static func volumeIsReadOnly(directory: String, file: String) -> Bool {
        var info = statvfs()
        if statvfs(directory, &info) == 0, info.f_flag & UInt(ST_RDONLY) != 0 { return true }
        return access(file, W_OK) != 0 && errno == EROFS
    }

    /// Whether `error` came from the store (SQLite, the store's own refusals, the file system), as
    /// opposed to the caller's input: for the API, which answers 503 for the former.
    public static func isStoreError(_ error: any Error) -> Bool {
        if error is DatabaseError || error is POSIXError { return true }
        switch error as? RecordStoreError {
        case .storageFull, .cannotOpen, .corrupt: return true
        default: return false
        }
    }

    /// What a failed write means, in classes the daemon can tell the staff about: the disk is full,
    /// the store cannot be written at all, the disk reports I/O errors, or something else
    /// (a caller error such as an inconsistent alarm step, a constraint, ...).
    public static func storageFailure(_ error: any Error) -> StorageFailure {
        if let error = error as? RecordStoreError {
            if case .storageFull(_, let free, _) = error { return .full(freeBytes: free) }
            return .other(error.description)
        }
        if let error = error as? DatabaseError {
            let code = error.extendedResultCode
            switch error.resultCode {
            case .SQLITE_FULL:
                return .full(freeBytes: nil)
            case .SQLITE_READONLY:
                return .readOnly
            case .SQLITE_IOERR, .SQLITE_CANTOPEN:
                return .ioError("\(Self.sqliteCodeName(code)): \(error.message ?? "\(code)")")
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                // A disk returning errors on reads shows as a malformed database to SQLite: the disk is
                // the first suspect (PRAGMA integrity_check tells once it reads again).
                return .ioError("\(Self.sqliteCodeName(code)): \(error.message ?? "\(code)"); the disk may be returning errors on reads")
            default:
                return .other("SQLite error \(Self.sqliteCodeName(code)): \(error.message ?? "\(code)")")
            }
        }
        if let error = error as? POSIXError {
            switch error.code {
            case .ENOSPC, .EDQUOT: return .full(freeBytes: nil)
            case .EROFS: return .readOnly
            default: return .ioError("\(error.code) (errno \(error.code.rawValue)): \(String(cString: strerror(error.code.rawValue)))")
            }
        }
        return .other("\(error)")
    }

    /// SQLite's name for the codes this module tells apart, else its number and SQLite's text.
    static func sqliteCodeName(_ code: ResultCode) -> String {
        let names: [(ResultCode, String)] = [
            (.SQLITE_FULL, "SQLITE_FULL"), (.SQLITE_READONLY, "SQLITE_READONLY"), (.SQLITE_IOERR, "SQLITE_IOERR"),
            (.SQLITE_CANTOPEN, "SQLITE_CANTOPEN"), (.SQLITE_IOERR_READ, "SQLITE_IOERR_READ"),
            (.SQLITE_IOERR_SHORT_READ, "SQLITE_IOERR_SHORT_READ"), (.SQLITE_IOERR_WRITE, "SQLITE_IOERR_WRITE"),
            (.SQLITE_IOERR_FSYNC, "SQLITE_IOERR_FSYNC"), (.SQLITE_IOERR_DIR_FSYNC, "SQLITE_IOERR_DIR_FSYNC"),
            (.SQLITE_IOERR_TRUNCATE, "SQLITE_IOERR_TRUNCATE"), (.SQLITE_IOERR_FSTAT, "SQLITE_IOERR_FSTAT"),
            (.SQLITE_IOERR_NOMEM, "SQLITE_IOERR_NOMEM"), (.SQLITE_IOERR_SHMOPEN, "SQLITE_IOERR_SHMOPEN"),
            (.SQLITE_IOERR_SHMSIZE, "SQLITE_IOERR_SHMSIZE"), (.SQLITE_IOERR_SHMMAP, "SQLITE_IOERR_SHMMAP"),
            (.SQLITE_IOERR_SEEK, "SQLITE_IOERR_SEEK"), (.SQLITE_READONLY_RECOVERY, "SQLITE_READONLY_RECOVERY"),
            (.SQLITE_READONLY_CANTLOCK, "SQLITE_READONLY_CANTLOCK"), (.SQLITE_READONLY_ROLLBACK, "SQLITE_READONLY_ROLLBACK"),
            (.SQLITE_READONLY_DBMOVED, "SQLITE_READONLY_DBMOVED"), (.SQLITE_READONLY_CANTINIT, "SQLITE_READONLY_CANTINIT"),
            (.SQLITE_READONLY_DIRECTORY, "SQLITE_READONLY_DIRECTORY"), (.SQLITE_CORRUPT, "SQLITE_CORRUPT"),
            (.SQLITE_NOTADB, "SQLITE_NOTADB"), (.SQLITE_BUSY, "SQLITE_BUSY"), (.SQLITE_LOCKED, "SQLITE_LOCKED"),
            (.SQLITE_CONSTRAINT, "SQLITE_CONSTRAINT"), (.SQLITE_ERROR, "SQLITE_ERROR"),
        ]
        if let name = names.first(where: { $0.0 == code })?.1 { return name }
        if let name = names.first(where: { $0.0 == code.primaryResultCode })?.1 {
            return "\(name) (extended code \(code.rawValue))"
        }
        return "\(code)"
    }

    /// The directory whose volume holds the database file (and its -wal and -shm files).
    static func directory(of path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path
    }

    static func freeBytes(directory: String) throws -> UInt64 {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let (bytes, overflow) = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return overflow ? .max : bytes
    }

    /// The reserve check, run inside a write transaction before anything is written (so on GRDB's
    /// writer queue, never on the cooperative pool). A volume that cannot be queried is not judged
    /// here: SQLite then reports what is wrong.
    func ensureSpace(usingReserve: Bool = false) throws {
        let reserve = options.reserveBytes
        guard !usingReserve, reserve > 0, let free = try? Self.freeBytes(directory: directory) else { return }
        if free < reserve {
            throw RecordStoreError.storageFull(path: path, freeBytes: free, reserveBytes: reserve)
        }
    }
}

/// The class of a failed write, for the staff and for metrics (`RecordStore.storageFailure(_:)`).
public enum StorageFailure: Sendable, Equatable, CustomStringConvertible {
    /// The volume is full (SQLITE_FULL, ENOSPC), or below the store's reserve (`freeBytes` then says how
    /// much was free when the write was refused).
    case full(freeBytes: UInt64?)
    /// The database cannot be written at all (SQLITE_READONLY*, EROFS): a volume remounted read-only after
    /// disk errors, file permissions, or a file replaced under the daemon.
    case readOnly
    /// The disk or filesystem reported an error (SQLITE_IOERR*, SQLITE_CANTOPEN, errno), with its name and text.
    case ioError(String)
    /// Not a storage problem as such (a constraint, an inconsistent alarm step, ...), with its description.
    case other(String)

    public var description: String {
        switch self {
        case .full(let free?):
            "the record store's disk is full: \(ByteCount.text(free)) free, less than the reserve the store keeps; "
                + "nothing was written and nothing refused for this was acknowledged. Free space on that volume."
        case .full(nil):
            "the record store's disk is full (SQLite could not grow the database or its WAL); the write was rolled "
                + "back and not acknowledged. Free space on that volume."
        case .readOnly:
            "the record store cannot be written: its file or volume is read-only (remounted read-only after disk "
                + "errors, or permissions); the write was not stored and not acknowledged."
        case .ioError(let detail):
            "the record store's disk reported an I/O error (\(detail)): the disk or filesystem may be failing; "
                + "the write did not complete and was not acknowledged."
        case .other(let detail):
            "record store write failed: \(detail)"
        }
    }
}

/// Sizes for people: "15.9 MiB (16678912 bytes)".
enum ByteCount {
    static func text(_ bytes: UInt64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        guard bytes >= 1024 else { return "\(bytes) bytes" }
        var value = Double(bytes) / 1024
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        let rounded = (value * 10).rounded() / 10
        return "\(rounded) \(units[unit]) (\(bytes) bytes)"
    }
}
