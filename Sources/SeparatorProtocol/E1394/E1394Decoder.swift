/// Reads and validates one message (separator-interface.md, section 3). Any byte
/// sequence is safe input: it either decodes or throws, never traps.
public enum E1394Decoder: Sendable {
    public static func decode(_ text: some Collection<UInt8>) throws(MessageDecodingError) -> SeparatorMessage {
        var parser = MessageParser(reader: E1394RecordReader(bytes: Array(text)))
        return try parser.parse()
    }
}

/// Decimal number in plain or exponent notation, nothing else: `nan`, `inf`, hex,
/// blanks and the empty string are rejected, and so is anything that overflows.
func parseStrictDouble(_ bytes: some Collection<UInt8>) -> Double? {
    var state = 0  // 0 start, 1 sign, 2 int digits, 3 dot, 4 fraction digits, 5 e, 6 e sign, 7 exponent digits
    var mantissaDigits = 0
    for byte in bytes {
        let isDigit = byte >= 0x30 && byte <= 0x39
        switch (state, byte) {
        case (0, UInt8(ascii: "+")), (0, UInt8(ascii: "-")): state = 1
        case (0...2, _) where isDigit: state = 2; mantissaDigits += 1
        case (0...2, UInt8(ascii: ".")): state = 3
        case (3...4, _) where isDigit: state = 4; mantissaDigits += 1
        case (2...4, UInt8(ascii: "e")), (2...4, UInt8(ascii: "E")): guard mantissaDigits > 0 else { return nil }; state = 5
        case (5, UInt8(ascii: "+")), (5, UInt8(ascii: "-")): state = 6
        case (5...7, _) where isDigit: state = 7
        default: return nil
        }
    }
    guard mantissaDigits > 0, [2, 3, 4, 7].contains(state) else { return nil }
    if let value = exactDecimal(bytes) { return value }
    guard let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
    return value
}

/// The value of a checked plain decimal (`-12.83`, no exponent) when it can be computed exactly
/// in one step: digits below 2^53 and at most 22 of them after the point. Both the integer and
/// the power of ten are then exact doubles, and one IEEE division rounds correctly, so the result
/// is the one strtod gives (Clinger's fast path), without making a string and calling strtod.
/// Nil for anything else (exponents, long mantissas): the caller takes the general path.
private func exactDecimal(_ bytes: some Collection<UInt8>) -> Double? {
    var mantissa: UInt64 = 0
    var fractionDigits = 0
    var negative = false
    var afterPoint = false
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "-"): negative = true
        case UInt8(ascii: "+"): break
        case UInt8(ascii: "."): afterPoint = true
        case 0x30...0x39:
            mantissa = mantissa * 10 + UInt64(byte - 0x30)
            guard mantissa < 1 << 53 else { return nil }
            if afterPoint { fractionDigits += 1 }
        default: return nil  // an exponent
        }
    }
    guard fractionDigits < exactPowersOfTen.count else { return nil }
    let magnitude = Double(mantissa) / exactPowersOfTen[fractionDigits]
    return negative ? -magnitude : magnitude
}

/// 10^0 through 10^22: the powers of ten a double holds exactly.
private let exactPowersOfTen: [Double] = (0...22).map { exponent in
    (0..<exponent).reduce(1.0) { power, _ in power * 10 }
}

/// Positive decimal without sign or blanks, within `Int`/`UInt64` range.
func parsePositiveDecimal(_ bytes: some Collection<UInt8>) -> UInt64? {
    guard !bytes.isEmpty else { return nil }
    var value: UInt64 = 0
    for byte in bytes {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        let (times10, o1) = value.multipliedReportingOverflow(by: 10)
        let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
        guard !o1, !o2 else { return nil }
        value = sum
    }
    return value > 0 ? value : nil
}

private struct MessageParser {
    var reader: E1394RecordReader
    var records: [Range<Int>] = []
    var position = 0
    /// Fields of the current record; one array for every record of the message.
    var fields: [Range<Int>] = []

