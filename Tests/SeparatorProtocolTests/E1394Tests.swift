import PropertyBased
import SeparatorProtocol
import Testing

@Suite struct E1394EncodingTests {
    @Test func encodesTheSpecExampleByteForByte() {
        let text = E1394Encoder.encode(specTick())
        #expect(String(decoding: text, as: UTF8.self) == specTickText)
    }

    @Test func decodesTheSpecExample() throws {
        let message = try E1394Decoder.decode(bytes(specTickText))
        #expect(message == specTick())
        #expect(message.number(.inletVolume) == 1950)
    }

    @Test func encodesPatientCommentAndEscapes() {
        var message = sampleRun()[0]
        message.patient?.familyName = "O|Brien^&"
        message.results = [ResultRecord(sequence: 1, code: .acdaLot, value: .text("A\\B"), unit: "", timestamp: nil)]
        let text = String(decoding: E1394Encoder.encode(message), as: UTF8.self)
        #expect(text.contains("\rP|1|P-001|||O&F&Brien&S&&E&^Jane||19700517|F||||||||165.0^cm|62.5^kg\r"))
        #expect(text.contains("\rR|1|^^^ACDA_LOT|A&R&B|||||F||||\r"))
        #expect(text.hasSuffix("\rL|1|N\r"))
        var alarm = sampleRun()[2]
        alarm.comments[0].text = "low"
        let alarmText = String(decoding: E1394Encoder.encode(alarm), as: UTF8.self)
        #expect(alarmText.contains("\rM|1|OSTI|ALARM|1\r"))
        #expect(alarmText.contains("\rC|1|I|ACCESS_LOW^low^ALARM|G\r"))
    }

    @Test func controlCharactersTravelAsHexEscapes() throws {
        var message = specTick()
        message.order.runID = "a\rb"
        let text = E1394Encoder.encode(message)
        #expect(String(decoding: text, as: UTF8.self).contains("|a&X0D&b|"))
        #expect(try E1394Decoder.decode(text) == message)
    }

    @Test func encodeThenDecodeReturnsEveryMessage() async {
        await propertyCheck(count: 300, input: messageGen) { message in
            let decoded = try E1394Decoder.decode(E1394Encoder.encode(message))
            #expect(decoded == message)
        }
    }

    @Test func longMessagesSurviveFramingAndFrameNumberWrap() async {
        await propertyCheck(count: 60, input: longMessageGen, Gen.bool) { message, perRecord in
            let text = E1394Encoder.encode(message)
            var receiver = E1381Receiver()
            _ = receiver.receive(ENQ, now: .zero)
            var delivered: [[UInt8]] = []
            // Start at frame 6 in the session so the numbers wrap early.
            let warmUp = E1381Framer.frames(forMessage: tickText, mode: .recordPerFrame, firstFrameNumber: 1)
            for f in warmUp { delivered += receiver.receive(f, now: .zero).messages }
            _ = receiver.messageStored(now: .zero)
            let frames = E1381Framer.frames(
                forMessage: text, mode: perRecord ? .recordPerFrame : .wholeMessage, firstFrameNumber: warmUp.count + 1)
            for f in frames {
                let actions = receiver.receive(f, now: .zero)
                #expect(!actions.events.contains { if case .frameRejected = $0 { true } else { false } })
                delivered += actions.messages
            }
            #expect(delivered.count == 2)
            #expect(delivered.last.flatMap { try? E1394Decoder.decode($0) } == message)
        }
    }

    @Test func runStartIsReadFromFieldSevenToo() throws {
        // The spec's table names field 7 for the run start; its example (which we write) has field 8.
        let text = specTickText.replacingFirst("^^^CMNC|||20261124091500", with: "^^^CMNC||20261124091500")
        #expect(try E1394Decoder.decode(bytes(text)).order.runStart == ts("20261124091500"))
    }

