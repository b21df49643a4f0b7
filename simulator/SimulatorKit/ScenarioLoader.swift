import Foundation
import Quantities
import SeparatorProtocol
import TOMLKit

/// A scenario file that cannot be used, with where and why.
public struct ScenarioError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The path given to `load(path:)`, or the name given to `parse`.
    public var file: String
    /// 1-based; from TOMLKit for syntax errors, from the key's line otherwise.
    public var line: Int?
    public var column: Int?
    /// e.g. `settings.tick_interval_s`, `timeline[3].action`.
    public var keyPath: String?
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, keyPath: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let line, let column, line > 0 { location += ":\(column)" }
        if let keyPath { return "\(location): \(keyPath): \(message)" }
        return "\(location): \(message)"
    }
}

public enum ScenarioLoader {
    /// Reads and parses a scenario file.
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ScenarioError(file: path, message: "cannot read the file: \(error.localizedDescription)")
        }
        let base = (path as NSString).lastPathComponent
        let name = base.hasSuffix(".toml") ? String(base.dropLast(5)) : base
        return try parse(text, file: path, name: name)
    }

    /// Parses scenario text; `file` only labels errors.
    public static func parse(_ text: String, file: String = "<scenario>", name: String = "scenario") throws(ScenarioError) -> Scenario {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ScenarioError(
                file: file, line: error.source.begin.line, column: error.source.begin.column,
                message: "not valid TOML: \(error.description)")
        } catch {
            throw ScenarioError(file: file, message: "not valid TOML: \(error)")
        }
        let context = ParseContext(file: file, lines: KeyLineIndex(text: text))
        return try ScenarioParser(context: context, name: name).parse(root)
    }
}

// MARK: - Locating keys

/// TOMLKit reports lines only for syntax errors, so semantic errors find
/// their key's line by a light scan of the text (section headers and
/// `key =` lines). Good enough to point at a typo; the key path is always given.
struct KeyLineIndex: Sendable {
    private var lines: [String: Int] = [:]

    init(text: String) {
        var section = ""
        var timelineCount = -1
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            let number = offset + 1
            if line.hasPrefix("[[") {
                let name = line.dropFirst(2).prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                if name == "timeline" {
                    timelineCount += 1
                    section = "timeline[\(timelineCount)]"
                } else {
                    section = name
                }
                lines[section] = lines[section] ?? number
            } else if line.hasPrefix("[") {
                section = line.dropFirst().prefix { $0 != "]" }.trimmingCharacters(in: .whitespaces)
                lines[section] = lines[section] ?? number
            } else if let first = line.first, first.isLetter || first.isNumber || first == "_" || first == "\"",
                let equals = line.firstIndex(of: "=")
            {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces)
                    .trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                let path = section.isEmpty ? key : "\(section).\(key)"
                lines[path] = lines[path] ?? number
            }
        }
    }

    /// The key's line, else its section's line.
    func line(for path: String) -> Int? {
        if let line = lines[path] { return line }
        guard let dot = path.lastIndex(of: ".") else { return nil }
        return lines[String(path[..<dot])]
    }
}

struct ParseContext: Sendable {
    var file: String
    var lines: KeyLineIndex

    func error(_ path: String, _ message: String) -> ScenarioError {
        ScenarioError(file: file, line: lines.line(for: path), keyPath: path, message: message)
    }
}

// MARK: - Reading a table

/// Reads typed values from one table and remembers which keys it knows,
/// so that any other key (a typo) is an error.
struct TableReader {
    let table: TOMLTable
    let path: String
    let context: ParseContext
    private(set) var known: [String] = []

