import ArgumentParser
import DaemonConfiguration
import Foundation

/// Where the running daemon answers.
struct DaemonOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Configuration file (TOML), as apheresisd's; its [api] says where the daemon listens.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("The daemon's API: http://HOST:PORT or unix:/path (overrides the configuration).", valueName: "url"))
    var api: String?

    @Flag(help: "Print the API's JSON instead of a table.") var json = false

    func client() throws -> DaemonClient {
        let configuration = try StoreOptions(config: config, database: nil).configuration()
        guard let client = DaemonClient(api: api, settings: configuration.api) else {
            Console.error(api.map { "\"\($0)\" is not http://HOST:PORT or unix:/path" } ?? "the configuration turns the API off ([api] enabled = false)")
            throw ExitCode(64)
        }
        return client
    }

    /// GET, or a clear message when the daemon is not there.
    func get(_ path: String) async throws -> DaemonClient.Reply {
        do {
            let reply = try await client().request("GET", path)
            guard reply.status == 200 else {
                Console.error("\(path): HTTP \(reply.status): \(reply.errorMessage ?? "")")
                throw ExitCode(1)
            }
            return reply
        } catch let error as DaemonClient.NotRunning {
            Console.error(error.description)
            throw ExitCode(69)  // EX_UNAVAILABLE
        }
    }
}

extension StoreOptions {
    init(config: String?, database: String?) {
        self.init()
        self.config = config
        self.database = database
    }
}

func text(_ value: Any?) -> String {
    switch value {
    case nil, is NSNull: "-"
    case let d as Double: d == d.rounded() && abs(d) < 1e12 ? String(Int64(d)) : String(format: "%.2f", d)
    case let i as Int: String(i)
    case let s as String: s
    case let b as Bool: b ? "yes" : "no"
    default: "\(value!)"
    }
}

func age(_ seconds: Any?) -> String {
    guard let s = seconds as? Double else { return "-" }
    if s < 120 { return String(format: "%.0f s", s) }
    if s < 7200 { return String(format: "%.0f min", s / 60) }
    return String(format: "%.1f h", s / 3600)
}