    init(reader: E1394RecordReader) { self.reader = reader }

    var bytes: [UInt8] { reader.bytes }

    mutating func parse() throws(MessageDecodingError) -> SeparatorMessage {
        records = reader.recordRanges()
        guard let first = records.first else {
            throw MessageDecodingError(.emptyMessage, at: .init(record: nil, recordType: nil, field: nil, byteOffset: 0))
        }
        guard first.count >= 5, bytes[first.lowerBound] == UInt8(ascii: "H") else {
            throw error(.missingHeader(found: typeName(of: first)), record: 0)
        }
        let s = first.lowerBound
        let delimiters = Delimiters(field: bytes[s + 1], repeat: bytes[s + 2], component: bytes[s + 3], escape: bytes[s + 4])
        guard delimiters.isValid, first.count == 5 || bytes[s + 5] == delimiters.field else {
            throw error(.invalidDelimiters, record: 0, field: 2)
        }
        reader.delimiters = delimiters

        // H
        load(0)
        guard let sequenceNumber = withBytes(field(3), parsePositiveDecimal) else {
            throw error(.invalidSequenceNumber(reader.raw(field(3))), record: 0, field: 3)
        }
        let sender = reader.componentRanges(in: field(5))
        let model = try text(sender[0], field: 5)
        let softwareVersion = sender.count > 1 ? try text(sender[1], field: 5) : ""
        let serial = sender.count > 2 ? try text(sender[2], field: 5) : ""
        guard !serial.isEmpty else { throw error(.missingSerialNumber, record: 0, field: 5) }
        let receiverID = try text(field(10), field: 10)
        let processingID = try text(field(12), field: 12)
        let version = try text(field(13), field: 13)
        let timestamp = try requiredTimestamp(field: 14)

        // M
        try expect("M", at: 1)
        guard reader.matches(field(3), "OSTI") else {
            throw error(.unknownManufacturer(reader.raw(field(3))), record: 1, field: 3)
        }
        guard let kind = MessageKind(rawValue: reader.raw(field(4))) else {
            throw error(.unknownKind(reader.raw(field(4))), record: 1, field: 4)
        }
        let interfaceVersion = try text(field(5), field: 5)
        position = 2

        var patient: Patient?
        if kind == .runStart || kind == .runEnd {
            try expect("P", at: position)
            patient = try parsePatient()
            position += 1
        }

        try expect("O", at: position)
        let order = try parseOrder()
        position += 1

        var results: [ResultRecord] = []
        var comments: [CommentRecord] = []
        let bodyType: UInt8 = (kind == .alarm || kind == .event) ? UInt8(ascii: "C") : UInt8(ascii: "R")
        // At most every remaining record is a body record: one allocation instead of growing.
        if bodyType == UInt8(ascii: "R") { results.reserveCapacity(records.count - position) }
        while position < records.count, recordType(position) == bodyType {
            load(position)
            if bodyType == UInt8(ascii: "R") { results.append(try parseResult()) } else { comments.append(try parseComment()) }
            position += 1
        }
        let bodyName = bodyType == UInt8(ascii: "R") ? "R" : "C"
        if results.isEmpty && comments.isEmpty {
            if position < records.count, recordType(position) == UInt8(ascii: "L") {
                throw error(.missingRecord(expected: bodyName), record: position)
            }
            try expect(bodyName, at: position)
        }

        guard position < records.count else {
            throw MessageDecodingError(
                .missingTerminator, at: .init(record: nil, recordType: nil, field: nil, byteOffset: bytes.count))
        }
        guard recordType(position) == UInt8(ascii: "L") else {
            throw error(.unexpectedRecord(found: typeName(of: records[position]), expected: "\(bodyName) or L"), record: position)
        }
        if position + 1 < records.count {
            throw error(.recordAfterTerminator(found: typeName(of: records[position + 1])), record: position + 1)
        }

        return SeparatorMessage(
            sequenceNumber: sequenceNumber,
            device: DeviceIdentity(model: model, softwareVersion: softwareVersion, serialNumber: serial),
            receiverID: receiverID, processingID: processingID, version: version, timestamp: timestamp, kind: kind,
            interfaceVersion: interfaceVersion, patient: patient, order: order, results: results, comments: comments)
    }