    init(_ table: TOMLTable, path: String, context: ParseContext) {
        self.table = table
        self.path = path
        self.context = context
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private mutating func value(_ key: String, required: Bool, expected: String) throws(ScenarioError) -> TOMLValueConvertible? {
        known.append(key)
        guard let value = table[key] else {
            if required {
                // A missing key is most often a misspelt one: name it, at its own line.
                if let typo = table.keys.first(where: { !known.contains($0) && editDistance($0, key) <= 2 }) {
                    throw context.error(keyPath(typo), "unknown key '\(typo)'; did you mean '\(key)' (\(expected))?")
                }
                throw context.error(keyPath(key), "missing (expected \(expected))")
            }
            return nil
        }
        return value
    }

    private func wrongType(_ key: String, _ value: TOMLValueConvertible, _ expected: String) -> ScenarioError {
        context.error(keyPath(key), "must be \(expected), found \(value.type)")
    }

    mutating func string(_ key: String, required: Bool = true) throws(ScenarioError) -> String? {
        guard let value = try value(key, required: required, expected: "a string") else { return nil }
        guard let text = value.string else { throw wrongType(key, value, "a string") }
        // Control characters cannot travel in an E1394 field.
        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw context.error(keyPath(key), "must not contain control characters (line breaks, tabs)")
        }
        return text
    }

    mutating func requiredString(_ key: String, nonEmpty: Bool = true) throws(ScenarioError) -> String {
        let text = try string(key)!
        if nonEmpty && text.isEmpty { throw context.error(keyPath(key), "must not be empty") }
        return text
    }

    /// Integers are accepted where numbers are expected (`ac_ratio = 12`).
    mutating func number(_ key: String, in range: ClosedRange<Double>, unit: String = "", required: Bool = true) throws(ScenarioError) -> Double? {
        guard let value = try value(key, required: required, expected: "a number") else { return nil }
        let number: Double
        if let d = value.double {
            number = d
        } else if let i = value.int {
            number = Double(i)
        } else {
            throw wrongType(key, value, "a number")
        }
        guard number.isFinite, range.contains(number) else {
            let u = unit.isEmpty ? "" : " \(unit)"
            throw context.error(keyPath(key), "\(format(number))\(u) is out of range: allowed \(format(range.lowerBound))-\(format(range.upperBound))\(u)")
        }
        return number
    }

    mutating func integer(_ key: String, in range: ClosedRange<Int>, unit: String = "", required: Bool = true) throws(ScenarioError) -> Int? {
        guard let value = try value(key, required: required, expected: "an integer") else { return nil }
        guard let number = value.int else { throw wrongType(key, value, "an integer") }
        guard range.contains(number) else {
            let u = unit.isEmpty ? "" : " \(unit)"
            throw context.error(keyPath(key), "\(number)\(u) is out of range: allowed \(range.lowerBound)-\(range.upperBound)\(u)")
        }
        return number
    }

    mutating func bool(_ key: String) throws(ScenarioError) -> Bool? {
        guard let value = try value(key, required: false, expected: "true or false") else { return nil }
        guard let flag = value.bool else { throw wrongType(key, value, "true or false") }
        return flag
    }

    mutating func subtable(_ key: String, required: Bool = true) throws(ScenarioError) -> TableReader? {
        guard let value = try value(key, required: required, expected: "a table [\(key)]") else { return nil }
        guard let table = value.table else { throw wrongType(key, value, "a table [\(key)]") }
        return TableReader(table, path: keyPath(key), context: context)
    }

    /// Every key the table holds must have been asked for.
    func rejectUnknownKeys() throws(ScenarioError) {
        for key in table.keys where !known.contains(key) {
            throw context.error(keyPath(key), "unknown key '\(key)' (known here: \(known.joined(separator: ", ")))")
        }
    }
}

/// Levenshtein distance, for suggesting the key a typo meant.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}

private func format(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
}

// MARK: - The scenario

struct ScenarioParser {
    let context: ParseContext
    let name: String