/// A ratio as the clinic writes it ("11.8:1"), or "-".
func ratio(_ value: Any?) -> String {
    guard let value = value as? Double else { return "-" }
    return String(format: "%.1f:1", value)
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "One screen: every device's link, its open run, active alarms (from the running daemon).")
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        let devices = try await daemon.get("/api/v1/devices")
        let runs = try await daemon.get("/api/v1/runs")
        let alarms = try await daemon.get("/api/v1/alarms")
        if daemon.json {
            let all: [String: Any] = ["devices": devices.data ?? [], "runs": runs.data ?? [], "alarms": alarms.data ?? []]
            Console.out(String(decoding: try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        let deviceRows = (devices.data as? [[String: Any]] ?? []).map { d in
            [text(d["name"]), text(d["link_state"]).uppercased(), age(d["last_activity_age_seconds"]), text(d["serial_number"]),
             text(d["messages_stored"]), text(d["reconnects"]), text(d["link"])]
        }
        Console.out(Table.render(["DEVICE", "LINK", "LAST", "SERIAL", "STORED", "RECONNECTS", "VIA"], deviceRows))
        let open = (runs.data as? [[String: Any]] ?? []).filter { $0["state"] as? String == "open" }
        Console.out("")
        if open.isEmpty {
            Console.out("no run open")
        } else {
            Console.out(
                Table.render(
                    ["RUN", "DEVICE", "PATIENT", "RUN_MIN", "COLLECT_ML", "RATIO (DAEMON)", "RATIO (DEVICE)", "SET", "DATA_AGE"],
                    open.map { r in
                        let values = (r["latest_sample"] as? [String: Any])?["values"] as? [String: Any] ?? [:]
                        func v(_ code: String) -> String { text((values[code] as? [String: Any])?["value"]) }
                        let watch = r["watch"] as? [String: Any]
                        let recomputed = (watch?["derived"] as? [String: Any])?["window_ratio"]
                        let set = (watch?["presets"] as? [String: Any])?["ratio_set"]
                        return [text(r["run_id"]), text(r["device_serial"]), text((r["patient"] as? [String: Any])?["id"]),
                            text((r["latest_sample"] as? [String: Any])?["run_time_minutes"]), v("COLLECT_VOL"), ratio(recomputed),
                            v("AC_RATIO"), ratio(set), age(r["latest_sample_age_seconds"])]
                    }))
            // A limit the daemon cannot judge is said, not left for the reader to notice.
            for r in open {
                let notJudged = (r["watch"] as? [String: Any])?["not_judged"] as? [String: Any] ?? [:]
                for (code, reason) in notJudged.sorted(by: { $0.key < $1.key }) {
                    Console.out("run \(text(r["run_id"])): \(code) NOT JUDGED: \(text(reason))")
                }
                // So is telemetry that never arrived.
                if let completeness = (r["watch"] as? [String: Any])?["completeness"] as? [String: Any],
                    completeness["complete"] as? Bool == false
                {
                    Console.out("run \(text(r["run_id"])): TELEMETRY INCOMPLETE: \(text(completeness["summary"]))")
                }
            }
        }
        Console.out("")
        let active = alarms.data as? [[String: Any]] ?? []
        Console.out(active.isEmpty ? "no active alarm" : AlarmsCommand.table(active))
    }
}

struct AlarmsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alarms", abstract: "Active alarms (or --all), from the running daemon.")
    @OptionGroup var daemon: DaemonOptions
    @Flag(help: "Every alarm, cleared ones too (newest 1000).") var all = false

    static func table(_ alarms: [[String: Any]]) -> String {
        Table.render(
            ["ID", "LEVEL", "CODE", "STATE", "DEVICE", "RUN", "AT RAISE", "NOW", "LIMIT", "AGE", "ACK BY", "MESSAGE"],
            alarms.map { a in
                let unit = (a["unit"] as? String).map { " \($0)" }.orEmpty
                let now = a["value_now"] is Double ? text(a["value_now"]) + unit : "-"
                return [text(a["id"]), text(a["level"]).uppercased(), text(a["code"]), text(a["state"]), text(a["device_serial"]),
                 text(a["run_id"]), text(a["value"]) + unit, now, text(a["limit"]),
                 age(a["age_seconds"]), text(a["acknowledged_by"]), text(a["message"])]
            })
    }

    func run() async throws {
        let reply = try await daemon.get("/api/v1/alarms?state=\(all ? "all" : "active")")
        if daemon.json {
            Console.out(String(decoding: reply.body, as: UTF8.self))
            return
        }
        let rows = reply.data as? [[String: Any]] ?? []
        Console.out(rows.isEmpty ? "no \(all ? "" : "active ")alarm" : Self.table(rows))
    }
}

struct AckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ack", abstract: "Acknowledge an alarm as a signed-in user (any role); it lands in the audit trail.")
    @OptionGroup var daemon: DaemonOptions
    @Argument(help: "The alarm's id (see `apheresisctl alarms`).") var alarm: Int64
    @Option(help: "The acting user.") var user: String
    @Option(help: "A note kept with the acknowledgement.") var reason: String?

    func run() async throws {
        let client = try daemon.client()
        let password = try await Console.password("Password for \(user): ")
        let reply: DaemonClient.Reply
        do {
            reply = try await client.request(
                "POST", "/api/v1/alarms/\(alarm)/acknowledge", json: reason.map { ["reason": $0] } ?? [:], user: (user, password))
        } catch let error as DaemonClient.NotRunning {
            Console.error(error.description)
            throw ExitCode(69)
        }
        guard reply.status == 200 else {
            Console.error("refused: \(reply.errorMessage ?? "HTTP \(reply.status)")")
            throw ExitCode(1)
        }
        let a = reply.data as? [String: Any] ?? [:]
        Console.out("alarm \(alarm) \(text(a["code"])) acknowledged by \(text(a["acknowledged_by"])); it stays until its condition clears")
    }
}

