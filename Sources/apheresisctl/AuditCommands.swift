import ArgumentParser
import Foundation
import RecordStore

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The audit trail: verify its hash chain, list entries.",
        subcommands: [Verify.self, Log.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the SHA-256 chain and every audited record against it; name the first bad entry.",
            discussion: """
                Exit status 0: intact. 2: the trail or a record was changed, removed or reordered. \
                Keep the printed head hash somewhere else (a log book, a ticket) and pass it back with \
                --expect-head: entries cut off the end of the trail are found only that way.
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("A head hash printed by an earlier verify; it must still be in the trail.", valueName: "sha256"))
        var expectHead: String?
        func run() async throws {
            let (records, _) = try await store.open()
            let result = try await records.verifyAudit(expectedHead: expectHead?.lowercased())
            if result.isIntact {
                Console.out("audit trail intact: \(result.entries) entries, head \(result.headHash)")
                return
            }
            Console.out("audit trail BROKEN: \(result.problems[0].description)")
            for problem in result.problems.dropFirst() { Console.out("  also: \(problem.description)") }
            throw ExitCode(2)
        }
    }

    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit entries, oldest first.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this entity: user, product, lab_result, computation, unit, signature, label_print, run.")
        var entity: String?
        @Option(help: "Only this entity id (with --entity).") var id: String?
        @Flag(help: "Include old and new values.") var values = false
        func run() async throws {
            let (records, _) = try await store.open()
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
