// Export file format (separator-interface.md, section 6), as this project writes and reads it.
// CSV per RFC 4180, UTF-8; written with CRLF, read with CRLF, LF or CR. Every line is a CSV
// record; a `#KEY=value` line is one field (quoted when the value needs it). In order:
//
//   #FORMAT=OPTIA-EXPORT/1          optional on read; another value is rejected
//   #MODEL=  #SOFTWARE_VERSION=  #SERIAL=  #RUN_ID=  #PROCEDURE=
//   #RUN_START=YYYYMMDDHHMMSS       optional
//   #PATIENT_ID=  #PATIENT_FAMILY=  #PATIENT_GIVEN=  #BIRTH_DATE=YYYYMMDD  #SEX=M|F|U
//   #HEIGHT_CM=  #WEIGHT_KG=        patient keys, all absent when there is no patient
//   #<CODE>=value                   every RUN_START setting under its code (#TBV=2560.0)
//   TIMESTAMP,RUN_TIME,INLET_VOL,…  header row: telemetry codes in spec order, unknown codes after
//   20261124091505,0.1,…            one data row per TICK; the last holds the RUN_END values
//   #ALARM=timestamp^code^text^severity   where it occurred among the rows; EVENT codes
//                                   (PAUSE, RESUME, RINSEBACK, OPERATOR_NOTE) too, severity INFO
//   #END=<number of data rows>      last line; without it the file is incomplete
//
// Required on read: SERIAL and RUN_ID. Other preamble keys default to empty. Setting codes
// must not be one of the keys above. In #ALARM the text may contain `^` (the first two and
// the last `^` delimit); the code may not. Numbers are written as Swift's shortest
// round-trip form and read strictly (no nan, inf, hex). Empty cells are absent values.

/// Why an export file was refused, and where (`line` is 1-based, as an editor counts).
public struct ExportDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// No `#END=` line: the file is still being written, or was cut short.
        case incomplete
        case endCountMismatch(declared: Int, actual: Int)
        case invalidNumber(String)
        case invalidTimestamp(String)
        case invalidValue(String)
        case missingKey
        case duplicateKey
        case malformedDirective(String)
        case unexpectedDirective
        case missingHeaderRow
        case invalidHeader(String)
        case fieldCountMismatch(expected: Int, found: Int)
        case contentAfterEnd
        case unterminatedQuote
        case malformedQuotedField
        case unsupportedFormat(String)
        case invalidAlarm(String)
    }

    public var reason: Reason
    public var line: Int
    /// 1-based CSV column, for data and header rows.
    public var column: Int?
    /// Preamble key, for `#KEY=` lines.
    public var key: String?

    public init(_ reason: Reason, line: Int, column: Int? = nil, key: String? = nil) {
        self.reason = reason
        self.line = line
        self.column = column
        self.key = key
    }

    public var description: String {
        var place = "line \(line)"
        if let column { place += ", column \(column)" }
        if let key { place += ", #\(key)" }
        let what: String =
            switch reason {
            case .incomplete: "file is incomplete (no #END line)"
            case .endCountMismatch(let declared, let actual): "#END says \(declared) data rows, the file has \(actual)"
            case .invalidNumber(let value): "\"\(value)\" is not a number"
            case .invalidTimestamp(let value): "\"\(value)\" is not a YYYYMMDDHHMMSS timestamp"
            case .invalidValue(let value): "invalid value \"\(value)\""
            case .missingKey: "required key missing"
            case .duplicateKey: "key given twice"
            case .malformedDirective(let text): "\"\(text)\" is not #KEY=value"
            case .unexpectedDirective: "key not allowed after the header row"
            case .missingHeaderRow: "expected the TIMESTAMP header row"
            case .invalidHeader(let value): "bad header column \"\(value)\""
            case .fieldCountMismatch(let expected, let found): "\(found) fields, the header has \(expected)"
            case .contentAfterEnd: "content after the #END line"
            case .unterminatedQuote: "quoted field never closed"
            case .malformedQuotedField: "text after a closing quote"
            case .unsupportedFormat(let value): "unsupported format \"\(value)\""
            case .invalidAlarm(let value): "\"\(value)\" is not timestamp^code^text^severity"
            }
        return "\(place): \(what)"
    }
}

