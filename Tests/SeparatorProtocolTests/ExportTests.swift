import SeparatorProtocol
import Testing

@Suite struct ExportTests {
    func decodeFailure(_ text: String) -> ExportDecodingError? {
        do {
            _ = try ExportCSV.decode(text)
            Issue.record("decoded without error")
            return nil
        } catch {
            return error
        }
    }

    var run: ExportRun { try! ExportRun(messages: sampleRun()) }
    var csv: String { ExportCSV.encode(run) }
    /// The file as lines, LF-separated (no field of the sample spans lines).
    var lines: [String] { csv.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init) }
    func file(_ lines: [String]) -> String { lines.joined(separator: "\n") }

    @Test func buildsFromMessages() {
        let run = self.run
        #expect(run.device == device)
        #expect(run.runID == "RUN-1OPT00417-0007")
        #expect(run.settings.count == 5)
        #expect(run.settings[3] == .init(code: .acdaLot, value: .text("LOT, \"A\"^7|&")))
        #expect(run.telemetryCodes == ParameterDefinition.telemetry.map(\.code))
        #expect(run.rowCount == 4)
        #expect(run.value(.runTime, row: 3) == sampleRun().last!.number(.runTime))
        #expect(run.notes.map(\.afterRow) == [1, 2])
        #expect(run.notes.map(\.code) == ["ACCESS_LOW", "PAUSE"])
        #expect(run.patient == samplePatient)
    }

    @Test func encodesTheDocumentedLayout() {
        let lines = self.lines
        #expect(lines[0] == "#FORMAT=OPTIA-EXPORT/1")
        #expect(lines.contains("#SERIAL=1OPT00417"))
        #expect(lines.contains("#TBV=4800.0"))
        #expect(lines.contains("\"#ACDA_LOT=LOT, \"\"A\"\"^7|&\""))
        #expect(lines.contains { $0.hasPrefix("TIMESTAMP,RUN_TIME,INLET_VOL,WB_VOL,") })
        #expect(lines.contains("#ALARM=20261124091505^ACCESS_LOW^Access pressure low, check ^ line^ALARM") == false)  // has a comma: quoted
        #expect(lines.contains("\"#ALARM=20261124091505^ACCESS_LOW^Access pressure low, check ^ line^ALARM\""))
        #expect(lines.contains("#ALARM=20261124091510^PAUSE^^INFO"))
        #expect(lines[lines.count - 2] == "#END=4")
        #expect(lines.last == "")
    }

    @Test func roundTrip() throws {
        #expect(try ExportCSV.decode(csv) == run)
    }

    @Test func roundTripWithAwkwardValues() throws {
        var run = self.run
        run.patient?.familyName = "O'Neil, \"Jr\"\r\nline two"
        run.settings.append(.init(code: "CUSTOM", value: .text("a,b")))
        run.settings.append(.init(code: "CUSTOM_N", value: .number(-0.25)))
        run.notes.append(.init(afterRow: 4, timestamp: ts("20261124091530"), code: "OPERATOR_NOTE", text: "x^y,\"z\"", severity: .info))
        run.rows[1].values[3] = nil
        run.runStart = nil
        #expect(try ExportCSV.decode(ExportCSV.encode(run)) == run)
    }

    @Test func acceptsLFLineEndingsAndNoFormatLine() throws {
        #expect(try ExportCSV.decode(file(Array(lines.dropFirst()))) == run)
    }

    @Test func messagesRoundTrip() throws {
        let messages = run.messages()
        #expect(messages.map(\.kind) == [.runStart, .tick, .alarm, .tick, .event, .tick, .runEnd])
        #expect(messages.allSatisfy { $0.sequenceNumber == 0 })
        #expect(try ExportRun(messages: messages) == run)
        // Through the E1394 path the daemon uses for live messages.
        for (index, message) in messages.enumerated() {
            var numbered = message
            numbered.sequenceNumber = UInt64(index + 1)
            #expect(try E1394Decoder.decode(E1394Encoder.encode(numbered)) == numbered)
        }
    }

    @Test func buildNeedsRunStartAndRunEnd() {
        let messages = sampleRun()
        #expect(throws: ExportRunBuildError.missingRunStart) { try ExportRun(messages: Array(messages.dropFirst())) }
        #expect(throws: ExportRunBuildError.missingRunEnd) { try ExportRun(messages: Array(messages.dropLast())) }
        var foreign = messages
        foreign[1].order.runID = "OTHER"
        #expect(throws: ExportRunBuildError.foreignMessage(index: 1)) { try ExportRun(messages: foreign) }
    }

    @Test func withoutEndTheFileIsIncomplete() {
        let error = decodeFailure(file(Array(lines.dropLast(2))))
        #expect(error?.reason == .incomplete)
    }

    @Test func endCountMustMatch() {
        var lines = self.lines
        lines[lines.count - 2] = "#END=5"
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .endCountMismatch(declared: 5, actual: 4))
        #expect(error?.line == lines.count - 1)
    }

    @Test func aDeviceClockGoingBackIsKeptNotRefused() throws {
        var lines = self.lines
        let firstRow = lines.firstIndex { $0.hasPrefix("2026") }!
        lines[firstRow + 2] = "20250101000000" + lines[firstRow + 2].dropFirst(14)  // after the alarm line
        let run = try ExportCSV.decode(file(lines))
        #expect(run.rows.map(\.timestamp.wire).contains("20250101000000"))
        #expect(run.rows.count == run.rowCount)
    }

    @Test func valuesMustBeNumbers() {
        var lines = self.lines
        let firstRow = lines.firstIndex { $0.hasPrefix("2026") }!
        var cells = lines[firstRow].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        cells[3] = "nan"
        lines[firstRow] = cells.joined(separator: ",")
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .invalidNumber("nan"))
        #expect(error?.line == firstRow + 1)
        #expect(error?.column == 4)
        #expect(error?.description == "line \(firstRow + 1), column 4: \"nan\" is not a number")
    }

    @Test(arguments: ["SERIAL", "RUN_ID"])
    func requiredKeys(key: String) {
        let lines = self.lines.filter { !$0.hasPrefix("#\(key)=") }
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .missingKey)
        #expect(error?.key == key)
        #expect(error?.line == lines.firstIndex { $0.hasPrefix("TIMESTAMP") }! + 1)
    }

    @Test func duplicateKey() {
        var lines = self.lines
        lines.insert("#SERIAL=X", at: 3)
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .duplicateKey)
        #expect(error?.line == 5)
        #expect(error?.key == "SERIAL")
    }

    @Test func rowWidthMustMatchHeader() {
        var lines = self.lines
        let firstRow = lines.firstIndex { $0.hasPrefix("2026") }!
        lines[firstRow] += ",1"
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .fieldCountMismatch(expected: 18, found: 19))
        #expect(error?.line == firstRow + 1)
    }

    @Test func nothingAfterEnd() {
        let error = decodeFailure(csv + "20261124101500\r\n")
        #expect(error?.reason == .contentAfterEnd)
        #expect(error?.line == lines.count)
    }

    @Test func malformedAlarm() {
        var lines = self.lines
        let alarm = lines.firstIndex { $0.hasPrefix("#ALARM=") }!
        lines[alarm] = "#ALARM=20261124091510^PAUSE"
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .invalidAlarm("20261124091510^PAUSE"))
        #expect(error?.line == alarm + 1)
    }

    @Test func unterminatedQuote() {
        let error = decodeFailure(file(Array(lines.prefix(3)) + ["\"#OPERATOR=abc"]))
        #expect(error?.reason == .unterminatedQuote)
        #expect(error?.line == 4)
    }

    @Test func knownSettingMustBeNumeric() {
        var lines = self.lines
        lines[lines.firstIndex(of: "#TBV=4800.0")!] = "#TBV=lots"
        let error = decodeFailure(file(lines))
        #expect(error?.reason == .invalidNumber("lots"))
        #expect(error?.key == "TBV")
    }
}