    func parse(_ root: TOMLTable) throws(ScenarioError) -> Scenario {
        var top = TableReader(root, path: "", context: context)
        guard root["format"] != nil else {
            throw ScenarioError(
                file: context.file, line: 1, keyPath: "format",
                message: "missing: the file must start with format = \"\(scenarioFormatIdentifier)\"")
        }
        let formatLine = try top.requiredString("format")
        guard formatLine == scenarioFormatIdentifier else {
            throw context.error("format", "'\(formatLine)' is not supported; this simulator reads \"\(scenarioFormatIdentifier)\"")
        }
        let title = try top.string("title", required: false) ?? name

        var deviceTable = try top.subtable("device")!
        let device = DeviceIdentity(
            model: try deviceTable.requiredString("model"),
            softwareVersion: try deviceTable.requiredString("software_version"),
            serialNumber: try deviceTable.requiredString("serial"))
        try deviceTable.rejectUnknownKeys()

        var settingsTable = try top.subtable("settings")!
        let settings = try parseSettings(&settingsTable)
        try settingsTable.rejectUnknownKeys()

        var patientTable = try top.subtable("patient")!
        let patient = try parsePatient(&patientTable, runDate: settings.start.date)
        try patientTable.rejectUnknownKeys()

        var flowsTable = try top.subtable("flows")!
        let flows = try parseFlows(&flowsTable)
        try flowsTable.rejectUnknownKeys()

        var end = EndCondition(stopAtTarget: true, endAt: nil)
        if var endTable = try top.subtable("end", required: false) {
            end.stopAtTarget = try endTable.bool("stop_at_target") ?? true
            if let minutes = try endTable.number("end_at_min", in: 0.1...720, unit: "min", required: false) {
                end.endAt = .minutes(minutes)
            }
            try endTable.rejectUnknownKeys()
        }

        var faults = FaultRates.none
        if var faultTable = try top.subtable("faults", required: false) {
            faults.corruptChecksum = try faultTable.number("corrupt_checksum_rate", in: 0...0.5, required: false) ?? 0
            faults.lostAck = try faultTable.number("lost_ack_rate", in: 0...0.5, required: false) ?? 0
            faults.garbage = try faultTable.number("garbage_rate", in: 0...0.5, required: false) ?? 0
            faults.omitRunStart = try faultTable.bool("omit_run_start") ?? false
            let lostFrom = try faultTable.number("lost_from_min", in: 0...720, unit: "min", required: false)
            let lostTo = try faultTable.number("lost_to_min", in: 0...720, unit: "min", required: false)
            switch (lostFrom, lostTo) {
            case (let from?, let to?):
                guard to > from else {
                    throw context.error("faults.lost_to_min", "must be after lost_from_min (\(from) min), found \(to) min")
                }
                faults.lostSpan = Seconds.minutes(from)..<Seconds.minutes(to)
            case (nil, nil): break
            case (nil, _): throw context.error("faults.lost_from_min", "is required with lost_to_min")
            case (_, nil): throw context.error("faults.lost_to_min", "is required with lost_from_min")
            }
            try faultTable.rejectUnknownKeys()
        }

        var timeline: [TimelineEntry] = []
        top.knownKey("timeline")
        if let value = root["timeline"] {
            guard let array = value.array else {
                throw context.error("timeline", "must be an array of tables [[timeline]], found \(value.type)")
            }
            for index in 0..<array.count {
                let path = "timeline[\(index)]"
                guard let table = array[index].table else {
                    throw context.error(path, "must be a table [[timeline]], found \(array[index].type)")
                }
                let entry = try parseTimelineEntry(TableReader(table, path: path, context: context))
                if let previous = timeline.last, entry.at < previous.at {
                    throw context.error(
                        "\(path).at_min",
                        "\(format(entry.at.minutes)) min comes before the previous entry's \(format(previous.at.minutes)) min: keep the timeline in time order")
                }
                timeline.append(entry)
            }
        }
        try top.rejectUnknownKeys()

        let endsByItself = end.stopAtTarget || end.endAt != nil
            || timeline.contains { if case .endRun = $0.action { true } else { false } }
        guard endsByItself else {
            throw context.error("end", "the run would never end: set end_at_min, keep stop_at_target = true, or add an end_run action")
        }

        return Scenario(
            name: name, title: title, device: device, patient: patient, settings: settings,
            initialFlows: flows, end: end, faults: faults, timeline: timeline)
    }