    @Test func unknownCodesAreKept() throws {
        var text = specTickText.replacingFirst("R|3|^^^AC_VOL|150.0|mL", with: "R|3|^^^NEW_THING|12.5|mg")
        text = text.replacingFirst("L|1|N", with: "R|4|^^^NOTE|hello|\rL|1|N")
        let message = try E1394Decoder.decode(bytes(text))
        #expect(message.results[2] == ResultRecord(sequence: 3, code: "NEW_THING", value: .number(12.5), unit: "mg", timestamp: ts("20261124101500")))
        #expect(message.results[3].value == .text("hello"))
    }

    @Test func textSettingStaysText() throws {
        let text = E1394Encoder.encode(sampleRun()[0]).replacingFirstBytes("LOT, \"A\"&S&7&F&&E&", with: "12345")
        let message = try E1394Decoder.decode(text)
        #expect(message.result(.acdaLot)?.value == .text("12345"))
    }

    @Test func strictNumbers() {
        for bad in ["nan", "inf", "-inf", "0x1p3", "", " 1", "1 ", "1e", ".", "+", "1e400", "1,5", "Infinity"] {
            let text = specTickText.replacingFirst("|60.0|", with: "|\(bad)|")
            #expect(throws: MessageDecodingError.self, "\(bad)") { try E1394Decoder.decode(bytes(text)) }
        }
        for good in ["60", "-0.5", "1e3", "1.5E-2", ".5", "5.", "+7"] {
            let text = specTickText.replacingFirst("|60.0|", with: "|\(good)|")
            #expect(throws: Never.self, "\(good)") { try E1394Decoder.decode(bytes(text)) }
        }
    }
}

@Suite struct E1394DecodingErrorTests {
    /// Decodes `text` expecting a failure; returns it.
    func failure(_ text: String) -> MessageDecodingError? {
        failure(bytes(text))
    }

    func failure(_ text: [UInt8]) -> MessageDecodingError? {
        do {
            _ = try E1394Decoder.decode(text)
            Issue.record("decoded without error")
            return nil
        } catch {
            return error
        }
    }

    let runStartText = String(decoding: E1394Encoder.encode(sampleRun()[0]), as: UTF8.self)
    let alarmText = String(decoding: E1394Encoder.encode(sampleRun()[2]), as: UTF8.self)

    @Test func empty() {
        #expect(failure("")?.reason == .emptyMessage)
    }

    @Test func firstRecordMustBeHeader() {
        let error = failure("M|1|OSTI|TICK|1\rL|1|N\r")
        #expect(error?.reason == .missingHeader(found: "M"))
        #expect(error?.location.record == 1)
    }

    @Test func delimitersMustBeDistinct() {
        let error = failure(specTickText.replacingFirst("H|\\^&", with: "H|\\^^"))
        #expect(error?.reason == .invalidDelimiters)
        #expect(error?.location.field == 2)
    }

    @Test func unitMismatchNamesRecordAndField() {
        let text = runStartText.replacingFirst("|^^^TBV|4800.0|mL|", with: "|^^^TBV|4800.0|L|")
        let error = failure(text)
        #expect(error?.reason == .unitMismatch(code: "TBV", found: "L", expected: "mL"))
        #expect(error?.location.record == 5)
        #expect(error?.location.field == 5)
        #expect(error?.description == "record 5 (R), field 5: unit \"L\" for TBV, expected \"mL\"")
        let all = bytes(text)
        let marker = bytes("|4800.0|L|")
        let start = (0...(all.count - marker.count)).first { all[$0..<($0 + marker.count)].elementsEqual(marker) }
        #expect(error?.location.byteOffset == start.map { $0 + 8 })
    }

    @Test func badSequenceNumberInHeader() {
        let error = failure(specTickText.replacingFirst("|1042|", with: "|-3|"))
        #expect(error?.reason == .invalidSequenceNumber("-3"))
        #expect(error?.location == .init(record: 1, recordType: "H", field: 3, byteOffset: 6))
    }

