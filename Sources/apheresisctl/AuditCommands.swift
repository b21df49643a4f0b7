import ArgumentParser
import Foundation
import RecordStore

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The audit trail: verify its hash chain, list entries.",
        subcommands: [Verify.self, Log.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the keyed (HMAC-SHA256) chain, the anchor file and every audited record; name the first bad entry.",
            discussion: """
                Exit status 0: intact (warnings, such as an anchor file behind the trail after a crash, \
                or a journal that could not be consulted, are printed but do not fail). 2: the trail or a \
                record was changed, removed or reordered, the chain was recomputed without the audit key, \
                audit_chain was rewritten or reset, the anchor file is missing, or entries were cut off \
                the end (the anchor file or the journal holds a head the trail no longer has). \
                The journal is read with journalctl (AUDIT_STORE=<store id>), which needs root or the \
                systemd-journal or adm group for the system journal; --journal-export reads an export \
                instead. A head hash kept elsewhere can still be passed back with --expect-head.
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("A head hash printed by an earlier verify; it must still be in the trail.", valueName: "sha256"))
        var expectHead: String?
        @Option(
            help: ArgumentHelp(
                "Read the journal's heads from this file of `journalctl -o json` lines (exported from the store's machine) instead of running journalctl.",
                valueName: "file"))
        var journalExport: String?
        @Flag(
            help: ArgumentHelp(
                "Verify the central database's copy instead (docs/central.md): this site's by default, with this store's audit key, and compare its head with this store's."))
        var central = false
        @Option(help: ArgumentHelp("With --central: the site whose copy to verify (its audit key is needed).", valueName: "name"))
        var site: String?
        func run() async throws {
            if central {
                let (records, configuration) = try await store.open(verifyOnly: true)
                try await CentralAuditCheck.run(records: records, configuration: configuration, site: site)
                return
            }
            let (records, _) = try await store.open(verifyOnly: true)
            let result = try await records.verifyAudit(
                expectedHead: expectHead?.lowercased(), journal: journalExport.map { .exportFile($0) } ?? .journalctl)
            if result.isIntact {
                let anchored = result.anchoredSeq.map { ", anchored to entry \($0)" } ?? ""
                let journaled = result.journaledSeq.map { ", journaled to entry \($0)" } ?? ""
                Console.out("audit trail intact: \(result.entries) entries, head \(result.headHash)\(anchored)\(journaled)")
                for warning in result.warnings { Console.out("  warning: \(warning)") }
                return
            }
            Console.out("audit trail BROKEN: \(result.problems[0].description)")
            for problem in result.problems.dropFirst() { Console.out("  also: \(problem.description)") }
            for warning in result.warnings { Console.out("  warning: \(warning)") }
            throw ExitCode(2)
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit entries, oldest first.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this entity: user, product, lab_result, computation, unit, signature, label_print, run, run_preset_change.")
        var entity: String?
        @Option(help: "Only this entity id (with --entity).") var id: String?
        @Flag(help: "Include old and new values.") var values = false
        func run() async throws {
            let (records, _) = try await store.open(verifyOnly: true)
            let formatter = ISO8601DateFormatter()
            for e in try await records.auditEntries(entity: entity, entityID: id) {
                let when = formatter.string(from: Date(timeIntervalSince1970: Double(e.atUnixMilliseconds) / 1000))
                var line = "\(e.seq)  \(when)  \(e.actor)  \(e.action)  \(e.entity) \(e.entityID)"
                if let reason = e.reason { line += "  reason: \(reason)" }
                Console.out(line)
                if values {
                    if let old = e.oldValue { Console.out("    old: \(old)") }
                    if let new = e.newValue { Console.out("    new: \(new)") }
                }
            }
        }
    }
}
