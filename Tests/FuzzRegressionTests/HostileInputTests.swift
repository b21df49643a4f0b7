import Foundation
import FuzzEntries
import SeparatorProtocol
import Testing

// Hand-made hostile inputs, through the same FuzzEntries functions as the fuzz targets, each with
// the outcome it must have (not only "does not trap"): truncated and huge frames, NULs, invalid
// UTF-8, huge numbers, deep nesting, many keys.

private let ENQ: [UInt8] = [ASCIIControl.enq]
private let EOT: [UInt8] = [ASCIIControl.eot]
private let ACK = ASCIIControl.ack
private let NAK = ASCIIControl.nak
private let timerFires: [UInt8] = [FuzzEntries.eventByte, 0x01]
private let storeLater: [UInt8] = [FuzzEntries.eventByte, 4 * 2 + 2]
private let storeFailed: [UInt8] = [FuzzEntries.eventByte, 4 * 1 + 2]
private let shutdown: [UInt8] = [FuzzEntries.eventByte, 0x03]
/// The bytes after it come in a later read (the store completes between the two).
private let nextRead: [UInt8] = [FuzzEntries.eventByte, 4 * 1 + 3]

private let shortMessage = Array("H|\\^&|1||OPTIA-SIM^1.0^1OPT00417\rM|1|OSTI|TICK|1\rL|1|N\r".utf8)

/// The spec's section 4 TICK (separator-interface.md), without its elided records.
private let specTickRecords: [String] = [
    "H|\\^&|1042||OPTIA-SIM^1.0^1OPT00417|||||APHERESISD||P|LIS2-A2|20261124101500",
    "M|1|OSTI|TICK|1",
    "O|1|RUN-1OPT00417-0007||^^^CMNC|||20261124091500",
    "R|1|^^^RUN_TIME|60.0|min||||F||||20261124101500",
    "R|2|^^^INLET_VOL|1950.0|mL||||F||||20261124101500",
    "L|1|N",
]
private let specTick = Array(specTickRecords.map { $0 + "\r" }.joined().utf8)

private func frame(_ number: Int, _ text: [UInt8], final: Bool = true) -> [UInt8] {
    E1381.frame(number: number, text: text, isFinal: final)
}

private func rejection(_ outcome: DecodeOutcome) -> String? {
    if case .rejected(let message) = outcome { return message }
    return nil
}

@Suite struct HostileE1381Tests {
    @Test func aMessageInOneFrameIsDeliveredAndAcknowledgedOnceStored() {
        let summary = FuzzEntries.e1381Receiver(ENQ + frame(1, shortMessage) + nextRead + EOT)
        #expect(summary.answers == [ACK, ACK])
        #expect(summary.messages == [shortMessage])
    }

    @Test func anEOTBeforeTheStoreCompletesDropsTheAnswer() {
        // The device gave up waiting (its 15 s timer): a late ACK would answer whatever it sends next.
        let summary = FuzzEntries.e1381Receiver(ENQ + frame(1, shortMessage) + EOT)
        #expect(summary.answers == [ACK])
        #expect(summary.messages == [shortMessage])
    }

    @Test func aFrameFailingItsChecksumIsRefused() {
        var bad = frame(1, shortMessage)
        bad[bad.count - 3] = bad[bad.count - 3] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let summary = FuzzEntries.e1381Receiver(ENQ + bad)
        #expect(summary.answers == [ACK, NAK])
        #expect(summary.messages.isEmpty)
    }

