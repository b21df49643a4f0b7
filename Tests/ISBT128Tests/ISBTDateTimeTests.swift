import Foundation
import ISBT128
import PropertyBased
import Testing

@Suite struct ISBTDateTimeTests {
    @Test func collectionExample() throws {
        // 25 Nov 2026: 31+28+31+30+31+30+31+31+30+31 = 304 days before November, + 25 = 329.
        let collected = try ISBTDateTime(kind: .collection, year: 2026, month: 11, day: 25, hour: 14, minute: 30)
        #expect(collected.dayOfYear == 329)
        #expect(collected.dataStructure == "&*0263291430")
        #expect(collected.eyeReadable == "25 NOV 2026 14:30")
        #expect(collected.month == 11)
        #expect(collected.dayOfMonth == 25)
    }

    @Test func iccbbaTissueLabelExpiry() throws {
        // ST-001 v6.2.2 Figure 21, label 4: data "0180292359" under "Expiry Date: 29 JAN 2018",
        // which is what fixes the century digit: 0 means 2000-2099.
        let expiry = try ISBTDateTime(dataStructure: "&>0180292359")
        #expect(expiry.kind == .expiration)
        #expect(expiry.year == 2018)
        #expect(expiry.month == 1)
        #expect(expiry.dayOfMonth == 29)
        #expect(expiry.hour == 23)
        #expect(expiry.minute == 59)
        #expect(expiry.eyeReadable == "29 JAN 2018 23:59")
    }

