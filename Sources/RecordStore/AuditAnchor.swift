import Crypto
import Foundation
import GRDB
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// The audit trail's anchors (schema v5, docs/products.md "Evidence that cannot be rewritten"):
// a secret key the database alone does not give (HMAC-SHA256 chain), and the chain's head written,
// after every commit that appended entries, to the journal and to an append-only file outside the
// database.

/// Where the audit key comes from. apheresisd and apheresisctl resolve it the same way
/// (`resolve(keyFileOption:configuredKeyFile:environment:)`).
public enum AuditKeySource: Sendable, Hashable, CustomStringConvertible {
    /// A systemd credential (`$CREDENTIALS_DIRECTORY/audit-key`, from `LoadCredential=` or
    /// `LoadCredentialEncrypted=`). systemd keeps the directory private to the service, so only the
    /// length is checked.
    case credential(String)
    /// A key file given by the configuration (`[audit] key_file`) or `--audit-key`: it must be
    /// readable by its owner only (mode 0600 or 0400) and hold at least 32 bytes.
    case file(String)
    /// A key made on first use (the zero-config demo and tests): 32 random bytes, mode 0600, in its
    /// own directory; nil means `<database directory>/audit-key/audit.key`. Never made for a store
    /// whose trail was already keyed: a lost key is reported, not replaced.
    case generated(String?)

    /// The name of the credential systemd delivers (`LoadCredential=audit-key:...`).
    public static let credentialName = "audit-key"

    /// In order: a key file named on the command line, the systemd credential, the configured key
    /// file, else the key made next to the database.
    public static func resolve(keyFileOption: String?, configuredKeyFile: String?, environment: [String: String]) -> AuditKeySource {
        if let keyFileOption { return .file(keyFileOption) }
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = directory.hasSuffix("/") ? directory + credentialName : directory + "/" + credentialName
            if access(path, F_OK) == 0 { return .credential(path) }
        }
        if let configuredKeyFile { return .file(configuredKeyFile) }
        return .generated(nil)
    }

    public var description: String {
        switch self {
        case .credential(let path): "systemd credential \(path)"
        case .file(let path): "key file \(path)"
        case .generated(let path): "generated key \(path ?? "<database directory>/audit-key/audit.key")"
        }
    }
}

/// How the store keys and anchors its audit trail.
public struct AuditOptions: Sendable {
    public var key: AuditKeySource
    /// The append-only file of chain heads; nil: `<database directory>/audit-anchor/<database file name>.heads`.
    public var anchorPath: String?
    /// Where a structured line per anchored head goes (the journal, under systemd); nil: none.
    public var logger: Logger?
    /// Try to set the file's append-only attribute (`chattr +a`) when creating it. Needs
    /// CAP_LINUX_IMMUTABLE; without it the attempt fails quietly.
    public var setAppendOnlyAttribute: Bool
    /// Open to read and verify (`apheresisctl audit verify` and `audit log`): what an ordinary open
    /// refuses as tampering (`AuditAnchorError.tampered`: a missing anchor file, an `audit_chain`
    /// row the key did not sign, a store found unkeyed) is left for `verifyAudit` to report, and
    /// such a store is neither keyed nor given runs nor a new key.
    public var verifyOnly: Bool

    public init(
        key: AuditKeySource = .generated(nil), anchorPath: String? = nil, logger: Logger? = nil,
        setAppendOnlyAttribute: Bool = false, verifyOnly: Bool = false
    ) {
        self.key = key
        self.anchorPath = anchorPath
        self.logger = logger
        self.setAppendOnlyAttribute = setAppendOnlyAttribute
        self.verifyOnly = verifyOnly
    }
}