    @Test func aLowerCaseChecksumIsAccepted() throws {
        // A message whose checksum has a letter in it, written in lower case.
        let hasLetter = { (f: [UInt8]) in f[(f.count - 4)...(f.count - 3)].contains { (0x41...0x46).contains($0) } }
        let text = try #require(
            (1...50).lazy.map { Array("H|\\^&|\($0)||OPTIA-SIM^1.0^1OPT00417\rL|1|N\r".utf8) }.first { hasLetter(frame(1, $0)) })
        var lower = frame(1, text)
        for i in (lower.count - 4)...(lower.count - 3) where (0x41...0x46).contains(lower[i]) { lower[i] += 0x20 }
        #expect(lower != frame(1, text))
        let summary = FuzzEntries.e1381Receiver(ENQ + lower)
        #expect(summary.answers == [ACK, ACK])
        #expect(summary.messages == [text])
    }

    @Test func aTruncatedFrameTimesOutUnanswered() {
        let cut = Array(frame(1, shortMessage).prefix(20))
        let summary = FuzzEntries.e1381Receiver(ENQ + cut + timerFires + frame(1, shortMessage))
        #expect(summary.answers == [ACK])
        #expect(summary.timeouts == 1)
        #expect(summary.messages.isEmpty)
    }

    @Test func aFrameOf64KiBIsRefusedOnce() {
        let huge = frame(1, [UInt8](repeating: UInt8(ascii: "A"), count: 64 * 1024))
        let summary = FuzzEntries.e1381Receiver(ENQ + huge + frame(1, shortMessage))
        #expect(summary.answers == [ACK, NAK, ACK])
        #expect(summary.messages == [shortMessage])
    }

    @Test func nulBytesAreIgnored() {
        let nuls = [UInt8](repeating: 0, count: 4096)
        let summary = FuzzEntries.e1381Receiver(nuls + ENQ + nuls + frame(1, shortMessage))
        #expect(summary.answers == [ACK, ACK])
        #expect(summary.messages == [shortMessage])
    }

    @Test func aLongMessageWrapsItsFrameNumbers() {
        var text = Array("H|\\^&|7||OPTIA-SIM^1.0^1OPT00417\rM|1|OSTI|TICK|1\r".utf8)
        for i in 1...12 { text += Array("R|\(i)|^^^CODE_\(i)|\(i).5|mL||||F||||20261124101500\r".utf8) }
        text += Array("L|1|N\r".utf8)
        let frames = E1381Framer.frames(forMessage: text, mode: .recordPerFrame, firstFrameNumber: 1)
        #expect(frames.count == 15)
        let summary = FuzzEntries.e1381Receiver(ENQ + frames.joined() + nextRead + EOT)
        #expect(summary.answers == [UInt8](repeating: ACK, count: frames.count + 1))
        #expect(summary.messages == [text])
    }

    @Test func aMessageOverTheLimitIsAcknowledgedButNotDelivered() {
        // The harness's limit is 2048 bytes: frames are still acknowledged so the device moves on.
        var text = Array("H|\\^&|7||OPTIA-SIM^1.0^1OPT00417\r".utf8)
        for i in 1...60 { text += Array("R|\(i)|^^^CODE_\(i)|\(i).5|mL||||F||||20261124101500\r".utf8) }
        text += Array("L|1|N\r".utf8)
        let frames = E1381Framer.frames(forMessage: text, mode: .wholeMessage, firstFrameNumber: 1)
        let summary = FuzzEntries.e1381Receiver(ENQ + frames.joined())
        #expect(summary.answers == [UInt8](repeating: ACK, count: frames.count + 1))
        #expect(summary.messages.isEmpty)
    }

    @Test func anEnquiryWhileAMessageIsStoredIsRefused() {
        let summary = FuzzEntries.e1381Receiver(storeLater + ENQ + frame(1, shortMessage) + ENQ)
        #expect(summary.answers == [ACK, NAK])
        #expect(summary.messages == [shortMessage])
    }

    @Test func aStoreThatFailsLeavesTheLastFrameUnansweredAndTheMessageComesAgain() {
        let session = ENQ + frame(1, shortMessage)
        let summary = FuzzEntries.e1381Receiver(storeLater + session + storeFailed + EOT + session)
        #expect(summary.answers == [ACK, ACK])
        #expect(summary.messages == [shortMessage, shortMessage])
    }

    @Test func afterShutdownFramesAreAnsweredEOT() {
        let summary = FuzzEntries.e1381Receiver(ENQ + shutdown + frame(1, shortMessage) + nextRead + ENQ)
        #expect(summary.answers == [ACK, ASCIIControl.eot, NAK])
        #expect(summary.messages == [shortMessage])
    }

    /// The oracle must catch a receiver that acknowledges a frame whose checksum fails: a broken
    /// receiver simulated by handing the oracle an ACK the real one never sends.
    @Test func theOracleCatchesAnAckForABadChecksum() async {
        await #expect(processExitsWith: .failure) {
            var oracle = ReceiverOracle()
            oracle.observe(call: [ASCIIControl.enq], actions: [.send([ASCIIControl.ack])])
            var bad = E1381.frame(number: 1, text: Array("H|\\^&|1\r".utf8), isFinal: false)
            bad[bad.count - 4] ^= 0x01
            oracle.observe(call: bad, actions: [.send([ASCIIControl.ack])])
        }
    }

    /// ... and a message that is not the text of the frames it accepted.
    @Test func theOracleCatchesADeliveredMessageThatWasNotSent() async {
        await #expect(processExitsWith: .failure) {
            var oracle = ReceiverOracle()
            oracle.observe(call: [ASCIIControl.enq], actions: [.send([ASCIIControl.ack])])
            let sent = E1381.frame(number: 1, text: Array("H|\\^&|1\rL|1|N\r".utf8), isFinal: true)
            oracle.observe(call: sent, actions: [.messageReceived(Array("H|\\^&|2\rL|1|N\r".utf8))])
        }
    }

    /// The same oracle is quiet for what the receiver really does.
    @Test func theOracleAcceptsTheRealAnswers() {
        var oracle = ReceiverOracle()
        oracle.observe(call: [ASCIIControl.enq], actions: [.send([ASCIIControl.ack])])
        let sent = E1381.frame(number: 1, text: Array("H|\\^&|1\rL|1|N\r".utf8), isFinal: true)
        oracle.observe(call: sent, actions: [.messageReceived(Array("H|\\^&|1\rL|1|N\r".utf8))])
        oracle.observeStore(succeeded: true, actions: [.send([ASCIIControl.ack])])
    }
}