public enum ExportCSV: Sendable {
    public static let format = "OPTIA-EXPORT/1"

    // MARK: Encoding

    public static func encode(_ run: ExportRun) -> String {
        var out = ""
        func line(_ fields: [String]) {
            out += fields.map(quoted).joined(separator: ",")
            out += "\r\n"
        }
        func directive(_ key: String, _ value: String) { line(["#\(key)=\(value)"]) }

        directive("FORMAT", format)
        directive("MODEL", run.device.model)
        directive("SOFTWARE_VERSION", run.device.softwareVersion)
        directive("SERIAL", run.device.serialNumber)
        directive("RUN_ID", run.runID)
        directive("PROCEDURE", run.procedure.rawValue)
        if let start = run.runStart { directive("RUN_START", start.wire) }
        if let patient = run.patient {
            directive("PATIENT_ID", patient.id)
            directive("PATIENT_FAMILY", patient.familyName)
            directive("PATIENT_GIVEN", patient.givenName)
            if let date = patient.birthDate { directive("BIRTH_DATE", date.wire) }
            directive("SEX", patient.sex.rawValue)
            if let height = patient.heightCentimetres { directive("HEIGHT_CM", E1394Encoder.formatNumber(height)) }
            if let weight = patient.weightKilograms { directive("WEIGHT_KG", E1394Encoder.formatNumber(weight)) }
        }
        for setting in run.settings {
            switch setting.value {
            case .number(let number): directive(setting.code.rawValue, E1394Encoder.formatNumber(number))
            case .text(let text): directive(setting.code.rawValue, text)
            }
        }
        line(["TIMESTAMP"] + run.telemetryCodes.map(\.rawValue))

        var noteIndex = 0
        func notes(upTo rowCount: Int) {
            while noteIndex < run.notes.count, run.notes[noteIndex].afterRow <= rowCount {
                let note = run.notes[noteIndex]
                directive("ALARM", "\(note.timestamp.wire)^\(note.code)^\(note.text)^\(note.severity.rawValue)")
                noteIndex += 1
            }
        }
        for (index, row) in run.rows.enumerated() {
            notes(upTo: index)
            var fields = [row.timestamp.wire]
            for column in run.telemetryCodes.indices {
                let value = column < row.values.count ? row.values[column] : nil
                fields.append(value.map(E1394Encoder.formatNumber) ?? "")
            }
            line(fields)
        }
        notes(upTo: Int.max)
        directive("END", String(run.rows.count))
        return out
    }