/// The trail's anchoring refused an open: the store was tampered with (its anchor file is gone,
/// `audit_chain` is not signed by the key, or it was reset to "never keyed"), or the anchor file
/// cannot be made where it is configured. apheresisd exits 78 for both (no restart loop).
public struct AuditAnchorError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// Evidence of tampering: the store is not used for writing until someone has looked.
        case tampered
        /// The anchor file cannot be created (a read-only place, a missing ReadWritePaths=).
        case anchorNotWritable
    }
    public var kind: Kind
    public var path: String
    public var reason: String
    public var description: String {
        switch kind {
        case .tampered: "audit trail of \(path) refused as tampered: \(reason)"
        case .anchorNotWritable: "audit anchor file \(path): \(reason)"
        }
    }
}

/// A key that cannot be used, named with where it came from and what to do.
public struct AuditKeyError: Error, Hashable, Sendable, CustomStringConvertible {
    public var source: String
    public var reason: String
    public var description: String { "audit key (\(source)): \(reason)" }
}

/// The key and its public identity (the first 8 bytes of an HMAC of a fixed text, as hex): the
/// store records the identity with its first keyed entry, so a wrong key is refused at open.
struct AuditKey: Sendable {
    static let minimumBytes = 32
    /// The key's bytes (swift-crypto's SymmetricKey is not Sendable; one is made per use).
    let bytes: [UInt8]
    let id: String
    let source: AuditKeySource

    init(bytes: [UInt8], source: AuditKeySource) {
        self.bytes = bytes
        id = String(Audit.mac(Array("apheresisd audit key id".utf8), key: bytes).prefix(16))
        self.source = source
    }

    /// Loads (or, for `.generated`, makes) the key. `recordedID`: the identity the trail was keyed
    /// with, nil before the first keyed entry.
    /// `mayGenerate`: false where a missing demo key must not be replaced (a store refused as
    /// tampered, opened to verify only): then nil.
    static func load(_ source: AuditKeySource, databasePath: String, recordedID: String?, mayGenerate: Bool = true) throws -> AuditKey? {
        switch source {
        case .credential(let path):
            return AuditKey(bytes: try read(path, source: source, ownerOnly: false), source: source)
        case .file(let path):
            return AuditKey(bytes: try read(path, source: source, ownerOnly: true), source: source)
        case .generated(let given):
            let path = given ?? defaultKeyPath(databasePath: databasePath)
            if access(path, F_OK) == 0 {
                return AuditKey(bytes: try read(path, source: source, ownerOnly: true), source: source)
            }
            if let recordedID {
                throw AuditKeyError(
                    source: source.description,
                    reason: "\(path) does not exist, but this store's trail was keyed with key id \(recordedID); "
                        + "restore that key (or give it with --audit-key, [audit] key_file or the systemd credential) "
                        + "rather than starting a new one")
            }
            guard mayGenerate else { return nil }
            return AuditKey(bytes: try generate(path, source: source), source: source)
        }
    }

    /// The MAC `audit_chain.chain_mac` holds: of the store's identity, where keyed entries begin
    /// and the key's identity, each length-prefixed.
    func chainMAC(storeID: String, keyedFromSeq: Int64, keyID: String) -> String {
        Audit.chainMAC(storeID: storeID, keyedFromSeq: keyedFromSeq, keyID: keyID, key: bytes)
    }

    static func defaultKeyPath(databasePath: String) -> String {
        RecordStore.directory(of: databasePath) + "/audit-key/audit.key"
    }