@Suite struct HostileE1394Tests {
    @Test func theSpecExampleDecodes() {
        #expect(FuzzEntries.e1394Decoder(specTick) == .accepted)
    }

    @Test func emptyAndNULsAreRefused() {
        #expect(rejection(FuzzEntries.e1394Decoder([]))?.contains("holds no records") == true)
        #expect(rejection(FuzzEntries.e1394Decoder([UInt8](repeating: 0, count: 1000))) != nil)
    }

    @Test func invalidUTF8IsRefusedNamingIt() {
        var text = specTick
        let offset = specTick.firstRange(of: Array("RUN-".utf8))!.upperBound  // inside the run ID
        text[offset] = 0xC3
        text[offset + 1] = 0x28
        #expect(rejection(FuzzEntries.e1394Decoder(text))?.contains("not valid UTF-8") == true)
    }

    @Test func hugeNumbersAreRefused() {
        let text = Array(String(decoding: specTick, as: UTF8.self).replacingOccurrences(of: "1950.0", with: "1e400").utf8)
        #expect(rejection(FuzzEntries.e1394Decoder(text))?.contains("is not a number") == true)
        let digits = String(repeating: "9", count: 5000)
        let long = Array(String(decoding: specTick, as: UTF8.self).replacingOccurrences(of: "|1042|", with: "|\(digits)|").utf8)
        #expect(rejection(FuzzEntries.e1394Decoder(long))?.contains("is not a positive decimal") == true)
    }

    @Test func aTruncatedMessageIsRefused() {
        let cut = Array(specTick.dropLast(6))  // without its L record
        #expect(rejection(FuzzEntries.e1394Decoder(cut))?.contains("without an L record") == true)
        let unterminated = Array(String(decoding: specTick, as: UTF8.self).replacingOccurrences(of: "CMNC", with: "CM&X4").utf8)
        #expect(rejection(FuzzEntries.e1394Decoder(unterminated))?.contains("escape") == true)
    }

    @Test func a64KiBFieldRoundTrips() {
        let big = String(repeating: "A", count: 64 * 1024)
        let text = Array(String(decoding: specTick, as: UTF8.self).replacingOccurrences(of: "RUN-1OPT00417-0007", with: big).utf8)
        #expect(FuzzEntries.e1394Decoder(text) == .accepted)
    }
}

@Suite struct HostileExportTests {
    static let minimal = "#SERIAL=1OPT00417\r\n#RUN_ID=RUN-1\r\nTIMESTAMP,RUN_TIME\r\n20261124101500,1.0\r\n#END=1\r\n"

    @Test func aMinimalFileReads() {
        #expect(FuzzEntries.exportCSV(Array(Self.minimal.utf8)) == .accepted)
    }

    @Test func aFileCutShortIsIncomplete() {
        let cut = Array(Self.minimal.utf8.dropLast(9))
        #expect(rejection(FuzzEntries.exportCSV(cut))?.contains("incomplete") == true)
    }

