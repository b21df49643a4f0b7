import Foundation
import HL7
import Testing

@Suite struct HL7TextTests {
    @Test func delimitersInDataAreEscapedAndReadBack() {
        let hostile = "a|b^c~d&e\\f\rg\nh\u{07}i"
        let escaped = HL7Text.escape(hostile)
        #expect(escaped == "a\\F\\b\\S\\c\\R\\d\\T\\e\\E\\f\\X0D\\g\\X0A\\h i")
        #expect(!escaped.contains("|") && !escaped.contains("^") && !escaped.contains("\r"))
        #expect(HL7Text.unescape(escaped) == "a|b^c~d&e\\f\rg\nh i")
    }

    @Test func unknownOrUnclosedEscapesStayAsTheyAre() {
        #expect(HL7Text.unescape("x\\Q\\y") == "x\\Q\\y")
        #expect(HL7Text.unescape("x\\Fy") == "x\\Fy")
        #expect(HL7Text.unescape("a\\.br\\b") == "a\nb")
    }

    @Test func componentsDropTrailingEmpties() {
        #expect(HL7Text.components(["a", nil, "b", nil, nil]) == "a^^b")
        #expect(HL7Text.components([nil, nil]) == "")
    }

    @Test(arguments: [
        (12.0, "12"), (12.5, "12.5"), (-0.25, "-0.25"), (0.0, "0"), (1e-5, "0.00001"), (1.25e-7, "0.000000125"),
        (3.5e20, "350000000000000000000"), (0.1 + 0.2, "0.3"), (-4.2e-6, "-0.0000042"),
        (2699.9999999999995, "2700"), (12.263157894736844, "12.2631578947368"),
    ])
    func numbersAreNMWithoutExponentOrNoise(value: Double, text: String) {
        #expect(HL7Text.number(value) == text)
        #expect(abs(Double(HL7Text.number(value)!)! - value) <= 1e-14 * abs(value))
    }

    @Test func conversionsLoseTheBinaryNoiseButNoDigitOfTheValue() {
        #expect(0.57 * 100 != 57 && HL7Text.converted(0.57, by: 100) == 57)
        #expect(HL7Text.converted(35e-6, by: 1e6) == 35)
        #expect(HL7Text.converted(2.3456789e-5, by: 1e6) == 23.456789)
        #expect(HL7Text.converted(1 / 3, by: 100) == 33.3333333333333)
    }

    @Test func nonFiniteNumbersAreNotWritten() {
        #expect(HL7Text.number(.nan) == nil)
        #expect(HL7Text.number(.infinity) == nil)
    }

    @Test func timesCarryTheirOffset() throws {
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        // 2026-01-15 09:30:00 UTC: CET (+0100).
        #expect(HL7Time.timestamp(unixMilliseconds: 1_768_469_400_000, zone: berlin) == "20260115103000+0100")
        // 2026-07-15 09:30:00 UTC: CEST (+0200).
        #expect(HL7Time.timestamp(unixMilliseconds: 1_784_107_800_000, zone: berlin) == "20260715113000+0200")
        #expect(HL7Time.timestamp(unixMilliseconds: 1_784_107_800_999, zone: TimeZone(identifier: "UTC")!) == "20260715093000+0000")
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        #expect(HL7Time.timestamp(unixMilliseconds: 1_768_469_400_000, zone: newYork) == "20260115043000-0500")
        #expect(HL7Time.fromDeviceTimestamp("20261124101500") == "20261124101500+0000")
        #expect(HL7Time.fromDeviceTimestamp("2026112410150") == nil)
        #expect(HL7Time.fromDeviceTimestamp("2026112410150x") == nil)
    }
}

@Suite struct MLLPTests {
    @Test func framesSplitAnywhereAreReadWhole() {
        let one = Array("MSH|^~\\&|A\rMSA|AA|1\r".utf8)
        let two = Array("MSH|^~\\&|B\r".utf8)
        let stream = [0x41, 0x0D] + MLLP.frame(one) + MLLP.frame(two)
        for cut in 0...stream.count {
            var decoder = MLLPDecoder()
            let out = decoder.feed(stream[..<cut]) + decoder.feed(stream[cut...])
            #expect(out == [.message(one), .message(two)], "cut at \(cut)")
            #expect(decoder.strayBytes == 2)
        }
    }

    @Test func aLoneEndBlockInsideDataIsData() {
        var decoder = MLLPDecoder()
        let out = decoder.feed([0x0B, 0x41, 0x1C, 0x42, 0x1C, 0x0D])
        #expect(out == [.message([0x41, 0x1C, 0x42])])
    }

    @Test func anOversizedFrameIsDroppedAndTheNextOneRead() {
        var decoder = MLLPDecoder(maximumLength: 4)
        let out = decoder.feed([0x0B, 1, 2, 3, 4, 5, 6, 0x1C, 0x0D] + MLLP.frame([7, 8]))
        #expect(out == [.oversized(length: 6), .message([7, 8])])
    }

    @Test func aRestartedFrameDropsTheUnfinishedOne() {
        var decoder = MLLPDecoder()
        #expect(decoder.feed([0x0B, 1, 2, 0x0B, 3, 0x1C, 0x0D]) == [.message([3])])
    }
}

@Suite struct AcknowledgementTests {
    @Test func acceptIsRead() throws {
        let ack = try HL7Acknowledgement(parsing: Array("MSH|^~\\&|RCV|HOSP|APH|UNIT|20261206101500||ACK^R01^ACK|9|P|2.6\rMSA|AA|ABC-17\r".utf8))
        #expect(ack == HL7Acknowledgement(code: .applicationAccept, controlID: "ABC-17", text: ""))
        #expect(ack.code.verdict == .accepted)
    }

    @Test func rejectCarriesItsReasonFromMSAOrERR() throws {
        let msa = try HL7Acknowledgement(parsing: Array("MSH|^~\\&|R\rMSA|AR|X-1|unknown \\F\\ patient\r".utf8))
        #expect(msa.code.verdict == .rejected)
        #expect(msa.text == "unknown | patient")
        let err = try HL7Acknowledgement(parsing: Array("MSH|^~\\&|R\rMSA|AE|X-2\rERR|||207^Application internal error^HL70357|E\r".utf8))
        #expect(err.code.verdict == .error)
        #expect(err.text == "Application internal error")
        let userMessage = try HL7Acknowledgement(parsing: Array("MSH|^~\\&|R\rMSA|CR|X-3\rERR|||207^x^HL70357|E||||no mapping\r".utf8))
        #expect(userMessage.code == .commitReject && userMessage.text == "no mapping")
    }

    @Test func otherEncodingCharactersAreHonoured() throws {
        let ack = try HL7Acknowledgement(parsing: Array("MSH#*~\\&#R\rMSA#AA#C-5*x\r".utf8))
        #expect(ack.controlID == "C-5" && ack.code == .applicationAccept)
    }

    @Test func garbageIsNamed() {
        #expect(throws: HL7Acknowledgement.ParseError.notHL7("hello")) { try HL7Acknowledgement(parsing: Array("hello".utf8)) }
        #expect(throws: HL7Acknowledgement.ParseError.noMSA) { try HL7Acknowledgement(parsing: Array("MSH|^~\\&|R\r".utf8)) }
        #expect(throws: HL7Acknowledgement.ParseError.unknownCode("OK")) {
            try HL7Acknowledgement(parsing: Array("MSH|^~\\&|R\rMSA|OK|1\r".utf8))
        }
    }
}
