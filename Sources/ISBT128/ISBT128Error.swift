/// Every way an ISBT 128 value can be wrong, each naming the field and, where it helps a
/// person find the fault, the 1-based position within the text that was given.
public enum ISBT128Error: Error, Hashable, Sendable, CustomStringConvertible {
    /// The thing an error is about; its `description` starts every error message.
    public enum Field: Hashable, Sendable, CustomStringConvertible {
        case checkCharacterInput
        case facilityIdentificationNumber
        case donationIdentificationNumber
        case keyboardEntry
        case flags
        case productCode
        case productDescriptionCode
        case typeOfCollection
        case divisionCode
        case dateTime(ISBTDateTime.Kind)
        case dataStructure

        public var description: String {
            switch self {
            case .checkCharacterInput: "mod 37-2 input"
            case .facilityIdentificationNumber: "FIN"
            case .donationIdentificationNumber: "DIN"
            case .keyboardEntry: "DIN keyboard entry"
            case .flags: "DIN flag characters"
            case .productCode: "product code"
            case .productDescriptionCode: "product description code"
            case .typeOfCollection: "type of collection"
            case .divisionCode: "division code"
            case .dateTime(.collection): "collection date and time"
            case .dateTime(.expiration): "expiration date and time"
            case .dataStructure: "data structure"
            }
        }
    }

    /// The text has the wrong number of characters.
    case wrongLength(Field, expected: Int, actual: Int)
    /// The text starts with another data identifier than the one expected.
    case wrongDataIdentifier(Field, expected: String, found: String)
    /// `DataStructure(parsing:)` was given a data identifier it does not read.
    case unsupportedDataIdentifier(String)
    /// A character is not allowed where it stands; `rule` says what is allowed there.
    case characterNotAllowed(Field, position: Int, character: Character, rule: String)
    case yearOutOfRange(Field, value: Int, allowed: ClosedRange<Int>)
    case monthOutOfRange(Field, value: Int)
    case dayOfMonthOutOfRange(Field, year: Int, month: Int, value: Int, daysInMonth: Int)
    case dayOfYearOutOfRange(Field, year: Int, value: Int, daysInYear: Int)
    case hourOutOfRange(Field, value: Int)
    case minuteOutOfRange(Field, value: Int)
    case sequenceOutOfRange(value: Int)
    case divisionIndexOutOfRange(value: Int)
    /// The keyboard check character typed does not match the one computed.
    case checkCharacterMismatch(Field, expected: Character, found: Character)
    /// Type 3 flag characters (60-96) carry the check value, and these carry another one.
    case flagCheckMismatch(Field, expected: String, found: String)
    case unknownTypeOfCollection(Field, code: Character)
    /// Product description codes whose `tds` is not type of collection plus division (ST-001 2.4.3).
    case unsupportedProductCategory(descriptionCode: String)

    public var description: String {
        switch self {
        case let .wrongLength(field, expected, actual):
            "\(field): expected \(expected) characters but found \(actual)."
        case let .wrongDataIdentifier(field, expected, found):
            "\(field): the data identifier must be \(expected) but is '\(found)'."
        case let .unsupportedDataIdentifier(found):
            found.isEmpty
                ? "data structure: the text is empty; expected an ISBT 128 data identifier."
                : "data structure: '\(found)' is not a data identifier this module reads "
                    + "(DIN '=', product code '=<', collection date and time '&*', expiration date and time '&>')."
        case let .characterNotAllowed(field, position, character, rule):
            "\(field): character '\(character)' at position \(position) is not allowed (\(rule))."
        case let .yearOutOfRange(field, value, allowed):
            "\(field): year \(value) is out of range \(allowed.lowerBound)-\(allowed.upperBound)."
        case let .monthOutOfRange(field, value):
            "\(field): month \(value) is out of range 1-12."
        case let .dayOfMonthOutOfRange(field, year, month, value, daysInMonth):
            "\(field): day \(value) is out of range for month \(month) of \(year), which has \(daysInMonth) days."
        case let .dayOfYearOutOfRange(field, year, value, daysInYear):
            "\(field): Julian day \(value) is out of range for \(year), which has \(daysInYear) days."
        case let .hourOutOfRange(field, value):
            "\(field): hour \(value) is out of range 0-23 (a day ends at 23:59)."
        case let .minuteOutOfRange(field, value):
            "\(field): minute \(value) is out of range 0-59."
        case let .sequenceOutOfRange(value):
            "DIN: sequence number \(value) is out of range 0-999999."
        case let .divisionIndexOutOfRange(value):
            "division code: first-level division index \(value) is out of range 0-25 (A0 to Z0)."
        case let .checkCharacterMismatch(field, expected, found):
            "\(field): check character '\(found)' does not match '\(expected)' computed from the other characters; "
                + "something was mistyped."
        case let .flagCheckMismatch(field, expected, found):
            "\(field): flags '\(found)' are type 3 (check value) flags but the DIN's check value gives '\(expected)'."
        case let .unknownTypeOfCollection(field, code):
            "\(field): code '\(code)' is not a type of collection in ST-001 Table 7."
        case let .unsupportedProductCategory(descriptionCode):
            "product code: description code '\(descriptionCode)' is of a category whose last three characters are "
                + "not type of collection and division (only E, F, H, S, P, X0 and YA-YZ codes are read here)."
        }
    }
}