    @Test func nulsInvalidUTF8AndHugeNumbersAreRefused() {
        #expect(rejection(FuzzEntries.exportCSV([UInt8](repeating: 0, count: 1000))) != nil)
        let invalid = Array(Self.minimal.utf8).map { $0 == UInt8(ascii: "1") ? 0xFF : $0 }
        #expect(rejection(FuzzEntries.exportCSV(invalid)) != nil)
        let huge = Self.minimal.replacingOccurrences(of: ",1.0", with: ",1e400")
        #expect(rejection(FuzzEntries.exportCSV(Array(huge.utf8)))?.contains("is not a number") == true)
        let count = Self.minimal.replacingOccurrences(of: "#END=1", with: "#END=99999999999999999999999")
        #expect(rejection(FuzzEntries.exportCSV(Array(count.utf8))) != nil)
    }

    @Test func anUnterminatedQuoteIsRefused() {
        let text = Self.minimal.replacingOccurrences(of: "#RUN_ID=RUN-1", with: "\"#RUN_ID=RUN-1")
        #expect(rejection(FuzzEntries.exportCSV(Array(text.utf8)))?.contains("never closed") == true)
    }

    @Test func aHeaderOf100000ColumnsIsRefusedWithoutTrapping() {
        let header = "TIMESTAMP," + (1...100_000).map { "CODE_\($0)" }.joined(separator: ",")
        let text = Self.minimal.replacingOccurrences(of: "TIMESTAMP,RUN_TIME", with: header)
        #expect(rejection(FuzzEntries.exportCSV(Array(text.utf8)))?.contains("the header has 100001") == true)
    }
}

@Suite struct HostileConfigurationTests {
    static let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("systemd/apheresisd.toml")

    @Test func theShippedConfigurationHasNoProblems() throws {
        let summary = FuzzEntries.configurationChecker(Array(try Data(contentsOf: Self.shipped)))
        #expect(summary.problems == [])
    }

    @Test func tenThousandUnknownKeysAreEachReportedOnTheirLine() {
        let text = "format = 1\n" + (1...100_000).map { "key_\($0) = \($0)" }.joined(separator: "\n") + "\n"
        let summary = FuzzEntries.configurationChecker(Array(text.utf8))
        #expect(summary.problems.count == 100_000)
        #expect(summary.lines.first == 2)
        #expect(summary.lines.last == 100_001)
    }

    @Test func deeplyNestedTablesAndArraysAreRefusedWithALine() {
        let tables = "format = 1\n[" + Array(repeating: "a", count: 10_000).joined(separator: ".") + "]\nx = 1\n"
        let deepTables = FuzzEntries.configurationChecker(Array(tables.utf8))
        #expect(!deepTables.problems.isEmpty)
        let arrays = "format = 1\nx = " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n"
        let deepArrays = FuzzEntries.configurationChecker(Array(arrays.utf8))
        #expect(deepArrays.lines.contains(2))
        let inline = "format = 1\nx = " + String(repeating: "{a = ", count: 100_000) + "1" + String(repeating: "}", count: 100_000) + "\n"
        let deepInline = FuzzEntries.configurationChecker(Array(inline.utf8))
        #expect(deepInline.lines.contains(2))
    }

    /// Found by the fuzz target: toml++ (inside TOMLKit) asserts that a table header's name starts
    /// with a key character, so these aborted `apheresisd --check-config` (and are undefined
    /// behaviour in a release build). Now syntax problems on their line.
    @Test func tableHeadersThatWouldAbortTheParserAreProblemsWithLines() {
        for header in ["[=]", "[[\u{E9}t\u{E9}]]", "[ *]", "[", "[[ [a]]", "[#]", "[.a]"] {
            let summary = FuzzEntries.configurationChecker(Array("format = 1\n\(header)\nx = 1\n".utf8))
            #expect(summary.lines == [2], "\(header)")
            #expect(summary.problems.first?.contains("table header") == true, "\(header)")
        }
    }

