import ArgumentParser
import Foundation
import RecordStore

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the record store while apheresisd runs (SQLite's online backup), with its audit anchor heads.",
        discussion: """
            PATH is a new file, or an existing directory: there the copy is named \
            <store name>-<UTC time>.sqlite. The copy is one consistent snapshot of the store, checked \
            with PRAGMA integrity_check before it gets its name; beside it, PATH.heads holds the audit \
            anchor's heads up to the copy's last entry. The audit key is not copied: keep it apart \
            from the backups. An existing file is never overwritten. --keep N (directory only) then \
            removes the oldest backups of this store in the directory beyond the newest N. Restoring \
            is described in docs/store.md, "Backups".
            """)

    @OptionGroup var store: StoreOptions

    @Argument(help: ArgumentHelp("A new file, or a directory for a time-stamped copy.", valueName: "path"))
    var path: String

    @Option(help: ArgumentHelp("With a directory: keep only the newest N backups of this store there (at least 1).", valueName: "N"))
    var keep: Int?

    func validate() throws {
        if let keep, keep < 1 { throw ValidationError("--keep must be at least 1: the backup just made is always kept") }
    }

    func run() async throws {
        let (records, _) = try await store.open(verifyOnly: true)
        var isDirectory: ObjCBool = false
        let intoDirectory = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        if keep != nil, !intoDirectory {
            Console.error("--keep needs PATH to be a directory of backups; \(path) is not one")
            throw ExitCode(64)
        }
        let storeName = BackupNaming.storeName(records.path)
        let destination = intoDirectory ? (path as NSString).appendingPathComponent(BackupNaming.fileName(storeName: storeName, at: Date())) : path
        let made: StoreBackup
        do {
            made = try await records.backup(to: destination)
        } catch let error as StoreBackupError {
            Console.error("backup failed: \(error.description)")
            throw ExitCode(1)
        }
        let head = made.auditHeadSeq.map { "audit entry \($0) (\(made.auditEntries) entries)" } ?? "no audit entries"
        Console.out("backup \(made.path): \(made.bytes) bytes, integrity ok, up to \(head)")
        Console.out("anchor heads \(made.anchorPath): \(made.anchorHeads) heads\(made.anchorBehind ? " (the last entry was not anchored yet: a restore warns until its next audited write)" : "")")
        if let keep, intoDirectory {
            for old in try BackupNaming.surplus(in: path, storeName: storeName, keep: keep) {
                for file in [old, old + ".heads"] where FileManager.default.fileExists(atPath: file) {
                    try FileManager.default.removeItem(atPath: file)
                }
                Console.out("removed old backup \(old)")
            }
        }
    }
}

/// Time-stamped names sort as they were made: `<store>-YYYYMMDDTHHMMSSZ.sqlite`.
enum BackupNaming {
    static func storeName(_ databasePath: String) -> String {
        let name = URL(fileURLWithPath: databasePath).deletingPathExtension().lastPathComponent
        return name.isEmpty ? "store" : name
    }

    static func fileName(storeName: String, at date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return "\(storeName)-\(formatter.string(from: date)).sqlite"
    }

    /// This store's backups in `directory` beyond the newest `keep`, oldest first. Only names this
    /// command makes are considered: nothing else in the directory is ever removed.
    static func surplus(in directory: String, storeName: String, keep: Int) throws -> [String] {
        let pattern = try Regex("^\(NSRegularExpression.escapedPattern(for: storeName))-[0-9]{8}T[0-9]{6}Z\\.sqlite$")
        let ours = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.wholeMatch(of: pattern) != nil }
            .sorted()
        return ours.dropLast(keep).map { (directory as NSString).appendingPathComponent($0) }
    }
}