    @Test func zeroSequenceInResult() {
        let error = failure(specTickText.replacingFirst("R|2|", with: "R|0|"))
        #expect(error?.reason == .invalidSequenceNumber("0"))
        #expect(error?.location.record == 5)
        #expect(error?.location.field == 2)
    }

    @Test func badHeaderTimestamp() {
        let error = failure(specTickText.replacingFirst("|20261124101500\r", with: "|20261324101500\r"))
        #expect(error?.reason == .invalidTimestamp("20261324101500"))
        #expect(error?.location.field == 14)
    }

    @Test func badResultTimestamp() {
        let error = failure(specTickText.replacingFirst("F||||20261124101500\rR|2", with: "F||||2026112410150\rR|2"))
        #expect(error?.location.record == 4)
        #expect(error?.location.field == 13)
    }

    @Test func missingSerialNumber() {
        let error = failure(specTickText.replacingFirst("OPTIA-SIM^1.0^1OPT00417", with: "OPTIA-SIM^1.0"))
        #expect(error?.reason == .missingSerialNumber)
        #expect(error?.location.field == 5)
    }

    @Test func manufacturerMustBeOSTI() {
        let error = failure(specTickText.replacingFirst("|OSTI|", with: "|ACME|"))
        #expect(error?.reason == .unknownManufacturer("ACME"))
        #expect(error?.location.record == 2)
        #expect(error?.location.field == 3)
    }

    @Test func kindMustBeKnown() {
        let error = failure(specTickText.replacingFirst("|TICK|", with: "|TOCK|"))
        #expect(error?.reason == .unknownKind("TOCK"))
        #expect(error?.location.field == 4)
    }

    @Test func missingManufacturerRecord() {
        let error = failure(specTickText.replacingFirst("M|1|OSTI|TICK|1\r", with: ""))
        #expect(error?.reason == .unexpectedRecord(found: "O", expected: "M"))
        #expect(error?.location.record == 2)
    }

    @Test func runStartNeedsPatient() {
        let text = runStartText.replacingFirst("P|1|P-001|||Doe^Jane||19700517|F||||||||165.0^cm|62.5^kg\r", with: "")
        let error = failure(text)
        #expect(error?.reason == .unexpectedRecord(found: "O", expected: "P"))
        #expect(error?.location.record == 3)
    }

    @Test func tickNeedsOrder() {
        let error = failure(specTickText.replacingFirst("O|1|RUN-1OPT00417-0007||^^^CMNC|||20261124091500\r", with: ""))
        #expect(error?.reason == .unexpectedRecord(found: "R", expected: "O"))
        #expect(error?.location.record == 3)
    }

    @Test func tickNeedsResults() {
        let text = "H|\\^&|1||M^1^S|||||R||P|LIS2-A2|20261124101500\rM|1|OSTI|TICK|1\rO|1|R||^^^CMNC|||\rL|1|N\r"
        let error = failure(text)
        #expect(error?.reason == .missingRecord(expected: "R"))
        #expect(error?.location.record == 4)
    }

    @Test func alarmTakesCommentsNotResults() {
        let error = failure(alarmText.replacingFirst("C|1|I|ACCESS_LOW", with: "R|1|I|ACCESS_LOW"))
        #expect(error?.reason == .unexpectedRecord(found: "R", expected: "C"))
        #expect(error?.location.record == 4)
    }

    @Test func missingTerminator() {
        let error = failure(specTickText.replacingFirst("L|1|N\r", with: ""))
        #expect(error?.reason == .missingTerminator)
        #expect(error?.location.record == nil)
    }

    @Test func recordAfterTerminator() {
        let error = failure(specTickText + "R|9|^^^RUN_TIME|1|min\r")
        #expect(error?.reason == .recordAfterTerminator(found: "R"))
        #expect(error?.location.record == 8)
    }

    @Test func strangeRecordInBody() {
        let error = failure(specTickText.replacingFirst("R|3|", with: "Q|3|"))
        #expect(error?.reason == .unexpectedRecord(found: "Q", expected: "R or L"))
        #expect(error?.location.record == 6)
    }