    static func quoted(_ field: String) -> String {
        guard field.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0D || $0 == 0x0A }) else { return field }
        var out = "\""
        for character in field {
            out.append(character)
            if character == "\"" { out.append("\"") }
        }
        out.append("\"")
        return out
    }

    // MARK: Decoding

    private static let preambleKeys: Set<String> = [
        "FORMAT", "MODEL", "SOFTWARE_VERSION", "SERIAL", "RUN_ID", "PROCEDURE", "RUN_START", "PATIENT_ID",
        "PATIENT_FAMILY", "PATIENT_GIVEN", "BIRTH_DATE", "SEX", "HEIGHT_CM", "WEIGHT_KG",
    ]
    private static let patientKeys: Set<String> = [
        "PATIENT_ID", "PATIENT_FAMILY", "PATIENT_GIVEN", "BIRTH_DATE", "SEX", "HEIGHT_CM", "WEIGHT_KG",
    ]

    public static func decode(_ text: String) throws(ExportDecodingError) -> ExportRun {
        let records = try CSVRecords.parse(Array(text.utf8))
        var preamble: [String: (value: String, line: Int)] = [:]
        var settings: [ExportRun.Setting] = []
        var settingCodes: Set<ParameterCode> = []
        var header: [ParameterCode]?
        var rows: [ExportRun.Row] = []
        var notes: [ExportRun.Note] = []
        var ended = false
        var runStart: DeviceTimestamp?
        var birthDate: CalendarDate?
        var sex = Sex.unknown
        var height: Double?
        var weight: Double?

        for record in records {
            let fields = record.fields
            let isBlank = fields.count == 1 && fields[0].isEmpty && !record.quoted
            if isBlank { continue }
            guard !ended else { throw ExportDecodingError(.contentAfterEnd, line: record.line) }

            if fields[0].hasPrefix("#") {
                // An unquoted comma splits a directive; it was meant as one value.
                let directive = fields.joined(separator: ",").dropFirst()
                guard let equals = directive.firstIndex(of: "="), equals > directive.startIndex else {
                    throw ExportDecodingError(.malformedDirective(String(directive)), line: record.line)
                }
                let key = String(directive[..<equals])
                let value = String(directive[directive.index(after: equals)...])
                let line = record.line
                func invalid(_ reason: ExportDecodingError.Reason) -> ExportDecodingError {
                    ExportDecodingError(reason, line: line, key: key)
                }

                switch key {
                case "ALARM":
                    notes.append(try note(value, afterRow: rows.count, line: line))
                case "END":
                    guard header != nil else { throw ExportDecodingError(.missingHeaderRow, line: line) }
                    guard let count = Int(value), count >= 0 else { throw invalid(.invalidValue(value)) }
                    guard count == rows.count else { throw invalid(.endCountMismatch(declared: count, actual: rows.count)) }
                    ended = true
                default:
                    guard header == nil else { throw invalid(.unexpectedDirective) }
                    if preambleKeys.contains(key) {
                        guard preamble[key] == nil else { throw invalid(.duplicateKey) }
                        preamble[key] = (value, line)
                        switch key {
                        case "FORMAT":
                            guard value == format else { throw invalid(.unsupportedFormat(value)) }
                        case "RUN_START":
                            guard let timestamp = DeviceTimestamp(wire: value) else { throw invalid(.invalidTimestamp(value)) }
                            runStart = timestamp
                        case "BIRTH_DATE":
                            guard let date = CalendarDate(wire: value) else { throw invalid(.invalidValue(value)) }
                            birthDate = date
                        case "SEX":
                            guard let parsed = Sex(rawValue: value) else { throw invalid(.invalidValue(value)) }
                            sex = parsed
                        case "HEIGHT_CM":
                            guard let number = parseStrictDouble(value.utf8) else { throw invalid(.invalidNumber(value)) }
                            height = number
                        case "WEIGHT_KG":
                            guard let number = parseStrictDouble(value.utf8) else { throw invalid(.invalidNumber(value)) }
                            weight = number
                        default:
                            break
                        }
                    } else {
                        let code = ParameterCode(key)
                        guard settingCodes.insert(code).inserted else { throw invalid(.duplicateKey) }
                        let number = parseStrictDouble(value.utf8)
                        if let definition = code.definition, definition.isNumeric, number == nil {
                            throw invalid(.invalidNumber(value))
                        }
                        let isText = code.definition.map { !$0.isNumeric } ?? (number == nil)
                        settings.append(.init(code: code, value: isText ? .text(value) : .number(number ?? 0)))
                    }
                }
                continue
            }

            guard let columns = header else {
                guard fields[0] == "TIMESTAMP" else { throw ExportDecodingError(.missingHeaderRow, line: record.line, column: 1) }
                var seen: Set<String> = []
                for (index, name) in fields.enumerated().dropFirst() where name.isEmpty || !seen.insert(name).inserted {
                    throw ExportDecodingError(.invalidHeader(name), line: record.line, column: index + 1)
                }
                for key in ["SERIAL", "RUN_ID"] where preamble[key] == nil {
                    throw ExportDecodingError(.missingKey, line: record.line, key: key)
                }
                header = fields.dropFirst().map(ParameterCode.init(rawValue:))
                continue
            }

            guard fields.count == columns.count + 1 else {
                throw ExportDecodingError(
                    .fieldCountMismatch(expected: columns.count + 1, found: fields.count), line: record.line)
            }
            guard let timestamp = DeviceTimestamp(wire: fields[0]) else {
                throw ExportDecodingError(.invalidTimestamp(fields[0]), line: record.line, column: 1)
            }
            // A device clock that jumps back makes timestamps decrease: the rows
            // are kept as written (data quality is the watcher's to mark, not a
            // reason to refuse the file).
            var values: [Double?] = []
            values.reserveCapacity(columns.count)
            for (index, cell) in fields.enumerated().dropFirst() {
                if cell.isEmpty {
                    values.append(nil)
                } else if let number = parseStrictDouble(cell.utf8) {
                    values.append(number)
                } else {
                    throw ExportDecodingError(.invalidNumber(cell), line: record.line, column: index + 1)
                }
            }
            rows.append(.init(timestamp: timestamp, values: values))
        }

        guard ended else { throw ExportDecodingError(.incomplete, line: (records.last?.line ?? 0) + 1) }
        func string(_ key: String) -> String { preamble[key]?.value ?? "" }
        let hasPatient = !patientKeys.isDisjoint(with: preamble.keys)
        let patient =
            hasPatient
            ? Patient(
                id: string("PATIENT_ID"), familyName: string("PATIENT_FAMILY"), givenName: string("PATIENT_GIVEN"),
                birthDate: birthDate, sex: sex, heightCentimetres: height, weightKilograms: weight) : nil
        return ExportRun(
            device: DeviceIdentity(model: string("MODEL"), softwareVersion: string("SOFTWARE_VERSION"), serialNumber: string("SERIAL")),
            runID: string("RUN_ID"), procedure: Procedure(rawValue: string("PROCEDURE")), runStart: runStart, patient: patient,
            settings: settings, telemetryCodes: header ?? [], rows: rows, notes: notes)
    }

    private static func note(_ value: String, afterRow: Int, line: Int) throws(ExportDecodingError) -> ExportRun.Note {
        let invalid = ExportDecodingError(.invalidAlarm(value), line: line, key: "ALARM")
        guard let first = value.firstIndex(of: "^") else { throw invalid }
        let rest = value[value.index(after: first)...]
        guard let second = rest.firstIndex(of: "^"), let last = rest.lastIndex(of: "^"), second < last else { throw invalid }
        guard let timestamp = DeviceTimestamp(wire: value[..<first]) else { throw invalid }
        guard let severity = Severity(rawValue: String(rest[rest.index(after: last)...])) else { throw invalid }
        return ExportRun.Note(
            afterRow: afterRow, timestamp: timestamp, code: String(rest[..<second]),
            text: String(rest[rest.index(after: second)..<last]), severity: severity)
    }
}

