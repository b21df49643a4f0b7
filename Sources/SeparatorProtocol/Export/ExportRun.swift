/// Everything a finished run's export file holds (separator-interface.md, section 6).
public struct ExportRun: Hashable, Sendable {
    /// A RUN_START setting as the file carries it: no unit (known codes have their defined one).
    public struct Setting: Hashable, Sendable {
        public var code: ParameterCode
        public var value: ResultValue
        public init(code: ParameterCode, value: ResultValue) {
            self.code = code
            self.value = value
        }
    }

    /// One TICK (or, last, the RUN_END values). `values` line up with `telemetryCodes`; nil is an empty cell.
    public struct Row: Hashable, Sendable {
        public var timestamp: DeviceTimestamp
        public var values: [Double?]
        public init(timestamp: DeviceTimestamp, values: [Double?]) {
            self.timestamp = timestamp
            self.values = values
        }
    }

    /// An alarm or event (`#ALARM=` line).
    public struct Note: Hashable, Sendable {
        /// How many data rows precede it in the file.
        public var afterRow: Int
        public var timestamp: DeviceTimestamp
        public var code: String
        public var text: String
        public var severity: Severity
        public init(afterRow: Int, timestamp: DeviceTimestamp, code: String, text: String, severity: Severity) {
            self.afterRow = afterRow
            self.timestamp = timestamp
            self.code = code
            self.text = text
            self.severity = severity
        }
        /// PAUSE, RESUME, RINSEBACK, OPERATOR_NOTE come from EVENT messages, the rest from ALARM.
        public var kind: MessageKind { CommentRecord.eventCodes.contains(code) ? .event : .alarm }
    }

    public var device: DeviceIdentity
    public var runID: String
    public var procedure: Procedure
    public var runStart: DeviceTimestamp?
    public var patient: Patient?
    public var settings: [Setting]
    /// Header columns after TIMESTAMP.
    public var telemetryCodes: [ParameterCode]
    public var rows: [Row]
    public var notes: [Note]

    public init(
        device: DeviceIdentity, runID: String, procedure: Procedure, runStart: DeviceTimestamp?, patient: Patient?,
        settings: [Setting], telemetryCodes: [ParameterCode], rows: [Row], notes: [Note]
    ) {
        self.device = device
        self.runID = runID
        self.procedure = procedure
        self.runStart = runStart
        self.patient = patient
        self.settings = settings
        self.telemetryCodes = telemetryCodes
        self.rows = rows
        self.notes = notes
    }

    /// The number `#END=` states.
    public var rowCount: Int { rows.count }

    public func value(_ code: ParameterCode, row: Int) -> Double? {
        guard let column = telemetryCodes.firstIndex(of: code), rows.indices.contains(row),
            rows[row].values.indices.contains(column)
        else { return nil }
        return rows[row].values[column]
    }
}

public enum ExportRunBuildError: Error, Hashable, Sendable, CustomStringConvertible {
    case missingRunStart
    case missingRunEnd
    /// A message whose serial number or run id differs from the RUN_START's; `index` is 0-based.
    case foreignMessage(index: Int)
    /// A second RUN_START, or a TICK or RUN_END after RUN_END; `index` is 0-based.
    case outOfOrder(index: Int)

    public var description: String {
        switch self {
        case .missingRunStart: "the run has no RUN_START message first"
        case .missingRunEnd: "the run has no RUN_END message"
        case .foreignMessage(let index): "message \(index + 1) belongs to another device or run"
        case .outOfOrder(let index): "message \(index + 1) is out of order (second RUN_START, or data after RUN_END)"
        }
    }
}

extension ExportRun {
    /// Builds the file's content from a run's messages in the order they were sent:
    /// RUN_START first, then TICK, ALARM and EVENT messages, RUN_END last.
    /// The header holds every telemetry code of the interface in spec order, then unknown
    /// numeric codes in order of first appearance. Text-valued telemetry has no column
    /// and is left out.
    public init(messages: [SeparatorMessage]) throws(ExportRunBuildError) {
        guard let start = messages.first, start.kind == .runStart else { throw .missingRunStart }
        var codes = ParameterDefinition.telemetry.map(\.code)
        for message in messages where message.kind == .tick || message.kind == .runEnd {
            for result in message.results where result.value.number != nil && !codes.contains(result.code) {
                codes.append(result.code)
            }
        }
        let column = Dictionary(codes.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })

        var rows: [Row] = []
        var notes: [Note] = []
        var ended = false
        for (index, message) in messages.enumerated().dropFirst() {
            guard message.device.serialNumber == start.device.serialNumber, message.order.runID == start.order.runID else {
                throw .foreignMessage(index: index)
            }
            // Alarms may still follow RUN_END; data may not.
            let isData = message.kind == .tick || message.kind == .runEnd
            guard message.kind != .runStart, !(ended && isData) else { throw .outOfOrder(index: index) }
            switch message.kind {
            case .tick, .runEnd:
                var values = [Double?](repeating: nil, count: codes.count)
                for result in message.results {
                    if let number = result.value.number, let c = column[result.code], values[c] == nil { values[c] = number }
                }
                rows.append(Row(timestamp: message.timestamp, values: values))
                ended = message.kind == .runEnd
            case .alarm, .event:
                for comment in message.comments {
                    notes.append(
                        Note(
                            afterRow: rows.count, timestamp: message.timestamp, code: comment.code, text: comment.text,
                            severity: comment.severity))
                }
            case .runStart:
                break
            }
        }
        guard ended else { throw .missingRunEnd }
        self.init(
            device: start.device, runID: start.order.runID, procedure: start.order.procedure, runStart: start.order.runStart,
            patient: start.patient, settings: start.results.map { Setting(code: $0.code, value: $0.value) },
            telemetryCodes: codes, rows: rows, notes: notes)
    }

    /// The run as messages, the way the daemon ingests live ones: RUN_START, a TICK per row
    /// with the last row as RUN_END, and one ALARM or EVENT message per note, in file order.
    /// The file carries no sequence numbers: every message has `sequenceNumber` 0 and the
    /// caller numbers them. Units are the interface's for known codes, empty for unknown ones.
    /// RUN_START's timestamp is the run start (or the first row's time when absent).
    public func messages(receiverID: String = "APHERESISD") -> [SeparatorMessage] {
        let order = Order(runID: runID, procedure: procedure, runStart: runStart)
        func message(_ kind: MessageKind, at timestamp: DeviceTimestamp) -> SeparatorMessage {
            SeparatorMessage(
                sequenceNumber: 0, device: device, receiverID: receiverID, timestamp: timestamp, kind: kind,
                patient: kind == .runStart || kind == .runEnd ? patient : nil, order: order)
        }
        func unit(_ code: ParameterCode) -> String { code.definition?.unit ?? "" }

        var out: [SeparatorMessage] = []
        let startTime = runStart ?? rows.first?.timestamp ?? notes.first?.timestamp ?? DeviceTimestamp(secondsSinceEpoch: 0)
        var first = message(.runStart, at: startTime)
        first.results = settings.enumerated().map { index, setting in
            ResultRecord(sequence: index + 1, code: setting.code, value: setting.value, unit: unit(setting.code), timestamp: startTime)
        }
        out.append(first)

        var noteIndex = 0
        func appendNotes(upTo rowCount: Int) {
            while noteIndex < notes.count, notes[noteIndex].afterRow <= rowCount {
                let note = notes[noteIndex]
                var m = message(note.kind, at: note.timestamp)
                m.comments = [CommentRecord(sequence: 1, code: note.code, text: note.text, severity: note.severity)]
                out.append(m)
                noteIndex += 1
            }
        }
        for (index, row) in rows.enumerated() {
            appendNotes(upTo: index)
            var m = message(index == rows.count - 1 ? .runEnd : .tick, at: row.timestamp)
            var sequence = 0
            for (column, value) in row.values.enumerated() {
                guard let value, column < telemetryCodes.count else { continue }
                sequence += 1
                let code = telemetryCodes[column]
                m.results.append(
                    ResultRecord(sequence: sequence, code: code, value: .number(value), unit: unit(code), timestamp: row.timestamp))
            }
            out.append(m)
        }
        appendNotes(upTo: Int.max)
        return out
    }
}