    @Test func badBirthDate() {
        let error = failure(runStartText.replacingFirst("|19700517|", with: "|19700230|"))
        #expect(error?.reason == .invalidDate("19700230"))
        #expect(error?.location == .init(record: 3, recordType: "P", field: 8, byteOffset: error?.location.byteOffset ?? -1))
    }

    @Test func badSex() {
        let error = failure(runStartText.replacingFirst("|F|", with: "|X|"))
        #expect(error?.reason == .invalidSex("X"))
        #expect(error?.location.field == 9)
    }

    @Test func heightNeedsCentimetres() {
        let error = failure(runStartText.replacingFirst("165.0^cm", with: "165.0^in"))
        #expect(error?.reason == .invalidMeasurement("165.0^in", expectedUnit: "cm"))
        #expect(error?.location.field == 17)
    }

    @Test func weightNeedsANumber() {
        let error = failure(runStartText.replacingFirst("62.5^kg", with: "heavy^kg"))
        #expect(error?.location.field == 18)
    }

    @Test func knownCodeNeedsNumber() {
        let error = failure(specTickText.replacingFirst("|1950.0|", with: "|lots|"))
        #expect(error?.reason == .invalidNumber(code: "INLET_VOL", value: "lots"))
        #expect(error?.location.field == 4)
        #expect(error?.location.record == 5)
    }

    @Test func codeMustBeComponentFour() {
        let error = failure(specTickText.replacingFirst("^^^AC_VOL", with: "AC_VOL"))
        #expect(error?.reason == .invalidParameterCode("AC_VOL"))
        #expect(error?.location.field == 3)
    }

    @Test func procedureMustBeComponentFour() {
        let error = failure(specTickText.replacingFirst("^^^CMNC", with: "CMNC"))
        #expect(error?.reason == .invalidProcedure("CMNC"))
        #expect(error?.location.record == 3)
    }

    @Test func commentNeedsThreeComponents() {
        let error = failure(alarmText.replacingFirst("ACCESS_LOW^", with: ""))
        #expect(error?.location.record == 4)
        #expect(error?.location.field == 4)
    }

    @Test func commentSeverityMustBeKnown() {
        let error = failure(alarmText.replacingFirst("^ALARM|G", with: "^PANIC|G"))
        #expect(error?.reason == .invalidSeverity("PANIC"))
    }

    @Test func unknownEscapeIsAnError() {
        let error = failure(specTickText.replacingFirst("RUN-1OPT", with: "RUN&Q&1OPT"))
        #expect(error?.reason == .invalidEscape(.unknownSequence("Q")))
        #expect(error?.location.record == 3)
        #expect(error?.location.field == 3)
    }

    @Test func unterminatedEscapeIsAnError() {
        let error = failure(specTickText.replacingFirst("RUN-1OPT", with: "RUN&F1OPT"))
        #expect(error?.reason == .invalidEscape(.unterminated))
    }

    @Test func invalidUTF8IsAnError() {
        var text = bytes(specTickText)
        let runID = bytes("RUN-1")
        let index = (0...(text.count - runID.count)).first { text[$0..<($0 + runID.count)].elementsEqual(runID) }!
        text[index + 3] = 0xC3  // the "-" of the run id
        let error = failure(text)
        #expect(error?.reason == .invalidEscape(.invalidUTF8))
        #expect(error?.location.record == 3)
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        String(decoding: Array(utf8).replacingFirstBytes(target, with: replacement), as: UTF8.self)
    }
}

extension [UInt8] {
    func replacingFirstBytes(_ target: String, with replacement: String) -> [UInt8] {
        let t = Array(target.utf8)
        guard !t.isEmpty, count >= t.count else { return self }
        for start in 0...(count - t.count) where self[start..<(start + t.count)].elementsEqual(t) {
            return Array(self[..<start]) + Array(replacement.utf8) + Array(self[(start + t.count)...])
        }
        Issue.record("\(target) not found")
        return self
    }
}
