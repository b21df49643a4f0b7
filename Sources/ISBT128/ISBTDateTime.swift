import Foundation

/// Data structures 005, expiration date and time `&>cyyjjjhhmm` (ST-001 2.4.5), and 007,
/// collection date and time `&*cyyjjjhhmm` (2.4.7), in the facility's local time.
///
/// `c` is the century digit and `yy` the year within it; ST-001 does not spell out the origin,
/// but its own labels do: Figure 21 prints expiry "29 JAN 2018" over the data "0180292359", so
/// `cyy` = year - 2000 and the years 2000...2999 can be written. `jjj` is the ordinal ("Julian")
/// day 001-365/366, `hh` 00-23 and `mm` 00-59; a day ends at 23:59 (2359), the default time.
public struct ISBTDateTime: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case collection, expiration

        /// `&*` (data structure 007) or `&>` (data structure 005).
        public var dataIdentifier: String {
            switch self {
            case .collection: "&*"
            case .expiration: "&>"
            }
        }
    }

    public static let years: ClosedRange<Int> = 2000...2999

    public var kind: Kind
    // Set only through the initialisers, which check them.
    /// The full year, 2000...2999.
    public private(set) var year: Int
    /// The ordinal day of the year, 1...365 (366 in leap years).
    public private(set) var dayOfYear: Int
    public private(set) var hour: Int
    public private(set) var minute: Int

    public init(kind: Kind, year: Int, dayOfYear: Int, hour: Int, minute: Int) throws(ISBT128Error) {
        let field = ISBT128Error.Field.dateTime(kind)
        guard Self.years.contains(year) else { throw .yearOutOfRange(field, value: year, allowed: Self.years) }
        let days = Self.daysInYear(year)
        guard (1...days).contains(dayOfYear) else {
            throw .dayOfYearOutOfRange(field, year: year, value: dayOfYear, daysInYear: days)
        }
        guard (0...23).contains(hour) else { throw .hourOutOfRange(field, value: hour) }
        guard (0...59).contains(minute) else { throw .minuteOutOfRange(field, value: minute) }
        self.kind = kind
        self.year = year
        self.dayOfYear = dayOfYear
        self.hour = hour
        self.minute = minute
    }

    /// From a calendar date (Gregorian); `day` is the day of the month.
    public init(kind: Kind, year: Int, month: Int, day: Int, hour: Int, minute: Int) throws(ISBT128Error) {
        let field = ISBT128Error.Field.dateTime(kind)
        guard Self.years.contains(year) else { throw .yearOutOfRange(field, value: year, allowed: Self.years) }
        guard (1...12).contains(month) else { throw .monthOutOfRange(field, value: month) }
        let lengths = Self.monthLengths(year)
        guard (1...lengths[month - 1]).contains(day) else {
            throw .dayOfMonthOutOfRange(field, year: year, month: month, value: day, daysInMonth: lengths[month - 1])
        }
        let dayOfYear = lengths.prefix(month - 1).reduce(0, +) + day
        try self.init(kind: kind, year: year, dayOfYear: dayOfYear, hour: hour, minute: minute)
    }

    /// The local date and time of `date` in `timeZone`, to the minute; seconds are dropped, so
    /// an expiry never moves later.
    public init(kind: Kind, date: Date, timeZone: TimeZone) throws(ISBT128Error) {
        let calendar = Self.calendar(timeZone)
        try self.init(
            kind: kind,
            year: calendar.component(.year, from: date),
            month: calendar.component(.month, from: date),
            day: calendar.component(.day, from: date),
            hour: calendar.component(.hour, from: date),
            minute: calendar.component(.minute, from: date))
    }

    /// Parses `&>cyyjjjhhmm` or `&*cyyjjjhhmm`; the identifier gives the kind. Positions in
    /// errors count from the `&`.
    public init(dataStructure text: String) throws(ISBT128Error) {
        let c = Array(text)
        let kind: Kind
        switch (c.first, c.dropFirst().first) {
        case ("&", ">"): kind = .expiration
        case ("&", "*"): kind = .collection
        default:
            throw .wrongDataIdentifier(.dataStructure, expected: "'&>' or '&*'", found: String(c.prefix(2)))
        }
        let field = ISBT128Error.Field.dateTime(kind)
        guard c.count == 12 else { throw .wrongLength(field, expected: 12, actual: c.count) }
        let digits = Array(c[2...])
        try digits.check(Array(repeating: .dateDigit, count: 10), field: field, firstPosition: 3)
        try self.init(
            kind: kind,
            year: 2000 + ASCII.number(digits[0..<3]),
            dayOfYear: ASCII.number(digits[3..<6]),
            hour: ASCII.number(digits[6..<8]),
            minute: ASCII.number(digits[8..<10]))
    }

    public var month: Int { Self.monthAndDay(year: year, dayOfYear: dayOfYear).month }
    public var dayOfMonth: Int { Self.monthAndDay(year: year, dayOfYear: dayOfYear).day }

    /// What the bar code carries, e.g. "&*0263291430" for collection on 25 Nov 2026 at 14:30.
    public var dataStructure: String {
        kind.dataIdentifier + ASCII.padded(year - 2000, width: 3) + ASCII.padded(dayOfYear, width: 3)
            + ASCII.padded(hour, width: 2) + ASCII.padded(minute, width: 2)
    }

    /// Day, three-letter month, four-digit year and 24-hour time with a colon, the second form
    /// ST-001 7.4.4.2 allows: "25 NOV 2026 14:30".
    public var eyeReadable: String {
        "\(ASCII.padded(dayOfMonth, width: 2)) \(Self.monthNames[month - 1]) \(year) "
            + "\(ASCII.padded(hour, width: 2)):\(ASCII.padded(minute, width: 2))"
    }

    /// This local date and time in `timeZone`; nil only if the time zone has no such local time
    /// and Foundation cannot place it.
    public func date(in timeZone: TimeZone) -> Date? {
        let calendar = Self.calendar(timeZone)
        let components = DateComponents(
            calendar: calendar, timeZone: timeZone, year: year, month: month, day: dayOfMonth,
            hour: hour, minute: minute)
        return calendar.date(from: components)
    }

    /// Gregorian: every 4th year, except centuries not divisible by 400 (2100 is not leap).
    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    public static func daysInYear(_ year: Int) -> Int { isLeapYear(year) ? 366 : 365 }
}

extension ISBTDateTime {
    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]

    static func monthLengths(_ year: Int) -> [Int] {
        [31, isLeapYear(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    }

    static func monthAndDay(year: Int, dayOfYear: Int) -> (month: Int, day: Int) {
        var remaining = dayOfYear
        for (index, length) in monthLengths(year).enumerated() {
            if remaining <= length { return (index + 1, remaining) }
            remaining -= length
        }
        return (12, remaining)  // not reached: dayOfYear is checked against the year's length
    }

    static func calendar(_ timeZone: TimeZone) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }
}