    @Test func bracketsInValuesStringsAndCommentsAreNotHeaders() {
        let text = #"""
            format = 1
            # [=] in a comment
            x = [
            [{ a = 1 }],
            [+1],
            ]
            y = """
            [=]
            """
            z = '[=]'
            [ "quoted" ]

            """#
        let summary = FuzzEntries.configurationChecker(Array(text.utf8))
        #expect(!summary.problems.contains { $0.contains("table header") })
        #expect(!summary.problems.isEmpty)  // x, y, z and "quoted" are no settings
    }

    @Test func nulsInvalidUTF8AndHugeNumbersAreProblemsWithLines() {
        // Found here: the parser took the text as a C string, so everything after a NUL was ignored
        // and this file had no problems.
        let nuls = FuzzEntries.configurationChecker(Array("format = 1\n\0\n[[device]]\nbogus = 1\n".utf8))
        #expect(nuls.lines == [2])
        #expect(nuls.problems.first?.contains("NUL") == true)
        let invalid = FuzzEntries.configurationChecker(Array("format = 1\n[daemon]\nlog_level = \"".utf8) + [0xFF, 0xFE] + Array("\"\n".utf8))
        #expect(invalid.lines == [3])
        let huge = FuzzEntries.configurationChecker(Array("format = 99999999999999999999999999\n".utf8))
        #expect(huge.lines == [1])
    }
}

@Suite struct HostileAPIBodyTests {
    static func body(_ kind: APIKind, _ text: String) -> [UInt8] { [kind.rawValue] + Array(text.utf8) }

    /// The first byte's value picks the endpoint, in `APIRequestBody.allCases` order.
    enum APIKind: UInt8 { case lab, release, print, signIn, acknowledge, presetChange }

    /// Found by the fuzz target: an empty release body was a 500 (the empty-body shortcut decoded
    /// `{}` outside the error handling); now the 422 naming the missing key.
    @Test func anEmptyReleaseBodyIsRefusedNamingTheKey() {
        #expect(FuzzEntries.apiBodies([APIKind.release.rawValue]) == .rejected("meaning: missing (required)"))
    }

    @Test func theDocumentedBodiesAreAccepted() {
        let lab = #"{"wbc_giga_per_litre": 1.3, "cd3_percent": 44.8, "viability_percent": 96, "qc_millilitres": 5}"#
        #expect(FuzzEntries.apiBodies(Self.body(.lab, lab)) == .accepted)
        let presets = #"{"reason":"physician order","changes":{"collect_target_ml":150}}"#
        #expect(FuzzEntries.apiBodies(Self.body(.presetChange, presets)) == .accepted)
        #expect(FuzzEntries.apiBodies(Self.body(.signIn, #"{"user":"op1","password":"operator-pw-1"}"#)) == .accepted)
        #expect(FuzzEntries.apiBodies(Self.body(.acknowledge, "")) == .accepted)
    }

    @Test func deeplyNestedJSONIsRefused() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.lab, deep))) != nil)
        let objects = String(repeating: #"{"a":"#, count: 100_000) + "1" + String(repeating: "}", count: 100_000)
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.print, objects))) != nil)
    }

    @Test func hugeNumbersAreRefused() {
        let lab = #"{"wbc_giga_per_litre": 1e400, "cd3_percent": 44.8, "viability_percent": 96, "qc_millilitres": 5}"#
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.lab, lab))) != nil)
        let preset = #"{"reason":"r","changes":{"collect_target_ml":1e308}}"#
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.presetChange, preset)))?.contains("is outside") == true)
    }

    @Test func invalidUTF8AndNULsAreRefused() {
        #expect(rejection(FuzzEntries.apiBodies([APIKind.signIn.rawValue] + Array(#"{"user":""#.utf8) + [0xFF] + Array(#"","password":"x"}"#.utf8))) != nil)
        #expect(rejection(FuzzEntries.apiBodies([APIKind.acknowledge.rawValue, 0, 0, 0])) != nil)
        #expect(FuzzEntries.apiBodies(Self.body(.signIn, #"{"user":"a\u0000b","password":""}"#)) == .accepted)
    }

    @Test func refusalsNameWhatIsWrong() {
        #expect(FuzzEntries.apiBodies(Self.body(.signIn, "{}")) == .rejected("user and password: both are needed to sign in"))
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.release, #"{"meaning":"approved","release_summary_sha256":"x"}"#)))?.contains("\"released\"") == true)
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.presetChange, #"{"reason":"r","changes":{"bogus":1}}"#)))?.hasPrefix("changes.bogus") == true)
        #expect(rejection(FuzzEntries.apiBodies(Self.body(.lab, #"{"wbc_giga_per_litre": "1.3"}"#)))?.hasPrefix("wbc_giga_per_litre: expected a number") == true)
    }
}