    private func parseSettings(_ t: inout TableReader) throws(ScenarioError) -> RunSettings {
        let procedureText = try t.requiredString("procedure")
        let procedure = Procedure(rawValue: procedureText)
        guard Procedure.known.contains(procedure) else {
            throw context.error(t.keyPath("procedure"), "unknown procedure '\(procedureText)' (known: CMNC, MNC, PBSC, TPE)")
        }
        let ratio = try t.number("ac_ratio", in: 6...20, unit: ":1")!
        let infMax = try t.number("ac_inf_rate_max", in: 0.5...2.5, unit: "mL/min/L")!
        let targetVolume = try t.number("target_wb_vol_ml", in: 10...50_000, unit: "mL", required: false)
        let targetTBV = try t.number("target_tbv", in: 0.1...6, unit: "TBV", required: false)
        let target: ProcessingTarget
        switch (targetVolume, targetTBV) {
        case (let v?, nil): target = .wholeBloodVolume(.millilitres(v))
        case (nil, let n?): target = .bloodVolumes(n)
        case (nil, nil): throw context.error(t.path, "needs target_wb_vol_ml or target_tbv")
        case (_?, _?): throw context.error(t.keyPath("target_tbv"), "give target_wb_vol_ml or target_tbv, not both")
        }
        let runTime = try t.number("target_run_time_min", in: 0...720, unit: "min", required: false) ?? 0
        let ecv = try t.number("ecv_ml", in: 50...500, unit: "mL")!
        let hct = try t.number("pre_hct", in: 10...70, unit: "%")!
        let wbc = try t.number("pre_wbc", in: 0.1...500, unit: "10*9/L")!
        let acdaLot = try t.requiredString("acda_lot")
        let setLot = try t.requiredString("set_lot")
        let operatorID = try t.requiredString("operator")
        let tick = try t.integer("tick_interval_s", in: 1...60, unit: "s", required: false) ?? 5
        let framingText = try t.string("framing", required: false) ?? FramingMode.wholeMessage.rawValue
        guard let framing = FramingMode(rawValue: framingText) else {
            throw context.error(t.keyPath("framing"), "unknown framing '\(framingText)' (known: wholeMessage, recordPerFrame)")
        }
        let startText = try t.requiredString("start")
        guard let start = DeviceTimestamp(wire: startText) else {
            throw context.error(t.keyPath("start"), "'\(startText)' is not a device clock time YYYYMMDDHHMMSS")
        }
        return RunSettings(
            procedure: procedure, acRatio: ratio, acInfusionRateMax: .millilitresPerMinutePerLitre(infMax),
            target: target, targetRunTime: runTime > 0 ? .minutes(runTime) : nil,
            extracorporealVolume: .millilitres(ecv), preHematocritPercent: hct, preWhiteCellCount: wbc,
            acdaLot: acdaLot, setLot: setLot, operatorID: operatorID, tickInterval: Seconds(Double(tick)),
            framing: framing, start: start)
    }

    private func parsePatient(_ t: inout TableReader, runDate: CalendarDate) throws(ScenarioError) -> PatientProfile {
        let id = try t.requiredString("id")
        let family = try t.requiredString("family")
        let given = try t.requiredString("given")
        let birthText = try t.requiredString("birth_date")
        guard let birth = CalendarDate(wire: birthText) else {
            throw context.error(t.keyPath("birth_date"), "'\(birthText)' is not a date YYYYMMDD")
        }
        guard birth <= runDate else {
            throw context.error(t.keyPath("birth_date"), "\(birthText) is after the run's start date \(runDate.wire)")
        }
        let sexText = try t.requiredString("sex")
        guard let sex = Sex(rawValue: sexText) else {
            throw context.error(t.keyPath("sex"), "'\(sexText)' is not M, F or U")
        }
        let height = try t.number("height_cm", in: 40...230, unit: "cm")!
        let weight = try t.number("weight_kg", in: 2...250, unit: "kg")!
        let tbv = try t.number("tbv_ml", in: 150...12_000, unit: "mL", required: false)
        return PatientProfile(
            id: id, familyName: family, givenName: given, birthDate: birth, sex: sex,
            height: .centimetres(height), weight: Mass(kilograms: weight),
            totalBloodVolumeOverride: tbv.map { .millilitres($0) })
    }

    private func parseFlows(_ t: inout TableReader) throws(ScenarioError) -> PumpFlows {
        let inlet = try t.number("inlet_ml_min", in: 0...150, unit: "mL/min")!
        let collect = try t.number("collect_ml_min", in: 0...20, unit: "mL/min", required: false) ?? 0
        let plasma = try t.number("plasma_ml_min", in: 0...100, unit: "mL/min", required: false) ?? 0
        guard collect + plasma <= inlet else {
            throw context.error(t.path, "collect + plasma (\(format(collect + plasma)) mL/min) exceed inlet (\(format(inlet)) mL/min)")
        }
        return PumpFlows(inlet: .millilitresPerMinute(inlet), collect: .millilitresPerMinute(collect), plasma: .millilitresPerMinute(plasma))
    }