extension Optional where Wrapped == String {
    var orEmpty: String { self ?? "" }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Live: one line per sample, alarm, link change and run start or end, from the daemon's stream.")
    @OptionGroup var daemon: DaemonOptions
    @Option(help: "Stop after this many events (for scripts); default: until Ctrl-C.") var count: Int?

    func run() async throws {
        let client = try daemon.client()
        var seen = 0
        do {
            for try await event in try client.events("/api/v1/stream") {
                Console.out(daemon.json ? "{\"event\":\"\(event.name)\",\"data\":\(event.data)}" : Self.line(event))
                seen += 1
                if let count, seen >= count { return }
            }
            Console.error("the daemon closed the stream")
            throw ExitCode(1)
        } catch let error as DaemonClient.NotRunning {
            Console.error(error.description)
            throw ExitCode(69)
        }
    }

    static func line(_ event: DaemonClient.StreamEvent) -> String {
        let j = event.json
        switch event.name {
        case "snapshot":
            let devices = (j["devices"] as? [[String: Any]] ?? []).map { "\(text($0["name"])) \(text($0["link_state"]).uppercased())" }
            return "snapshot: " + devices.joined(separator: ", ") + "; \((j["open_runs"] as? [Any])?.count ?? 0) run(s) open, "
                + "\((j["active_alarms"] as? [Any])?.count ?? 0) alarm(s) active"
        case "sample":
            let values = j["values"] as? [String: Any] ?? [:]
            func v(_ code: String) -> String { text((values[code] as? [String: Any])?["value"]) }
            // The daemon's own figures (recomputed from the volumes) where it watches the run; the
            // device's values as sent otherwise.
            let watch = j["watch"] as? [String: Any]
            let derived = watch?["derived"] as? [String: Any] ?? [:]
            let presets = watch?["presets"] as? [String: Any] ?? [:]
            let head = "\(text(j["device"])) \(text(j["run_id"])) t=\(text(j["run_time_minutes"])) min"
            guard watch != nil else {
                return head + "  collect \(v("COLLECT_VOL")) mL  ratio \(v("AC_RATIO")):1 (device)  AC inf \(v("AC_INF_RATE")) mL/min/L (device)"
                    + "  WB \(v("WB_VOL")) mL"
            }
            return head + "  collect \(text(derived["collected_ml"]))/\(text(presets["collect_target_ml"])) mL"
                + "  ratio \(text(derived["window_ratio"])):1 (set \(text(presets["ratio_set"])), device \(v("AC_RATIO")))"
                + "  AC inf \(text(derived["ac_infusion_rate_ml_per_min_per_l"])) mL/min/L"
                + "  citrate \(text(derived["citrate_load_rate_mg_per_kg_per_min"])) mg/kg/min  WB \(text(derived["whole_blood_processed_ml"])) mL"
        case "presets":
            let changed = ((j["watch"] as? [String: Any])?["presets"] as? [String: Any])?["overridden"] as? [String] ?? []
            return "presets of \(text(j["run_id"])) changed by \(text(j["changed_by"])): \(changed.joined(separator: ", ")) (\(text(j["reason"])))"
        case "alarm":
            return "ALARM \(text(j["change"]).uppercased()) \(text(j["level"]).uppercased()) \(text(j["code"])) on \(text(j["device"])) \(text(j["run_id"])): \(text(j["message"]))"
        case "link": return "link \(text(j["device"])) is \(text(j["link_state"]).uppercased())"
        case "run_start": return "run \(text(j["run_id"])) started on \(text(j["device"]))"
        case "run_end": return "run \(text(j["run_id"])) ended on \(text(j["device"]))"
        case "dropped": return "dropped by the daemon: \(text(j["reason"]))"
        default: return "\(event.name): \(event.data)"
        }
    }
}