/// RFC 4180 records with the line each starts on.
private struct CSVRecords {
    struct Record {
        var fields: [String]
        var line: Int
        /// A record of one quoted empty field is not a blank line.
        var quoted: Bool
    }

    static func parse(_ bytes: [UInt8]) throws(ExportDecodingError) -> [Record] {
        let quote: UInt8 = 0x22, comma: UInt8 = 0x2C, cr: UInt8 = 0x0D, lf: UInt8 = 0x0A
        var records: [Record] = []
        var line = 1
        var i = 0
        let n = bytes.count
        while i < n {
            let recordLine = line
            var fields: [String] = []
            var anyQuoted = false
            var atRecordEnd = false
            while !atRecordEnd {
                var field: [UInt8] = []
                if i < n, bytes[i] == quote {
                    anyQuoted = true
                    i += 1
                    var closed = false
                    while i < n {
                        let byte = bytes[i]
                        if byte == quote {
                            if i + 1 < n, bytes[i + 1] == quote {
                                field.append(quote)
                                i += 2
                                continue
                            }
                            i += 1
                            closed = true
                            break
                        }
                        if byte == lf || (byte == cr && !(i + 1 < n && bytes[i + 1] == lf)) { line += 1 }
                        field.append(byte)
                        i += 1
                    }
                    guard closed else { throw ExportDecodingError(.unterminatedQuote, line: recordLine) }
                    guard i >= n || bytes[i] == comma || bytes[i] == cr || bytes[i] == lf else {
                        throw ExportDecodingError(.malformedQuotedField, line: line)
                    }
                } else {
                    while i < n, bytes[i] != comma, bytes[i] != cr, bytes[i] != lf {
                        field.append(bytes[i])
                        i += 1
                    }
                }
                fields.append(String(decoding: field, as: UTF8.self))
                if i < n, bytes[i] == comma {
                    i += 1
                    continue
                }
                atRecordEnd = true
                if i < n, bytes[i] == cr { i += 1 }
                if i < n, bytes[i] == lf { i += 1 }
                line += 1
            }
            records.append(Record(fields: fields, line: recordLine, quoted: anyQuoted))
        }
        return records
    }
}