    // MARK: Records

    mutating func parsePatient() throws(MessageDecodingError) -> Patient {
        let id = try text(field(3), field: 3)
        let name = reader.componentRanges(in: field(6))
        let family = try text(name[0], field: 6)
        let given = name.count > 1 ? try text(name[1], field: 6) : ""
        var birthDate: CalendarDate?
        if !field(8).isEmpty {
            guard let date = withBytes(field(8), CalendarDate.init(wireDigits:)) else {
                throw error(.invalidDate(reader.raw(field(8))), record: position, field: 8)
            }
            birthDate = date
        }
        guard let sex = Sex(rawValue: reader.raw(field(9))) else {
            throw error(.invalidSex(reader.raw(field(9))), record: position, field: 9)
        }
        let height = try measurement(field: 17, unit: "cm")
        let weight = try measurement(field: 18, unit: "kg")
        return Patient(
            id: id, familyName: family, givenName: given, birthDate: birthDate, sex: sex,
            heightCentimetres: height, weightKilograms: weight)
    }

    mutating func parseOrder() throws(MessageDecodingError) -> Order {
        let runID = try text(field(3), field: 3)
        guard let procedureRange = reader.fourthComponent(of: field(5)), !procedureRange.isEmpty else {
            throw error(.invalidProcedure(reader.raw(field(5))), record: position, field: 5)
        }
        let procedure = Procedure(rawValue: try text(procedureRange, field: 5))
        // Written in field 8 as the spec's example has it; field 7, as its table says, is read too.
        let runStart = try optionalTimestamp(field: field(8).isEmpty ? 7 : 8)
        return Order(runID: runID, procedure: procedure, runStart: runStart)
    }

    mutating func parseResult() throws(MessageDecodingError) -> ResultRecord {
        let sequence = try recordSequence()
        guard let codeRange = reader.fourthComponent(of: field(3)), !codeRange.isEmpty else {
            throw error(.invalidParameterCode(reader.raw(field(3))), record: position, field: 3)
        }
        let code = ParameterCode(try text(codeRange, field: 3))
        let definition = code.definition
        let unit = try text(field(5), field: 5)
        let valueRange = field(4)
        let value: ResultValue
        if let definition {
            guard unit == definition.unit else {
                throw error(.unitMismatch(code: code.rawValue, found: unit, expected: definition.unit), record: position, field: 5)
            }
            if definition.isNumeric {
                guard let number = withBytes(valueRange, parseStrictDouble) else {
                    throw error(.invalidNumber(code: code.rawValue, value: reader.raw(valueRange)), record: position, field: 4)
                }
                value = .number(number)
            } else {
                value = .text(try text(valueRange, field: 4))
            }
        } else if let number = withBytes(valueRange, parseStrictDouble) {
            value = .number(number)
        } else {
            // Unknown codes are kept, never dropped: a value that is no number stays text.
            value = .text(try text(valueRange, field: 4))
        }
        let status = try text(field(9), field: 9)
        let timestamp = try optionalTimestamp(field: 13)
        return ResultRecord(sequence: sequence, code: code, value: value, unit: unit, status: status, timestamp: timestamp)
    }

    mutating func parseComment() throws(MessageDecodingError) -> CommentRecord {
        let sequence = try recordSequence()
        let source = try text(field(3), field: 3)
        let parts = reader.componentRanges(in: field(4))
        guard parts.count == 3 else { throw error(.invalidComment(reader.raw(field(4))), record: position, field: 4) }
        let code = try text(parts[0], field: 4)
        let commentText = try text(parts[1], field: 4)
        guard let severity = Severity(rawValue: reader.raw(parts[2])) else {
            throw error(.invalidSeverity(reader.raw(parts[2])), record: position, field: 4)
        }
        let type = try text(field(5), field: 5)
        return CommentRecord(sequence: sequence, source: source, code: code, text: commentText, severity: severity, type: type)
    }

