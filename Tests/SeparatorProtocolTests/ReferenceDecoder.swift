import SeparatorProtocol

// The E1394 decoder as it stood before its optimisation (issue 12), kept as an oracle:
// DecodeEquivalenceTests hold the decoder to exactly these values and errors. A deliberate
// change of what the decoder accepts or reports must be made here as well.

enum ReferenceDecoder {
    static func decode(_ text: some Collection<UInt8>) throws(MessageDecodingError) -> SeparatorMessage {
        var parser = ReferenceParser(reader: ReferenceRecordReader(bytes: Array(text)))
        return try parser.parse()
    }
}

private func referenceStrictDouble(_ bytes: some Collection<UInt8>) -> Double? {
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
    guard let value = Double(String(decoding: bytes, as: UTF8.self)), value.isFinite else { return nil }
    return value
}

/// Positive decimal without sign or blanks, within `Int`/`UInt64` range.
private func referencePositiveDecimal(_ bytes: some Collection<UInt8>) -> UInt64? {
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

private struct ReferenceParser {
    var reader: ReferenceRecordReader
    var records: [Range<Int>] = []
    var position = 0
    /// Fields of the current record.
    var fields: [Range<Int>] = []

    init(reader: ReferenceRecordReader) { self.reader = reader }

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
        guard referenceIsValid(delimiters), first.count == 5 || bytes[s + 5] == delimiters.field else {
            throw error(.invalidDelimiters, record: 0, field: 2)
        }
        reader.delimiters = delimiters

        // H
        load(0)
        guard let sequenceNumber = referencePositiveDecimal(bytes[field(3)]) else {
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
        while position < records.count, recordType(position) == bodyType {
            load(position)
            if bodyType == UInt8(ascii: "R") { results.append(try parseResult()) } else { comments.append(try parseComment()) }
            position += 1
        }
        let bodyName = String(decoding: [bodyType], as: UTF8.self)
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
            guard let date = referenceDate(reader.raw(field(8))) else {
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
        let procedureParts = reader.componentRanges(in: field(5))
        guard procedureParts.count == 4, !procedureParts[3].isEmpty else {
            throw error(.invalidProcedure(reader.raw(field(5))), record: position, field: 5)
        }
        let procedure = Procedure(rawValue: try text(procedureParts[3], field: 5))
        // Written in field 8 as the spec's example has it; field 7, as its table says, is read too.
        let runStart = try optionalTimestamp(field: field(8).isEmpty ? 7 : 8)
        return Order(runID: runID, procedure: procedure, runStart: runStart)
    }

    mutating func parseResult() throws(MessageDecodingError) -> ResultRecord {
        let sequence = try recordSequence()
        let codeParts = reader.componentRanges(in: field(3))
        guard codeParts.count == 4, !codeParts[3].isEmpty else {
            throw error(.invalidParameterCode(reader.raw(field(3))), record: position, field: 3)
        }
        let code = ParameterCode(try text(codeParts[3], field: 3))
        let unit = try text(field(5), field: 5)
        let valueRange = field(4)
        let value: ResultValue
        if let definition = code.definition {
            guard unit == definition.unit else {
                throw error(.unitMismatch(code: code.rawValue, found: unit, expected: definition.unit), record: position, field: 5)
            }
            if definition.isNumeric {
                guard let number = referenceStrictDouble(bytes[valueRange]) else {
                    throw error(.invalidNumber(code: code.rawValue, value: reader.raw(valueRange)), record: position, field: 4)
                }
                value = .number(number)
            } else {
                value = .text(try text(valueRange, field: 4))
            }
        } else if let number = referenceStrictDouble(bytes[valueRange]) {
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
        fields = reader.fieldRanges(in: records[index])
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
        guard let value = referencePositiveDecimal(bytes[field(2)]), value <= UInt64(Int.max) else {
            throw error(.invalidSequenceNumber(reader.raw(field(2))), record: position, field: 2)
        }
        return Int(value)
    }

    func requiredTimestamp(field number: Int) throws(MessageDecodingError) -> DeviceTimestamp {
        guard let timestamp = referenceTimestamp(reader.raw(field(number))) else {
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
        guard parts.count == 2, reader.matches(parts[1], unit), let value = referenceStrictDouble(bytes[parts[0]]) else {
            throw error(.invalidMeasurement(reader.raw(range), expectedUnit: "\(unit)"), record: position, field: number)
        }
        return value
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

private func referenceTimestamp(_ wire: String) -> DeviceTimestamp? {
    let digits = Array(wire.utf8)
    guard digits.count == 14, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + Int($1 - 0x30) } }
    return DeviceTimestamp(
        year: number(0..<4), month: number(4..<6), day: number(6..<8),
        hour: number(8..<10), minute: number(10..<12), second: number(12..<14))
}

private func referenceDate(_ wire: String) -> CalendarDate? {
    let digits = Array(wire.utf8)
    guard digits.count == 8, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    func number(_ range: Range<Int>) -> Int { digits[range].reduce(0) { $0 * 10 + Int($1 - 0x30) } }
    return CalendarDate(year: number(0..<4), month: number(4..<6), day: number(6..<8))
}

private func referenceIsValid(_ d: Delimiters) -> Bool {
    func isPunctuation(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E: true
        default: false
        }
    }
    let all = [d.field, d.repeat, d.component, d.escape]
    return Set(all).count == 4 && all.allSatisfy(isPunctuation)
}

private struct ReferenceRecordReader: Sendable {
    let bytes: [UInt8]
    var delimiters: Delimiters

    init(bytes: [UInt8], delimiters: Delimiters = .standard) {
        self.bytes = bytes
        self.delimiters = delimiters
    }

    /// Records without their CR. A last record without CR counts; the empty tail after a final CR does not.
    func recordRanges() -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        for index in bytes.indices where bytes[index] == ASCIIControl.cr {
            ranges.append(start..<index)
            start = index + 1
        }
        if start < bytes.count { ranges.append(start..<bytes.count) }
        return ranges
    }

    /// Field ranges of a record; element 0 is field 1 (the record type).
    func fieldRanges(in record: Range<Int>) -> [Range<Int>] {
        split(record, at: delimiters.field)
    }

    /// Component ranges of a field (a single range when it has no component delimiter).
    func componentRanges(in field: Range<Int>) -> [Range<Int>] {
        split(field, at: delimiters.component)
    }

    /// Whether the range holds exactly these ASCII bytes.
    func matches(_ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        return literal.withUTF8Buffer { literalBytes in
            var i = range.lowerBound
            for byte in literalBytes {
                if bytes[i] != byte { return false }
                i += 1
            }
            return true
        }
    }

    /// The raw bytes as a string (invalid UTF-8 repaired); for error messages and raw fields.
    func raw(_ range: Range<Int>) -> String {
        String(decoding: bytes[clamped(range)], as: UTF8.self)
    }

    /// The value with escapes (`&F&`, `&S&`, `&R&`, `&E&`, `&Xhh..&`) resolved.
    /// Any other sequence, a lone escape delimiter, or invalid UTF-8 is an error:
    /// guessing would store a value the device never meant.
    func text(_ range: Range<Int>) throws(EscapeError) -> String {
        let range = clamped(range)
        let slice = bytes[range]
        if !slice.contains(delimiters.escape) {
            guard let string = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8 }
            return string
        }
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            guard byte == delimiters.escape else {
                out.append(byte)
                index += 1
                continue
            }
            var end = index + 1
            while end < range.upperBound, bytes[end] != delimiters.escape { end += 1 }
            guard end < range.upperBound else { throw .unterminated }
            let sequence = bytes[(index + 1)..<end]
            if sequence.count == 1, let first = sequence.first {
                switch first {
                case UInt8(ascii: "F"): out.append(delimiters.field)
                case UInt8(ascii: "S"): out.append(delimiters.component)
                case UInt8(ascii: "R"): out.append(delimiters.repeat)
                case UInt8(ascii: "E"): out.append(delimiters.escape)
                default: throw .unknownSequence(String(decoding: sequence, as: UTF8.self))
                }
            } else if let hex = Self.hexBytes(sequence) {
                out.append(contentsOf: hex)
            } else {
                throw .unknownSequence(String(decoding: sequence, as: UTF8.self))
            }
            index = end + 1
        }
        guard let string = String(validating: out, as: UTF8.self) else { throw .invalidUTF8 }
        return string
    }

    /// `Xhh..`: pairs of hex digits, at least one pair.
    private static func hexBytes(_ sequence: ArraySlice<UInt8>) -> [UInt8]? {
        guard sequence.first == UInt8(ascii: "X"), sequence.count >= 3, (sequence.count - 1) % 2 == 0 else { return nil }
        var result: [UInt8] = []
        var index = sequence.startIndex + 1
        while index < sequence.endIndex {
            guard let value = E1381.hexValue(sequence[index], sequence[index + 1]) else { return nil }
            result.append(value)
            index += 2
        }
        return result
    }

    private func split(_ range: Range<Int>, at delimiter: UInt8) -> [Range<Int>] {
        let range = clamped(range)
        var ranges: [Range<Int>] = []
        var start = range.lowerBound
        for index in range where bytes[index] == delimiter {
            ranges.append(start..<index)
            start = index + 1
        }
        ranges.append(start..<range.upperBound)
        return ranges
    }

    private func clamped(_ range: Range<Int>) -> Range<Int> { range.clamped(to: 0..<bytes.count) }
}

