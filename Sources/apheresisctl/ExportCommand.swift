import ArgumentParser
import Foundation
import RecordStore
import SeparatorProtocol

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "A run's samples as CSV (one column per telemetry code, unit in the header), or the whole run as JSON.",
        discussion: "Reads the record store directly: works whether or not the daemon runs.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The run's id (see `apheresisctl runs`).") var run: Int64
    @Option(help: "csv or json.") var format: String = "csv"
    @Option(help: ArgumentHelp("Write here instead of standard output.", valueName: "file")) var output: String?

    func run() async throws {
        guard format == "csv" || format == "json" else {
            Console.error("\"\(format)\" is not an export format; use csv or json")
            throw ExitCode(64)
        }
        let (records, _) = try await store.open()
        guard let row = try await records.run(id: run) else {
            Console.error("no run with id \(run) (see apheresisctl runs)")
            throw ExitCode(1)
        }
        let samples = try await records.samples(runRef: run)
        let text: String
        if format == "csv" {
            text = Self.csv(samples)
        } else {
            text = try Self.json(row, samples, alarms: try await records.alarms(runRef: run), events: try await records.events(runRef: run))
        }
        if let output {
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            } catch {
                Console.error("cannot write \(output): \(error.localizedDescription)")
                throw ExitCode(1)
            }
            Console.out("run \(row.runID): \(samples.count) sample(s) written to \(output)")
        } else {
            Console.out(text, terminator: "")
        }
    }

    /// Telemetry codes in the interface's order, then any others the run carried.
    static func codes(_ samples: [SampleRow]) -> [ParameterCode] {
        let present = Set(samples.flatMap { $0.values.keys })
        let known = ParameterDefinition.telemetry.map(\.code).filter(present.contains)
        return known + present.subtracting(known).sorted { $0.rawValue < $1.rawValue }
    }

    static func csv(_ samples: [SampleRow]) -> String {
        let codes = codes(samples)
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var lines = [(["device_time"] + codes.map { "\($0.rawValue) (\($0.definition?.unit ?? ""))" } + ["quality_flags"]).map(field).joined(separator: ",")]
        for s in samples {
            let cells = [s.deviceTimestamp.map { "\($0)" } ?? ""] + codes.map { s.values[$0].map { "\($0)" } ?? "" }
                + [s.qualityFlags.joined(separator: ";")]
            lines.append(cells.map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func json(_ run: RunRow, _ samples: [SampleRow], alarms: [AlarmRow], events: [EventRow]) throws -> String {
        func ms(_ v: Int64?) -> Any { v.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? NSNull() }
        func opt(_ v: Any?) -> Any { v ?? NSNull() }
        let object: [String: Any] = [
            "format": "apheresisd-run-export/1",
            "run": [
                "id": run.id, "device_serial": run.deviceSerial, "run_id": run.runID, "procedure": run.procedure,
                "state": run.state.rawValue, "profile": opt(run.profileName), "patient_id": opt(run.patientID),
                "patient_family_name": opt(run.patientFamilyName), "patient_given_name": opt(run.patientGivenName),
                "birth_date": opt(run.birthDate), "weight_kilograms": opt(run.weightKilograms),
                "start_device_time": opt(run.startDeviceTimestamp.map { "\($0)" }),
                "end_device_time": opt(run.endDeviceTimestamp.map { "\($0)" }), "opened_at": ms(run.openedAtUnixMilliseconds),
                "closed_at": ms(run.closedAtUnixMilliseconds),
            ],
            "samples": samples.map { s -> [String: Any] in
                [
                    "device_time": opt(s.deviceTimestamp.map { "\($0)" }), "quality_flags": s.qualityFlags,
                    "values": Dictionary(uniqueKeysWithValues: s.values.map { code, value in
                        (code.rawValue, ["value": value, "unit": code.definition?.unit ?? ""] as [String: Any])
                    }),
                ]
            },
            "alarms": alarms.map { a -> [String: Any] in
                [
                    "id": a.id, "code": a.code, "level": a.level, "state": a.state.rawValue, "value": opt(a.value),
                    "limit": opt(a.limit), "unit": opt(a.unit), "message": opt(a.message), "raised_at": ms(a.raisedAtUnixMilliseconds),
                    "raised_run_time_minutes": opt(a.raisedRunTimeMinutes), "acknowledged_by": opt(a.acknowledgedBy),
                    "acknowledged_at": ms(a.acknowledgedAtUnixMilliseconds), "cleared_at": ms(a.clearedAtUnixMilliseconds),
                    "clear_reason": opt(a.clearReason),
                ]
            },
            "events": events.map { e -> [String: Any] in
                ["kind": e.kind, "at": ms(e.atUnixMilliseconds), "device_time": opt(e.deviceTimestamp.map { "\($0)" }), "detail": opt(e.detail)]
            },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