    // MARK: Fields

    mutating func load(_ index: Int) {
        position = index
        reader.fieldRanges(in: records[index], into: &fields)
    }

    /// A missing trailing field reads as empty.
    func field(_ number: Int) -> Range<Int> {
        number >= 1 && number <= fields.count ? fields[number - 1] : records[position].upperBound..<records[position].upperBound
    }

    mutating func expect(_ type: String, at index: Int) throws(MessageDecodingError) {
        guard index < records.count else {
            throw MessageDecodingError(
                .missingRecord(expected: type), at: .init(record: nil, recordType: nil, field: nil, byteOffset: bytes.count))
        }
        let found = self.typeName(of: records[index])
        guard found == type else {
            position = index
            throw error(.unexpectedRecord(found: found, expected: type), record: index)
        }
        load(index)
    }

    func recordType(_ index: Int) -> UInt8? {
        let range = records[index]
        return range.isEmpty ? nil : bytes[range.lowerBound]
    }

    func typeName(of record: Range<Int>) -> String {
        record.isEmpty ? "" : String(decoding: bytes[record.lowerBound..<(record.lowerBound + 1)], as: UTF8.self)
    }

    func text(_ range: Range<Int>, field: Int) throws(MessageDecodingError) -> String {
        do {
            return try reader.text(range)
        } catch {
            throw self.error(.invalidEscape(error), record: position, field: field, offset: range.lowerBound)
        }
    }

    func recordSequence() throws(MessageDecodingError) -> Int {
        guard let value = withBytes(field(2), parsePositiveDecimal), value <= UInt64(Int.max) else {
            throw error(.invalidSequenceNumber(reader.raw(field(2))), record: position, field: 2)
        }
        return Int(value)
    }

    func requiredTimestamp(field number: Int) throws(MessageDecodingError) -> DeviceTimestamp {
        guard let timestamp = withBytes(field(number), DeviceTimestamp.init(wireDigits:)) else {
            throw error(.invalidTimestamp(reader.raw(field(number))), record: position, field: number)
        }
        return timestamp
    }

    func optionalTimestamp(field number: Int) throws(MessageDecodingError) -> DeviceTimestamp? {
        field(number).isEmpty ? nil : try requiredTimestamp(field: number)
    }

    func measurement(field number: Int, unit: StaticString) throws(MessageDecodingError) -> Double? {
        let range = field(number)
        guard !range.isEmpty else { return nil }
        let parts = reader.componentRanges(in: range)
        guard parts.count == 2, reader.matches(parts[1], unit), let value = parseStrictDouble(bytes[parts[0]]) else {
            throw error(.invalidMeasurement(reader.raw(range), expectedUnit: "\(unit)"), record: position, field: number)
        }
        return value
    }

    /// Runs `body` on the bytes of `range` as a buffer: per-byte loops run several times faster on
    /// it than on an `ArraySlice`, which checks bounds (and holds the array) at every step.
    func withBytes<Result>(_ range: Range<Int>, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[range])) }
    }

    /// `record` is 0-based here; locations are 1-based.
    func error(_ reason: MessageDecodingError.Reason, record: Int, field: Int? = nil, offset: Int? = nil) -> MessageDecodingError {
        let range = records[record]
        var byteOffset = range.lowerBound
        if let field, record == position, field >= 1, field <= fields.count { byteOffset = fields[field - 1].lowerBound }
        return MessageDecodingError(
            reason, at: .init(record: record + 1, recordType: typeName(of: range), field: field, byteOffset: offset ?? byteOffset))
    }
}