    static func read(_ path: String, source: AuditKeySource, ownerOnly: Bool) throws -> [UInt8] {
        func fail(_ reason: String) -> AuditKeyError { AuditKeyError(source: source.description, reason: reason) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw fail("\(path) is not a regular file") }
        let mode = info.st_mode & 0o777
        if ownerOnly, mode & 0o077 != 0 {
            throw fail(
                "\(path) has mode \(String(mode, radix: 8)): readable or writable by group or others. "
                    + "The key must be readable by the service user only: chmod 600 \(path)")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 { throw fail("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += chunk[0..<n]
            if bytes.count > 65536 { throw fail("\(path) is larger than 64 KiB; not a key") }
        }
        // The key is the file's bytes, all of them: a random key may end in 0x0A or 0x0D, and
        // trimming it would shorten (or refuse) one key in 128. Every reader reads the same bytes.
        guard bytes.count >= minimumBytes else {
            throw fail(
                "\(path) holds \(bytes.count) bytes; an audit key needs at least \(minimumBytes) "
                    + "(make one with: head -c 32 /dev/urandom > FILE)")
        }
        return bytes
    }

    /// 32 random bytes, mode 0600, in a directory of its own (0700), published atomically: written
    /// to a temporary name, fsynced, then hard-linked to its name (which fails if another process
    /// got there first; that key is used then).
    static func generate(_ path: String, source: AuditKeySource) throws -> [UInt8] {
        func fail(_ reason: String) -> AuditKeyError { AuditKeyError(source: source.description, reason: reason) }
        let directory = RecordStore.directory(of: path)
        if mkdir(directory, 0o700) != 0, errno != EEXIST {
            throw fail("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
        let temporary = directory + "/.audit.key.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw fail("cannot write \(temporary)")
        }
        defer { unlink(temporary) }
        if link(temporary, path) != 0 {
            if errno == EEXIST { return try read(path, source: source, ownerOnly: true) }
            throw fail("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        AnchorFile.syncDirectory(directory)
        return bytes
    }
}

/// Shared by the store's connections: the key, set once at open. The writer reaches it through the
/// SQL function `apheresisd_audit_mac` (the static `Audit.append` runs with a `Database` only).
final class AuditContext: Sendable {
    private let state = Mutex<AuditKey?>(nil)
    var key: AuditKey? { state.withLock { $0 } }
    func set(_ key: AuditKey) { state.withLock { $0 = key } }

    static let macFunctionName = "apheresisd_audit_mac"

    /// `apheresisd_audit_mac(bytes)`: the hex HMAC-SHA256 of `bytes` under the audit key.
    var macFunction: DatabaseFunction {
        DatabaseFunction(Self.macFunctionName, argumentCount: 1, pure: false) { [self] values in
            guard let key = self.key else { throw RecordStoreError.corrupt("no audit key: the store was not opened with one") }
            guard case .blob(let data) = values[0].storage else { return nil }
            return Audit.mac([UInt8](data), key: key.bytes)
        }
    }
}

/// One head as written to the anchor file: `seq=12 hash=<64 hex> at=<unix ms>`.
struct AnchorHead: Hashable, Sendable {
    var seq: Int64
    var hash: String
    var atUnixMilliseconds: Int64
    var line: String { "seq=\(seq) hash=\(hash) at=\(atUnixMilliseconds)\n" }
}

/// The anchor file: a header naming the store and where its keyed entries begin, then one head per
/// commit that appended entries. Opened with O_APPEND for each write and fsynced.
enum AnchorFile {
    static let headerPrefix = "# apheresisd audit anchor v1"

    static func defaultPath(databasePath: String) -> String {
        let name = URL(fileURLWithPath: databasePath).lastPathComponent
        return RecordStore.directory(of: databasePath) + "/audit-anchor/\(name).heads"
    }

    static func header(storeID: String, keyedFromSeq: Int64) -> String {
        "\(headerPrefix) store=\(storeID) keyed-from=\(keyedFromSeq)\n"
    }

    /// Creates the file with its header; false when it already existed. Throws when it cannot.
    static func create(_ path: String, header: String, appendOnly: Bool) throws -> Bool {
        let directory = RecordStore.directory(of: path)
        if mkdir(directory, 0o750) != 0, errno != EEXIST {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        // Published whole: the header is written and fsynced in a temporary file, which is then
        // linked to the real name (EEXIST: it already exists). An anchor file therefore never exists
        // without its header; one created first and written after could be left empty by a kill or
        // a power cut between the two, and an empty anchor beside an unkeyed store reads as a trail
        // that was reset (found by the kill -9 campaign, docs/reliability.md).
        if access(path, F_OK) == 0 { return false }
        let temporary = directory + "/.\(URL(fileURLWithPath: path).lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { unlink(temporary) }
        do {
            defer { close(fd) }
            try write(fd, header)
        }
        if link(temporary, path) != 0 {
            if errno == EEXIST { return false }
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        if appendOnly {
            let published = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
            if published >= 0 {
                setAppendOnly(published)
                close(published)
            }
        }
        syncDirectory(directory)
        return true
    }

    /// Appends one line; never creates the file (a missing anchor must stay visible to verify).
    static func append(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try write(fd, text)
    }

    private static func write(_ fd: Int32, _ text: String) throws {
        let bytes = Array(text.utf8)
        // One write(2) with O_APPEND: lines of two processes never interleave within a line.
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw POSIXError(POSIXErrorCode(rawValue: n < 0 ? errno : EIO) ?? .EIO) }
        guard fsync(fd) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS with FS_APPEND_FL: only with CAP_LINUX_IMMUTABLE; any
    /// failure (EPERM, a filesystem without flags) is ignored.
    static func setAppendOnly(_ fd: Int32) {
        #if os(Linux)
            let getFlags: UInt = 0x8008_6601
            let setFlags: UInt = 0x4008_6602
            let appendFlag: Int = 0x20
            var flags: Int = 0
            guard ioctl(fd, getFlags, &flags) == 0 else { return }
            flags |= appendFlag
            _ = ioctl(fd, setFlags, &flags)
        #endif
    }

    static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }

    /// What verify reads: the file's header and heads, or why it could not.
    struct Contents: Sendable {
        var path: String
        var exists: Bool
        var storeID: String?
        var keyedFromSeq: Int64?
        var heads: [AnchorHead] = []
        /// Lines that are neither header nor head (1-based line numbers).
        var badLines: [Int] = []
        /// The file does not end in a newline: its last write was cut short.
        var partialLastLine = false
        var unreadable: String?
    }

    static func read(_ path: String) -> Contents {
        var contents = Contents(path: path, exists: access(path, F_OK) == 0)
        guard contents.exists else { return contents }
        guard let data = FileManager.default.contents(atPath: path) else {
            contents.unreadable = "cannot read \(path): \(String(cString: strerror(errno)))"
            return contents
        }
        let text = String(decoding: data, as: UTF8.self)
        contents.partialLastLine = !text.isEmpty && !text.hasSuffix("\n")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() where !line.isEmpty {
            if index == lines.count - 1, contents.partialLastLine { break }
            if line.hasPrefix(headerPrefix) {
                if index == 0 {
                    for field in line.dropFirst(headerPrefix.count).split(separator: " ") {
                        if field.hasPrefix("store=") { contents.storeID = String(field.dropFirst(6)) }
                        if field.hasPrefix("keyed-from=") { contents.keyedFromSeq = Int64(field.dropFirst(11)) }
                    }
                } else {
                    contents.badLines.append(index + 1)
                }
                continue
            }
            var seq: Int64?
            var hash: String?
            var at: Int64?
            for field in line.split(separator: " ") {
                if field.hasPrefix("seq=") { seq = Int64(field.dropFirst(4)) }
                if field.hasPrefix("hash=") { hash = String(field.dropFirst(5)) }
                if field.hasPrefix("at=") { at = Int64(field.dropFirst(3)) }
            }
            if let seq, let hash, hash.count == 64, let at {
                contents.heads.append(AnchorHead(seq: seq, hash: hash, atUnixMilliseconds: at))
            } else {
                contents.badLines.append(index + 1)
            }
        }
        return contents
    }
}

/// Anchors the head after each commit that appended audit entries, on GRDB's writer queue.
///
/// Why here: `databaseDidCommit` runs on the writer's own dispatch queue, right after SQLite
/// committed, serialized with every other write: the blocking append and fsync never run on Swift's
/// cooperative pool, and heads are written in commit order. A crash between the commit and this
/// write leaves the file behind; `verify` reports that as a warning and the next append re-anchors
/// (each line carries the current head, which covers every entry before it).
/// State is touched only on the writer queue (GRDB calls observers there), hence @unchecked.
final class AuditAnchorObserver: TransactionObserver, @unchecked Sendable {
    let path: String
    let logger: Logger?
    let identity: AuditJournal.StoreIdentity
    private var appended = false

    init(path: String, logger: Logger?, identity: AuditJournal.StoreIdentity) {
        self.path = path
        self.logger = logger
        self.identity = identity
    }

    func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
        if case .insert(let table) = eventKind { return table == "audit_log" }
        return false
    }

    func databaseDidChange(with event: DatabaseEvent) { appended = true }

    func databaseDidCommit(_ db: Database) {
        guard appended else { return }
        appended = false
        anchorHead(db)
    }

    func databaseDidRollback(_ db: Database) { appended = false }

    func anchorHead(_ db: Database) {
        do {
            guard let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1") else { return }
            let head = AnchorHead(seq: row["seq"], hash: row["hash"], atUnixMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            Audit.logHead(head, anchorPath: path, identity: identity, logger: logger)
            try AnchorFile.append(path, head.line)
        } catch {
            logger?.error(
                "audit anchor: cannot append the head to \(path): \(error); the next audited write tries again",
                metadata: ["audit_anchor": "\(path)"])
        }
    }
}

extension Audit {
    /// The journal's copy of a head: one structured line, fields AUDIT_SEQ, AUDIT_HASH, AUDIT_AT_UNIX_MS,
    /// AUDIT_STORE (the store's identity, so that several stores on one machine do not mix) and
    /// AUDIT_DATABASE (the database file): `journalctl AUDIT_STORE=<id>`. Notice level: kept at the
    /// default log levels. `verifyAudit(journal:)` reads them back (AuditJournal.swift).
    static func logHead(_ head: AnchorHead, anchorPath: String, identity: AuditJournal.StoreIdentity, logger: Logger?) {
        logger?.notice(
            "audit head: entry \(head.seq) hash \(head.hash)",
            metadata: [
                "audit_seq": "\(head.seq)", "audit_hash": "\(head.hash)", "audit_at_unix_ms": "\(head.atUnixMilliseconds)",
                "audit_anchor": "\(anchorPath)", "audit_store": "\(identity.storeID)", "audit_database": "\(identity.databasePath)",
            ])
    }
}

/// What `open` sets up for the trail: the key (in `context`), the store's identity, the anchor.
struct AuditSetup: Sendable {
    let context: AuditContext
    let anchorPath: String
    let storeID: String
    let keyedFromSeq: Int64
    /// The store's identity and database file as the journal's heads carry them.
    let identity: AuditJournal.StoreIdentity

    /// After migration, on the writer: loads the key (checking it against the one the trail was
    /// written with and against `audit_chain`'s MAC), and keys the store at its first keyed open:
    /// creates the anchor file, records the key's identity and the row's MAC, and brings runs made
    /// before schema v5 into the trail once; then starts anchoring.
    ///
    /// The first keyed open is only the one that applied the v5 migration (`appliedV5`), or one
    /// that finds no keyed entry and no anchor file (an open that stopped between the migration
    /// and the keying; or one that stopped after creating the anchor file: that file then holds
    /// this store's header and no head). A store at v5 or later found unkeyed otherwise had its
    /// `audit_chain` reset: refused, so that forged run rows are never adopted and signed. A keyed
    /// store whose anchor file is missing, or whose `audit_chain` row the key did not sign, is
    /// refused too; with `options.verifyOnly` these are left for `verifyAudit` to report.
    static func prepare(
        pool: DatabasePool, path: String, options: AuditOptions, context: AuditContext, appliedV5: Bool
    ) throws -> AuditSetup {
        let anchorPath = options.anchorPath ?? AnchorFile.defaultPath(databasePath: path)
        let (chain, head, runEntries) = try pool.read { db in
            (
                try Row.fetchOne(db, sql: "SELECT store_id, keyed_from_seq, key_id, chain_mac FROM audit_chain WHERE id = 1"),
                try Int64.fetchOne(db, sql: "SELECT IFNULL(MAX(seq), 0) FROM audit_log") ?? 0,
                // Run facts entered the trail with schema v5: a trail holding one was keyed before.
                try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_log WHERE entity = 'run'") ?? 0
            )
        }
        guard let chain else {
            if options.verifyOnly {
                // verifyAudit reports the missing row; nothing else is known.
                return AuditSetup(
                    context: context, anchorPath: anchorPath, storeID: "-", keyedFromSeq: 1,
                    identity: AuditJournal.StoreIdentity(storeID: "-", databasePath: AuditJournal.canonicalPath(path)))
            }
            throw AuditAnchorError(
                kind: .tampered, path: path, reason: "audit_chain has no row: where the trail's keyed entries begin was removed")
        }
        let storeID: String = chain["store_id"]
        let keyedFrom: Int64 = chain["keyed_from_seq"]
        let recordedID: String? = chain["key_id"]
        let recordedMAC: String? = chain["chain_mac"]
        let identity = AuditJournal.StoreIdentity(storeID: storeID, databasePath: AuditJournal.canonicalPath(path))
        let setup = AuditSetup(context: context, anchorPath: anchorPath, storeID: storeID, keyedFromSeq: keyedFrom, identity: identity)
        let anchorExists = access(anchorPath, F_OK) == 0
        func refuse(_ reason: String) -> AuditAnchorError { AuditAnchorError(kind: .tampered, path: path, reason: reason) }

        if let recordedID {
            guard let key = try AuditKey.load(options.key, databasePath: path, recordedID: recordedID) else {
                throw AuditKeyError(source: options.key.description, reason: "no key")
            }
            if recordedID != key.id {
                throw AuditKeyError(
                    source: key.source.description,
                    reason: "this is not the key the store's trail was written with (key id \(key.id), the trail's is \(recordedID)); "
                        + "give the store's own key")
            }
            context.set(key)
            if !options.verifyOnly {
                if recordedMAC != key.chainMAC(storeID: storeID, keyedFromSeq: keyedFrom, keyID: recordedID) {
                    throw refuse(
                        "its audit_chain row (store \(storeID), keyed entries from \(keyedFrom), key id \(recordedID)) is not signed "
                            + "by the audit key: it was rewritten by someone without the key. Do not write to this store; run "
                            + "`apheresisctl audit verify` and restore the database from a backup (docs/products.md)")
                }
                if !anchorExists {
                    throw refuse(
                        "the audit anchor file \(anchorPath) is missing, but the trail is keyed: it is never recreated by an open, "
                            + "since that would hide what was cut off the trail together with it. Restore \(anchorPath) from a backup "
                            + "(owner the service user, mode 0640, then chattr +a \(anchorPath)); if it was moved, set [audit] "
                            + "anchor_file to where it is. `apheresisctl audit verify` reports the trail meanwhile; "
                            + "only after it and the journal (journalctl AUDIT_STORE=\(storeID)) were checked may an administrator "
                            + "start a new file with its header: printf '%s\\n' '\(AnchorFile.header(storeID: storeID, keyedFromSeq: keyedFrom).dropLast())' > \(anchorPath)"
                    )
                }
            } else if !anchorExists {
                options.logger?.error(
                    "audit anchor file \(anchorPath) is missing although the trail is keyed",
                    metadata: ["audit_anchor": "\(anchorPath)"])
            }
            pool.add(transactionObserver: AuditAnchorObserver(path: anchorPath, logger: options.logger, identity: identity), extent: .databaseLifetime)
            return setup
        }

        // Not keyed yet: may this open key it?
        let keyedEntries = head >= keyedFrom
        let anchor = anchorExists ? AnchorFile.read(anchorPath) : nil
        let interruptedKeying =
            anchor.map {
                $0.storeID == storeID && $0.keyedFromSeq == keyedFrom && $0.heads.isEmpty && $0.badLines.isEmpty && $0.unreadable == nil
            } ?? false
        let mayKey = !keyedEntries && (appliedV5 || ((!anchorExists || interruptedKeying) && runEntries == 0))
        if !mayKey {
            let why =
                if keyedEntries {
                    "its trail holds entries \(keyedFrom)...\(head) past where keyed entries begin"
                } else if anchorExists && !interruptedKeying {
                    "its anchor file \(anchorPath) exists\(anchor?.storeID.map { $0 == storeID ? "" : " (for store \($0))" } ?? "")"
                } else {
                    "its trail holds \(runEntries) run entr\(runEntries == 1 ? "y" : "ies"), which only a keyed store writes"
                }
            let reason =
                "audit_chain says this store was never keyed (no key id), but \(why): audit_chain was reset, and keying "
                + "now would sign whatever run rows it holds. Do not write to this store; run `apheresisctl audit verify` "
                + "and restore the database from a backup (docs/products.md)"
            guard options.verifyOnly else { throw refuse(reason) }
            options.logger?.critical("\(refuse(reason))")
            if let key = try AuditKey.load(options.key, databasePath: path, recordedID: nil, mayGenerate: false) { context.set(key) }
            return setup
        }
        if let anchor, !interruptedKeying, let other = anchor.storeID, other != storeID {
            // A new store where another store's anchor file is: never overwritten nor adopted.
            throw AuditAnchorError(
                kind: .anchorNotWritable, path: anchorPath,
                reason: "belongs to another record store (store \(other)); this new store (\(storeID)) cannot anchor there. "
                    + "Keep that file with the database it belongs to (it is evidence), or set [audit] anchor_file elsewhere")
        }
        guard let key = try AuditKey.load(options.key, databasePath: path, recordedID: nil) else {
            throw AuditKeyError(source: options.key.description, reason: "no key")
        }
        context.set(key)
        // The file first, then the key's identity: an open that stops between the two finds this
        // store's header and no head in the file, and keys the store then (`interruptedKeying`).
        do {
            _ = try AnchorFile.create(
                anchorPath, header: AnchorFile.header(storeID: storeID, keyedFromSeq: keyedFrom),
                appendOnly: options.setAppendOnlyAttribute)
        } catch {
            throw AuditAnchorError(
                kind: .anchorNotWritable, path: anchorPath,
                reason: Self.anchorNotWritableReason(error, anchorPath: anchorPath, configured: options.anchorPath != nil, databasePath: path))
        }
        pool.add(transactionObserver: AuditAnchorObserver(path: anchorPath, logger: options.logger, identity: identity), extent: .databaseLifetime)
        try pool.write { db in
            try db.execute(
                sql: "UPDATE audit_chain SET key_id = ?, chain_mac = ? WHERE id = 1 AND key_id IS NULL",
                arguments: [key.id, key.chainMAC(storeID: storeID, keyedFromSeq: keyedFrom, keyID: key.id)])
            // Runs recorded before the trail covered them: one entry each, once, with what they say now.
            let unaudited = try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM runs WHERE CAST(id AS TEXT) NOT IN (SELECT entity_id FROM audit_log WHERE entity = 'run')
                    ORDER BY id
                    """)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for run in unaudited {
                try Audit.recordRunFacts(db, runRef: run, at: now, action: "run.adopt", reason: "recorded before schema v5 audited runs")
            }
        }
        return setup
    }

    /// Why the anchor file cannot be made, and what to do: under ProtectSystem=strict only the
    /// state directory and ReadWritePaths= are writable.
    static func anchorNotWritableReason(_ error: any Error, anchorPath: String, configured: Bool, databasePath: String) -> String {
        let cause = (error as? POSIXError).map { String(cString: strerror($0.code.rawValue)) } ?? "\(error)"
        let directory = RecordStore.directory(of: anchorPath)
        let defaultPath = AnchorFile.defaultPath(databasePath: databasePath)
        var text = "cannot create it (\(cause)). "
        if configured {
            text +=
                "Under systemd's ProtectSystem=strict the service may write only its StateDirectory= and ReadWritePaths=: "
                + "add ReadWritePaths=\(directory) to the unit (systemctl edit apheresisd), make \(directory) writable by the "
                + "service user, or remove [audit] anchor_file to use the default \(defaultPath)"
        } else {
            text += "Make \(directory) writable by the service user (it is beside the database), or set [audit] anchor_file"
        }
        return text
    }
}