    private func parseTimelineEntry(_ reader: TableReader) throws(ScenarioError) -> TimelineEntry {
        var t = reader
        let minutes = try t.number("at_min", in: 0...720, unit: "min")!
        // Whole milliseconds, so that 33.3 min lands on one instant however it was typed.
        let at = Seconds((minutes * 60_000).rounded() / 1000)
        let actionName = try t.requiredString("action")
        let action: TimelineAction
        switch actionName {
        case "set_flows":
            let inlet = try t.number("inlet_ml_min", in: 0...150, unit: "mL/min", required: false)
            let collect = try t.number("collect_ml_min", in: 0...20, unit: "mL/min", required: false)
            let plasma = try t.number("plasma_ml_min", in: 0...100, unit: "mL/min", required: false)
            if inlet == nil && collect == nil && plasma == nil {
                throw context.error(t.path, "set_flows needs at least one of inlet_ml_min, collect_ml_min, plasma_ml_min")
            }
            action = .setFlows(
                inlet: inlet.map { .millilitresPerMinute($0) }, collect: collect.map { .millilitresPerMinute($0) },
                plasma: plasma.map { .millilitresPerMinute($0) })
        case "device_alarm":
            let code = try t.requiredString("code")
            let text = try t.requiredString("text")
            let severityText = try t.string("severity", required: false) ?? Severity.alarm.rawValue
            guard let severity = Severity(rawValue: severityText) else {
                throw context.error(t.keyPath("severity"), "'\(severityText)' is not INFO, WARNING or ALARM")
            }
            action = .deviceAlarm(code: code, text: text, severity: severity)
        case "pause":
            action = .pause(text: try t.string("text", required: false) ?? "Paused by operator")
        case "resume":
            action = .resume(text: try t.string("text", required: false) ?? "Resumed by operator")
        case "rinseback":
            let duration = try t.number("duration_min", in: 0.5...15, unit: "min", required: false) ?? 3
            action = .rinseback(duration: .minutes(duration), text: try t.string("text", required: false) ?? "Rinseback started")
        case "operator_note":
            action = .operatorNote(text: try t.requiredString("text"))
        case "end_run":
            action = .endRun
        case "ratio_drift":
            let to = try t.number("to_ratio", in: 3...40, unit: ":1")!
            let over = try t.number("over_min", in: 0.1...240, unit: "min")!
            action = .ratioDrift(toRatio: to, over: .minutes(over))
        case "stall_pump":
            let pumpText = try t.string("pump", required: false) ?? Pump.ac.rawValue
            guard let pump = Pump(rawValue: pumpText) else {
                throw context.error(t.keyPath("pump"), "unknown pump '\(pumpText)' (known: ac, inlet, collect)")
            }
            let duration = try t.number("duration_s", in: 1...7200, unit: "s")!
            action = .stallPump(pump, duration: Seconds(duration))
        case "clock_jump":
            let seconds = try t.integer("seconds", in: -86_400 * 366...86_400 * 366, unit: "s")!
            if seconds == 0 { throw context.error(t.keyPath("seconds"), "a clock jump of 0 s does nothing") }
            action = .clockJump(seconds: Int64(seconds))
        case "cable_pull":
            action = .cablePull(duration: Seconds(try t.number("duration_s", in: 1...3600, unit: "s")!))
        case "garbage":
            action = .garbage(byteCount: try t.integer("bytes", in: 1...65_536, unit: "bytes")!)
        default:
            throw context.error(
                t.keyPath("action"),
                "unknown action '\(actionName)' (known: set_flows, device_alarm, pause, resume, rinseback, operator_note, end_run, ratio_drift, stall_pump, clock_jump, cable_pull, garbage)")
        }
        try t.rejectUnknownKeys()
        return TimelineEntry(at: at, action: action)
    }
}

extension TableReader {
    /// A key read by other means (arrays of tables).
    mutating func knownKey(_ key: String) { known.append(key) }
}
