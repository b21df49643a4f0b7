/// Why a message's records do not parse, and where.
public struct MessageDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        case emptyMessage
        /// The first record is not an H record.
        case missingHeader(found: String)
        case invalidDelimiters
        case unexpectedRecord(found: String, expected: String)
        case missingRecord(expected: String)
        /// The message ends without an L record.
        case missingTerminator
        case recordAfterTerminator(found: String)
        case invalidSequenceNumber(String)
        case invalidTimestamp(String)
        case invalidDate(String)
        case invalidSex(String)
        case invalidMeasurement(String, expectedUnit: String)
        case missingSerialNumber
        case unknownManufacturer(String)
        case unknownKind(String)
        case invalidProcedure(String)
        case invalidParameterCode(String)
        case unitMismatch(code: String, found: String, expected: String)
        case invalidNumber(code: String, value: String)
        case invalidComment(String)
        case invalidSeverity(String)
        case invalidEscape(EscapeError)
    }

    public struct Location: Hashable, Sendable {
        /// 1-based; nil for the message as a whole.
        public var record: Int?
        /// The record type letter as received.
        public var recordType: String?
        /// 1-based, as E1394 counts fields (the type letter is field 1).
        public var field: Int?
        /// Offset of the record or field in the message text.
        public var byteOffset: Int

        public init(record: Int?, recordType: String?, field: Int?, byteOffset: Int) {
            self.record = record
            self.recordType = recordType
            self.field = field
            self.byteOffset = byteOffset
        }
    }

    public var reason: Reason
    public var location: Location

    public init(_ reason: Reason, at location: Location) {
        self.reason = reason
        self.location = location
    }

    /// E.g. `record 4 (R), field 5: unit "L" for TBV, expected "mL"`.
    public var description: String {
        var place = "message"
        if let record = location.record {
            place = "record \(record)"
            if let type = location.recordType { place += " (\(type))" }
            if let field = location.field { place += ", field \(field)" }
        }
        return "\(place): \(reason.sentence)"
    }
}

extension MessageDecodingError.Reason {
    var sentence: String {
        switch self {
        case .emptyMessage: "the message holds no records"
        case .missingHeader(let found): "first record is \"\(found)\", expected an H record"
        case .invalidDelimiters: "the header does not declare four distinct delimiters"
        case .unexpectedRecord(let found, let expected): "\(found) record where \(expected) was expected"
        case .missingRecord(let expected): "\(expected) record missing"
        case .missingTerminator: "message ends without an L record"
        case .recordAfterTerminator(let found): "\(found) record after the L record"
        case .invalidSequenceNumber(let value): "sequence number \"\(value)\" is not a positive decimal"
        case .invalidTimestamp(let value): "timestamp \"\(value)\" is not a valid YYYYMMDDHHMMSS"
        case .invalidDate(let value): "date \"\(value)\" is not a valid YYYYMMDD"
        case .invalidSex(let value): "sex \"\(value)\", expected M, F or U"
        case .invalidMeasurement(let value, let unit): "\"\(value)\" is not value^\(unit)"
        case .missingSerialNumber: "sender has no serial number"
        case .unknownManufacturer(let value): "manufacturer tag \"\(value)\", expected \"OSTI\""
        case .unknownKind(let value): "unknown message kind \"\(value)\""
        case .invalidProcedure(let value): "procedure \"\(value)\" is not ^^^PROCEDURE"
        case .invalidParameterCode(let value): "parameter code \"\(value)\" is not ^^^CODE"
        case .unitMismatch(let code, let found, let expected): "unit \"\(found)\" for \(code), expected \"\(expected)\""
        case .invalidNumber(let code, let value): "value \"\(value)\" for \(code) is not a number"
        case .invalidComment(let value): "comment \"\(value)\" is not code^text^severity"
        case .invalidSeverity(let value): "severity \"\(value)\", expected INFO, WARNING or ALARM"
        case .invalidEscape(.unknownSequence(let sequence)): "unknown escape sequence \"\(sequence)\""
        case .invalidEscape(.unterminated): "escape sequence without its closing delimiter"
        case .invalidEscape(.invalidUTF8): "text is not valid UTF-8"
        }
    }
}
