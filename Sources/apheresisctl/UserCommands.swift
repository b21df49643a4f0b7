import ArgumentParser
import Foundation
import ProductWorkflow
import RecordStore

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "People and their roles (operator, lab, supervisor).",
        subcommands: [Add.self, List.self, Disable.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a user. The first user must be a supervisor and needs no --by.",
            discussion: "Passwords: the supervisor's (with --by) first, then the new user's, twice.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Login name: lower-case letters, digits, '.', '_' or '-'.") var name: String
        @Option(help: "Full name, as it appears with signatures.") var fullName: String
        @Option(help: "operator, lab or supervisor.") var role: String
        @Option(help: "The supervisor who adds the user (not for the first user).") var by: String?
        @Option(help: "Why (kept in the audit trail).") var reason: String?

        func run() async throws {
            guard let role = UserRole(rawValue: role) else {
                Console.error("\"\(role)\" is not a role; use operator, lab or supervisor")
                throw ExitCode(64)
            }
            let workflow = try await store.workflow()
            var signer: Credential? = nil
            if let by { signer = Credential(userName: by, password: try await Console.password("Password for \(by): ")) }
            let password = try await Console.password("New password for \(name): ")
            let again = try await Console.password("Repeat the new password: ")
            guard password == again else {
                Console.error("refused: the two new passwords differ")
                throw ExitCode(1)
            }
            let user = try await refusing {
                try await workflow.createUser(
                    name: name, fullName: fullName, role: role, password: password, by: signer, reason: reason)
            }
            Console.out("user \(user.name) (\(user.fullName)) added as \(user.role.rawValue)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var store: StoreOptions
        func run() async throws {
            let (records, _) = try await store.open()
            let users = try await records.users()
            Console.out(
                Table.render(
                    ["NAME", "ROLE", "STATE", "FULL NAME"],
                    users.map { [$0.name, $0.role.rawValue, $0.isActive ? "active" : "disabled", $0.fullName] }))
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user (users are never deleted).")
        @OptionGroup var store: StoreOptions
        @Argument var name: String
        @Option(help: "The supervisor who disables the user.") var by: String
        @Option(help: "Why (kept in the audit trail).") var reason: String
        func run() async throws {
            let workflow = try await store.workflow()
            let signer = Credential(userName: by, password: try await Console.password("Password for \(by): "))
            let user = try await refusing { try await workflow.disableUser(name: name, by: signer, reason: reason) }
            Console.out("user \(user.name) disabled")
        }
    }
}

struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List runs and their products.")
    @OptionGroup var store: StoreOptions
    @Flag(help: "Print JSON (one object per run) instead of a table.") var json = false
    func run() async throws {
        let (records, _) = try await store.open()
        let runs = try await records.runs()
        let products = Dictionary(uniqueKeysWithValues: try await records.products().map { ($0.runRef, $0) })
        var rows: [[String]] = []
        var objects: [[String: Any]] = []
        for run in runs {
            let collected = try await records.samples(runRef: run.id).compactMap(\.collectVolumeMillilitres).max()
            let din = products[run.id]?.din
            rows.append([
                String(run.id), run.deviceSerial, run.runID, run.state.rawValue, run.procedure, run.patientID ?? "-",
                collected.map { String(format: "%.1f", $0) } ?? "-", din ?? "-",
            ])
            // Unrounded, for scripts: the table rounds for reading only.
            objects.append([
                "id": run.id, "device_serial": run.deviceSerial, "run_id": run.runID, "state": run.state.rawValue,
                "procedure": run.procedure, "patient_id": run.patientID ?? NSNull(), "collected_ml": collected ?? NSNull(),
                "product_din": din ?? NSNull(),
            ])
        }
        if json {
            Console.out(String(decoding: try JSONSerialization.data(withJSONObject: objects, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        Console.out(Table.render(["ID", "DEVICE", "RUN", "STATE", "PROCEDURE", "PATIENT", "COLLECTED_ML", "PRODUCT_DIN"], rows))
    }
}
