import ArgumentParser
import CentralStore
import DaemonConfiguration
import Foundation
import Logging
import RecordStore

/// The central database as this workstation sees it (docs/central.md).
struct CentralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "central", abstract: "Replication to the central PostgreSQL database: where it stands.",
        subcommands: [Status.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "This store's replication log, its DIN blocks, and the central database's cursor for this site.",
            discussion: """
                Exit status 0: the central database is reachable and has everything this store \
                logged; 3: entries are waiting (an outage, or the daemon is catching up) or the \
                central database cannot be reached; 1: no [central] is configured.
                """)
        @OptionGroup var store: StoreOptions
        func run() async throws {
            let (records, configuration) = try await store.open(verifyOnly: true)
            guard let settings = configuration.central else {
                Console.error("no [central] in the configuration: this store stands alone (docs/central.md)")
                throw ExitCode(1)
            }
            let state = try await records.replicationState()
            Console.out("site: \(state.site ?? settings.site) (store \(state.storeID))")
            Console.out("replication log: \(state.logging ? "on" : "off (the daemon turns it on at its first start with [central])")")
            Console.out("confirmed by the central database through entry \(state.confirmedSeq); waiting: \(state.backlog)")
            if let facility = configuration.product.facilityIdentificationNumber {
                let year = Calendar(identifier: .gregorian).component(.year, from: Date()) % 100
                let free = try await records.dinSequencesInReserve(facility: facility, dinYear: year)
                Console.out("DIN sequences in reserve for \(facility)/\(String(format: "%02d", year)): \(free)")
            }
            let endpoint = try settings.centralEndpoint()
            let reader = CentralReader(endpoint: endpoint, logger: Logger(label: "apheresisctl"))
            do {
                let rows = try await reader.workstations()
                await reader.close()
                let mine = rows.first { $0["site"] == .text(state.site ?? settings.site) }
                if case .integer(let through)? = mine?["replicated_through"] {
                    Console.out("central database \(endpoint.description): reachable; committed this site through entry \(through)")
                } else {
                    Console.out("central database \(endpoint.description): reachable; this site is not registered yet")
                }
            } catch {
                await reader.close()
                Console.out("central database \(endpoint.description): NOT reachable: \(CentralErrorText.describe(error))")
                throw ExitCode(3)
            }
            if state.backlog > 0 { throw ExitCode(3) }
        }
    }
}

extension CentralSettings {
    func centralEndpoint() throws -> CentralEndpoint {
        let secret: String?
        do { secret = try password(environment: ProcessInfo.processInfo.environment) } catch {
            Console.error("\(error)")
            throw ExitCode(78)
        }
        return endpoint(password: secret)
    }
}

/// `audit verify --central`: the central copy of a site's trail, checked with this store's key.
enum CentralAuditCheck {
    static func run(records: RecordStore, configuration: DaemonConfiguration, site chosen: String?) async throws {
        guard let settings = configuration.central else {
            Console.error("--central: no [central] in the configuration (docs/central.md)")
            throw ExitCode(78)
        }
        let local = try await records.replicationState()
        let site = chosen ?? local.site ?? settings.site
        let endpoint = try settings.centralEndpoint()
        let reader = CentralReader(endpoint: endpoint, logger: Logger(label: "apheresisctl"))
        let copy: (rows: [ReplicatedRow], replicatedThrough: Int64?)
        do {
            copy = try await reader.siteCopy(site: site, tables: RecordStore.auditCopyTables)
            await reader.close()
        } catch {
            await reader.close()
            Console.error("central database \(endpoint.description): \(CentralErrorText.describe(error))")
            throw ExitCode(1)
        }
        guard let through = copy.replicatedThrough else {
            Console.error("site \(site) is not in the central database \(endpoint.description)")
            throw ExitCode(1)
        }
        let result = try await records.verifyAuditCopy(copy.rows)
        var problems = result.problems.map(\.description)
        let entries = copy.rows.filter { $0.table == "audit_log" }
        let head = entries.max { $0.rowID < $1.rowID }
        // This workstation's own copy: the central head must be the same entry here.
        if site == local.site, let head {
            let localHash = try await records.auditHash(seq: head.rowID)
            if localHash == nil {
                problems.append("the central copy has entry \(head.rowID), which this workstation's trail does not have")
            } else if localHash != result.headHash {
                problems.append("the central copy's entry \(head.rowID) differs from this workstation's (hash \(localHash!.prefix(16))...)")
            }
        }
        if problems.isEmpty {
            let matched = site == local.site ? "; the same as this workstation's entry \(head?.rowID ?? 0)" : ""
            Console.out(
                "central copy of site \(site) intact: \(result.entries) entries, head \(result.headHash)\(matched) (replicated through log entry \(through))")
            return
        }
        Console.out("central copy of site \(site) BROKEN: \(problems[0])")
        for problem in problems.dropFirst() { Console.out("  also: \(problem)") }
        throw ExitCode(2)
    }
}