    @Test func leapYears() throws {
        let lastOf2028 = try ISBTDateTime(kind: .expiration, year: 2028, month: 12, day: 31, hour: 23, minute: 59)
        #expect(lastOf2028.dayOfYear == 366)
        #expect(lastOf2028.dataStructure == "&>0283662359")
        #expect(try ISBTDateTime(dataStructure: "&>0283662359") == lastOf2028)
        let lastOf2026 = try ISBTDateTime(kind: .expiration, year: 2026, month: 12, day: 31, hour: 0, minute: 0)
        #expect(lastOf2026.dayOfYear == 365)
        // 29 Feb 2028 is day 60; 1 Mar 2027 is day 60 too.
        #expect(try ISBTDateTime(kind: .collection, year: 2028, month: 2, day: 29, hour: 8, minute: 0).dayOfYear == 60)
        #expect(try ISBTDateTime(kind: .collection, year: 2027, month: 3, day: 1, hour: 8, minute: 0).dayOfYear == 60)
        let day60of2028 = try ISBTDateTime(kind: .collection, year: 2028, dayOfYear: 60, hour: 8, minute: 0)
        #expect(day60of2028.month == 2)
        #expect(day60of2028.dayOfMonth == 29)
        // 2000 is a leap year (divisible by 400), 2100 is not (a century not divisible by 400).
        #expect(try ISBTDateTime(kind: .collection, year: 2000, dayOfYear: 366, hour: 0, minute: 0).dataStructure
            == "&*0003660000")
        #expect(ISBTDateTime.isLeapYear(2024))
        #expect(!ISBTDateTime.isLeapYear(2100))
        #expect(ISBTDateTime.isLeapYear(2400))
    }

    @Test func dayOfYearOutOfRange() {
        expectError(
            .dayOfYearOutOfRange(.dateTime(.collection), year: 2026, value: 366, daysInYear: 365),
            message: "collection date and time: Julian day 366 is out of range for 2026, which has 365 days."
        ) { _ = try ISBTDateTime(dataStructure: "&*0263661430") }
        expectError(
            .dayOfYearOutOfRange(.dateTime(.expiration), year: 2100, value: 366, daysInYear: 365),
            message: "expiration date and time: Julian day 366 is out of range for 2100, which has 365 days."
        ) { _ = try ISBTDateTime(kind: .expiration, year: 2100, dayOfYear: 366, hour: 0, minute: 0) }
        expectError(
            .dayOfYearOutOfRange(.dateTime(.expiration), year: 2026, value: 0, daysInYear: 365),
            message: "expiration date and time: Julian day 0 is out of range for 2026, which has 365 days."
        ) { _ = try ISBTDateTime(dataStructure: "&>0260002359") }
        expectError(
            .dayOfYearOutOfRange(.dateTime(.expiration), year: 2028, value: 367, daysInYear: 366),
            message: "expiration date and time: Julian day 367 is out of range for 2028, which has 366 days."
        ) { _ = try ISBTDateTime(dataStructure: "&>0283672359") }
    }

    @Test func calendarErrors() {
        expectError(
            .dayOfMonthOutOfRange(.dateTime(.collection), year: 2027, month: 2, value: 29, daysInMonth: 28),
            message: "collection date and time: day 29 is out of range for month 2 of 2027, which has 28 days."
        ) { _ = try ISBTDateTime(kind: .collection, year: 2027, month: 2, day: 29, hour: 0, minute: 0) }
        expectError(
            .dayOfMonthOutOfRange(.dateTime(.collection), year: 2026, month: 4, value: 31, daysInMonth: 30),
            message: "collection date and time: day 31 is out of range for month 4 of 2026, which has 30 days."
        ) { _ = try ISBTDateTime(kind: .collection, year: 2026, month: 4, day: 31, hour: 0, minute: 0) }
        expectError(
            .monthOutOfRange(.dateTime(.expiration), value: 13),
            message: "expiration date and time: month 13 is out of range 1-12."
        ) { _ = try ISBTDateTime(kind: .expiration, year: 2026, month: 13, day: 1, hour: 0, minute: 0) }
        expectError(
            .yearOutOfRange(.dateTime(.collection), value: 1999, allowed: 2000...2999),
            message: "collection date and time: year 1999 is out of range 2000-2999."
        ) { _ = try ISBTDateTime(kind: .collection, year: 1999, month: 12, day: 31, hour: 0, minute: 0) }
        expectError(
            .yearOutOfRange(.dateTime(.expiration), value: 3000, allowed: 2000...2999),
            message: "expiration date and time: year 3000 is out of range 2000-2999."
        ) { _ = try ISBTDateTime(kind: .expiration, year: 3000, dayOfYear: 1, hour: 0, minute: 0) }
    }

    @Test func timeErrors() {
        expectError(
            .hourOutOfRange(.dateTime(.collection), value: 24),
            message: "collection date and time: hour 24 is out of range 0-23 (a day ends at 23:59)."
        ) { _ = try ISBTDateTime(dataStructure: "&*0263292400") }
        expectError(
            .minuteOutOfRange(.dateTime(.expiration), value: 60),
            message: "expiration date and time: minute 60 is out of range 0-59."
        ) { _ = try ISBTDateTime(dataStructure: "&>0263291460") }
        expectError(
            .hourOutOfRange(.dateTime(.expiration), value: -1),
            message: "expiration date and time: hour -1 is out of range 0-23 (a day ends at 23:59)."
        ) { _ = try ISBTDateTime(kind: .expiration, year: 2026, dayOfYear: 1, hour: -1, minute: 0) }
    }

    @Test func parseErrors() {
        expectError(
            .wrongDataIdentifier(.dataStructure, expected: "'&>' or '&*'", found: "=>"),
            message: "data structure: the data identifier must be '&>' or '&*' but is '=>'."
        ) { _ = try ISBTDateTime(dataStructure: "=>026329") }
        expectError(
            .wrongDataIdentifier(.dataStructure, expected: "'&>' or '&*'", found: ""),
            message: "data structure: the data identifier must be '&>' or '&*' but is ''."
        ) { _ = try ISBTDateTime(dataStructure: "") }
        expectError(
            .wrongLength(.dateTime(.collection), expected: 12, actual: 11),
            message: "collection date and time: expected 12 characters but found 11."
        ) { _ = try ISBTDateTime(dataStructure: "&*026329143") }
        expectError(
            .characterNotAllowed(
                .dateTime(.expiration), position: 11, character: "a", rule: "dates and times are digits"),
            message: "expiration date and time: character 'a' at position 11 is not allowed "
                + "(dates and times are digits)."
        ) { _ = try ISBTDateTime(dataStructure: "&>02632914a0") }
    }

    @Test func fromDateInTimeZone() throws {
        // 2026-11-25 13:30:45 UTC is 14:30:45 at UTC+1; the seconds are dropped.
        let instant = Date(timeIntervalSince1970: 1_795_613_445)
        let zone = try #require(TimeZone(secondsFromGMT: 3600))
        let collected = try ISBTDateTime(kind: .collection, date: instant, timeZone: zone)
        #expect(collected.dataStructure == "&*0263291430")
        #expect(collected.date(in: zone) == Date(timeIntervalSince1970: 1_795_613_400))
        let utc = try #require(TimeZone(secondsFromGMT: 0))
        #expect(try ISBTDateTime(kind: .collection, date: instant, timeZone: utc).dataStructure == "&*0263291330")
        expectError(
            .yearOutOfRange(.dateTime(.expiration), value: 1970, allowed: 2000...2999),
            message: "expiration date and time: year 1970 is out of range 2000-2999."
        ) { _ = try ISBTDateTime(kind: .expiration, date: Date(timeIntervalSince1970: 0), timeZone: utc) }
    }

    @Test func roundTrips() async {
        await propertyCheck(
            count: 500, input: Gen.int(in: 2000...2999), Gen.int(in: 1...366), Gen.int(in: 0...(24 * 60 - 1)),
            Gen.bool
        ) { year, day, minuteOfDay, isExpiry in
            let dayOfYear = min(day, ISBTDateTime.daysInYear(year))
            let kind: ISBTDateTime.Kind = isExpiry ? .expiration : .collection
            do {
                let value = try ISBTDateTime(
                    kind: kind, year: year, dayOfYear: dayOfYear, hour: minuteOfDay / 60, minute: minuteOfDay % 60)
                #expect(value.dataStructure.count == 12)
                #expect(value.dataStructure.hasPrefix(kind.dataIdentifier))
                #expect(try ISBTDateTime(dataStructure: value.dataStructure) == value)
                #expect(try DataStructure(parsing: value.dataStructure) == .dateTime(value))
                let viaCalendar = try ISBTDateTime(
                    kind: kind, year: year, month: value.month, day: value.dayOfMonth, hour: value.hour,
                    minute: value.minute)
                #expect(viaCalendar == value)
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test func agreesWithFoundationOnMonthAndDay() async throws {
        let utc = try #require(TimeZone(secondsFromGMT: 0))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = utc
        // Every day from 2024 (leap) through 2029, checked against Foundation's calendar.
        let start = try #require(calendar.date(from: DateComponents(year: 2024, month: 1, day: 1, hour: 12)))
        for offset in 0..<(366 + 365 * 5) {
            let date = try #require(calendar.date(byAdding: .day, value: offset, to: start))
            let value = try ISBTDateTime(kind: .collection, date: date, timeZone: utc)
            #expect(value.dayOfYear == calendar.ordinality(of: .day, in: .year, for: date))
            #expect(value.month == calendar.component(.month, from: date))
            #expect(value.dayOfMonth == calendar.component(.day, from: date))
            #expect(value.date(in: utc) == date)
        }
    }
}
