/// `YYYYMMDDHHMMSS` on the device clock, UTC. Kept as the device said it:
/// the daemon records device time but measures durations on its own
/// monotonic clock.
public struct DeviceTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int
    public var hour: Int
    public var minute: Int
    public var second: Int

    /// Validates the calendar: month 1-12, the day within its month, 00:00:00-23:59:59.
    public init?(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        guard let date = CalendarDate(year: year, month: month, day: day),
            (0...23).contains(hour), (0...59).contains(minute), (0...59).contains(second)
        else { return nil }
        self.year = date.year
        self.month = date.month
        self.day = date.day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// Parses exactly 14 ASCII digits.
    public init?(wire: some StringProtocol) {
        self.init(wireDigits: wire.utf8)
    }

    /// Parses exactly 14 ASCII digits given as bytes: the decoder reads them straight from the
    /// record, without making a string and an array per timestamp.
    init?(wireDigits digits: some Collection<UInt8>) {
        guard digits.count == 14, let n = decimalValue(digits) else { return nil }
        // YYYYMMDDHHMMSS read as one number and taken apart from the right.
        self.init(
            year: n / 10_000_000_000, month: n / 100_000_000 % 100, day: n / 1_000_000 % 100,
            hour: n / 10_000 % 100, minute: n / 100 % 100, second: n % 100)
    }

    /// Seconds since 1970-01-01T00:00:00Z (proleptic Gregorian, no leap seconds).
    public init(secondsSinceEpoch: Int64) {
        let days = secondsSinceEpoch >= 0 ? secondsSinceEpoch / 86_400 : (secondsSinceEpoch - 86_399) / 86_400
        let secondOfDay = Int(secondsSinceEpoch - days * 86_400)
        let date = CalendarDate(daysSinceEpoch: days)
        self.year = date.year
        self.month = date.month
        self.day = date.day
        self.hour = secondOfDay / 3600
        self.minute = secondOfDay / 60 % 60
        self.second = secondOfDay % 60
    }

    public var secondsSinceEpoch: Int64 {
        CalendarDate(uncheckedYear: year, month: month, day: day).daysSinceEpoch * 86_400
            + Int64(hour * 3600 + minute * 60 + second)
    }

    public var date: CalendarDate { CalendarDate(uncheckedYear: year, month: month, day: day) }

    public func adding(seconds: Int64) -> DeviceTimestamp { DeviceTimestamp(secondsSinceEpoch: secondsSinceEpoch + seconds) }

    /// `YYYYMMDDHHMMSS`.
    public var wire: String {
        pad(year, 4) + pad(month, 2) + pad(day, 2) + pad(hour, 2) + pad(minute, 2) + pad(second, 2)
    }
    public var description: String { wire }

    public static func < (a: DeviceTimestamp, b: DeviceTimestamp) -> Bool { a.secondsSinceEpoch < b.secondsSinceEpoch }
}

/// A calendar date, `YYYYMMDD` on the wire (birth dates).
public struct CalendarDate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month),
            (1...CalendarDate.daysIn(month: month, year: year)).contains(day)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    init(uncheckedYear year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses exactly 8 ASCII digits.
    public init?(wire: some StringProtocol) {
        self.init(wireDigits: wire.utf8)
    }

    /// Parses exactly 8 ASCII digits given as bytes.
    init?(wireDigits digits: some Collection<UInt8>) {
        guard digits.count == 8, let n = decimalValue(digits) else { return nil }
        self.init(year: n / 10_000, month: n / 100 % 100, day: n % 100)  // YYYYMMDD
    }

    public var wire: String { pad(year, 4) + pad(month, 2) + pad(day, 2) }
    public var description: String { wire }

    public static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }
    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Day 1 of January is 1.
    public var dayOfYear: Int { (1..<month).reduce(0) { $0 + CalendarDate.daysIn(month: $1, year: year) } + day }

    // Howard Hinnant's days-from-civil algorithm.
    public var daysSinceEpoch: Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public init(daysSinceEpoch: Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        self.init(uncheckedYear: Int(y), month: Int(m), day: Int(d))
    }

    public static func < (a: CalendarDate, b: CalendarDate) -> Bool {
        (a.year, a.month, a.day) < (b.year, b.month, b.day)
    }
}

/// The value of ASCII digits, or nil if any byte is not a digit. Callers pass at most 14.
private func decimalValue(_ digits: some Collection<UInt8>) -> Int? {
    var value = 0
    for byte in digits {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        value = value * 10 + Int(byte - 0x30)
    }
    return value
}

@inline(__always)
func pad(_ value: Int, _ width: Int) -> String {
    let s = String(value)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}
