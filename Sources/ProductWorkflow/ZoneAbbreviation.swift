import Foundation
import Synchronization

/// The name a label prints beside a local time: the tz database's abbreviation in force at that
/// instant ("CET", "CEST", "UTC"), or the UTC offset ("UTC+01:00") when there is none.
///
/// Foundation on Linux answers "GMT+1" for Europe/Berlin (ICU's English has no short names for
/// most zones), so the abbreviations are read from the zone's own TZif file (RFC 8536). The
/// offset and daylight-saving state always come from Foundation; the file only names them.
public enum ZoneAbbreviation {
    static let zoneinfo = "/usr/share/zoneinfo"

    public static func of(_ timeZone: TimeZone, at date: Date) -> String {
        let offset = timeZone.secondsFromGMT(for: date)
        let daylight = timeZone.isDaylightSavingTime(for: date)
        if let zone = parsed(timeZone.identifier),
            let name = zone.abbreviation(at: Int64(date.timeIntervalSince1970.rounded(.down)), offset: offset, daylight: daylight),
            !name.isEmpty
        {
            return name
        }
        return utcOffset(offset)
    }

    /// Each zone's file is read once per process (a small file, but labels ask for it per unit).
    private static let cache = Mutex<[String: TZif?]>([:])

    static func parsed(_ identifier: String) -> TZif? {
        if let known = cache.withLock({ $0[identifier] }) { return known }
        let zone = TZif(path: path(identifier))
        cache.withLock { $0[identifier] = .some(zone) }
        return zone
    }

    /// "UTC+01:00", "UTC-03:30", "UTC" for zero.
    public static func utcOffset(_ seconds: Int) -> String {
        guard seconds != 0 else { return "UTC" }
        let minutes = abs(seconds) / 60
        return "UTC" + (seconds < 0 ? "-" : "+") + String(format: "%02d:%02d", minutes / 60, minutes % 60)
    }

    static func path(_ identifier: String) -> String? {
        guard !identifier.isEmpty, !identifier.contains(".."), !identifier.hasPrefix("/") else { return nil }
        return zoneinfo + "/" + identifier
    }

    /// The parts of a TZif file that name local time types.
    struct TZif: Sendable {
        struct LocalTimeType: Sendable {
            var offsetSeconds: Int
            var daylight: Bool
            var abbreviation: String
        }
        var transitions: [Int64] = []
        var typeIndices: [Int] = []
        var types: [LocalTimeType] = []

        init?(path: String?) {
            guard let path, let data = FileManager.default.contents(atPath: path) else { return nil }
            let bytes = [UInt8](data)
            guard let first = Self.header(bytes, at: 0) else { return nil }
            var start = 44
            var timeSize = 4
            var counts = first.counts
            // Version 2 and later repeat the data with 64-bit times after the version 1 block.
            if first.version >= 2 {
                start += Self.blockLength(counts, timeSize: 4)
                guard let second = Self.header(bytes, at: start) else { return nil }
                counts = second.counts
                start += 44
                timeSize = 8
            }
            let (timeCount, typeCount, charCount) = (counts[3], counts[4], counts[5])
            guard typeCount > 0, start + Self.blockLength(counts, timeSize: timeSize) <= bytes.count else { return nil }
            var at = start
            for _ in 0..<timeCount {
                transitions.append(Self.signed(bytes, at: at, size: timeSize))
                at += timeSize
            }
            for _ in 0..<timeCount {
                typeIndices.append(Int(bytes[at]))
                at += 1
            }
            let charsStart = at + typeCount * 6
            let chars = Array(bytes[charsStart..<(charsStart + charCount)])
            for _ in 0..<typeCount {
                let offset = Int(Self.signed(bytes, at: at, size: 4))
                let daylight = bytes[at + 4] != 0
                let index = Int(bytes[at + 5])
                var name = ""
                if index < chars.count {
                    let end = chars[index...].firstIndex(of: 0) ?? chars.count
                    name = String(decoding: chars[index..<end], as: UTF8.self)
                }
                types.append(LocalTimeType(offsetSeconds: offset, daylight: daylight, abbreviation: name))
                at += 6
            }
            guard typeIndices.allSatisfy({ $0 < typeCount }) else { return nil }
        }

        /// The abbreviation of the newest transition at or before `seconds` whose type has this offset
        /// and daylight state; beyond the last transition (rules in the file's footer), the newest
        /// transition with them; else any type with them.
        func abbreviation(at seconds: Int64, offset: Int, daylight: Bool) -> String? {
            func matches(_ t: LocalTimeType) -> Bool { t.offsetSeconds == offset && t.daylight == daylight }
            let upTo = transitions.lastIndex { $0 <= seconds }
            if let upTo {
                for index in stride(from: upTo, through: 0, by: -1) where matches(types[typeIndices[index]]) {
                    return types[typeIndices[index]].abbreviation
                }
            }
            return types.last(where: matches)?.abbreviation
        }

        static func header(_ bytes: [UInt8], at start: Int) -> (version: Int, counts: [Int])? {
            guard start + 44 <= bytes.count, bytes[start..<(start + 4)].elementsEqual(Array("TZif".utf8)) else { return nil }
            let versionByte = bytes[start + 4]
            let version = versionByte == 0 ? 1 : Int(versionByte) - 0x30
            // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
            let counts = (0..<6).map { Int(UInt32(truncatingIfNeeded: signed(bytes, at: start + 20 + 4 * $0, size: 4))) }
            return (version, counts)
        }

        static func blockLength(_ c: [Int], timeSize: Int) -> Int {
            c[3] * timeSize + c[3] + c[4] * 6 + c[5] + c[2] * (timeSize + 4) + c[1] + c[0]
        }

        /// A big-endian two's complement integer of 4 or 8 bytes.
        static func signed(_ bytes: [UInt8], at start: Int, size: Int) -> Int64 {
            var value: UInt64 = 0
            for byte in bytes[start..<(start + size)] { value = value << 8 | UInt64(byte) }
            if size == 4 { return Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: value))) }
            return Int64(bitPattern: value)
        }
    }
}
