import Foundation

/// Times in HL7's DTM form, always with the UTC offset written out, so that a receiver never has
/// to guess the zone (a time off by the offset is the error this avoids).
public enum HL7Time {
    /// `YYYYMMDDHHMMSS+ZZZZ` in `zone`, from milliseconds since 1970 (seconds truncated, as the
    /// separator's own times are whole seconds).
    public static func timestamp(unixMilliseconds: Int64, zone: TimeZone) -> String {
        let seconds = unixMilliseconds >= 0 ? unixMilliseconds / 1000 : (unixMilliseconds - 999) / 1000
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let offsetSeconds = zone.secondsFromGMT(for: date)
        let sign = offsetSeconds < 0 ? "-" : "+"
        let offsetMinutes = abs(offsetSeconds) / 60
        return pad(c.year ?? 0, 4) + pad(c.month ?? 0, 2) + pad(c.day ?? 0, 2) + pad(c.hour ?? 0, 2)
            + pad(c.minute ?? 0, 2) + pad(c.second ?? 0, 2) + sign + pad(offsetMinutes / 60, 2) + pad(offsetMinutes % 60, 2)
    }

    /// A separator timestamp (`YYYYMMDDHHMMSS`, device clock, UTC by the interface's definition) as
    /// DTM with its offset; nil when it is not 14 digits.
    public static func fromDeviceTimestamp(_ text: String) -> String? {
        guard text.utf8.count == 14, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return text + "+0000"
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
