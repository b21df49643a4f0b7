import ArgumentParser
import Foundation
import RecordStore

/// The hospital interface's queues, read from the store (so they answer while the daemon is down).
struct HL7Command: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl7", abstract: "The hospital interface (HL7 over MLLP): queues, messages set aside, resending.",
        subcommands: [Status.self, SetAside.self, Resend.self])

    static func time(_ ms: Int64?) -> String {
        guard let ms else { return "-" }
        return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each destination: messages waiting (and since when), accepted, set aside, the last error.",
            discussion: "Exit status 0; 3 when a destination has messages set aside or waiting longer than --stale-after seconds.")
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("Waiting longer than this is reported (exit 3).", valueName: "seconds")) var staleAfter: Double = 300
        func run() async throws {
            let (records, _) = try await store.open(verifyOnly: true)
            let queues = try await records.hl7Status()
            if queues.isEmpty {
                Console.out("no HL7 destination configured ([[hl7.destination]] in the configuration; docs/hl7.md)")
                return
            }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var attention = false
            for q in queues {
                let waiting = q.oldestPendingAtUnixMilliseconds.map { Double(now - $0) / 1000 }
                let stale = (waiting ?? 0) > staleAfter
                if stale || q.setAside > 0 { attention = true }
                Console.out(
                    "\(q.name)  \(q.address)\(q.active ? "" : "  (no longer configured: not sent)")  feeds \(q.feeds.joined(separator: ","))")
                Console.out(
                    "  waiting \(q.pending)" + (waiting.map { String(format: " (oldest %.0f s)", $0) } ?? "")
                        + "  accepted \(q.delivered)  set aside \(q.setAside)  last accepted \(HL7Command.time(q.lastDeliveredAtUnixMilliseconds))")
                if let error = q.lastError { Console.out("  last error: \(error)") }
            }
            if attention { throw ExitCode(3) }
        }
    }

    struct SetAside: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-aside", abstract: "Messages a destination refused, newest first, with the receiver's reason.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this destination.") var destination: String?
        @Flag(help: "Print each message's text too (segments on their own lines).") var text = false
        func run() async throws {
            let (records, _) = try await store.open(verifyOnly: true)
            let entries = try await records.hl7Entries(state: .setAside, destination: destination)
            if entries.isEmpty { Console.out("no message set aside") }
            for e in entries {
                Console.out(
                    "\(e.id)  \(e.destination)  \(e.messageType)  \(e.controlID)  \(e.subject)  \(HL7Command.time(e.finishedAtUnixMilliseconds))  \(e.ackCode ?? "-"): \(e.ackText ?? "")")
                if text {
                    Console.out(String(decoding: e.message, as: UTF8.self).split(separator: "\r").map { "    \($0)" }.joined(separator: "\n"))
                }
            }
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put a set-aside message back in its queue (after the receiving side was fixed); it goes with its control id.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The message's id, as `hl7 set-aside` lists it.") var id: Int64
        @Option(help: "Why (kept as an event with your user name).") var reason: String
        func run() async throws {
            let (records, _) = try await store.open()
            let actor = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "unknown"
            guard
                let entry = try await records.requeueHL7(
                    id: id, by: actor, reason: reason, atUnixMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            else {
                Console.error("no set-aside message \(id); `apheresisctl hl7 set-aside` lists them")
                throw ExitCode(1)
            }
            Console.out("\(entry.controlID) is queued again for \(entry.destination)")
        }
    }
}
