import Foundation
import SeparatorProtocol
import SimulatorKit
import Testing

/// Shipped captures decode to exactly their expected messages, like gpsd's
/// regression logs: a change in the decoder that alters any stored value,
/// duplicate or quarantine shows up here.
@Suite("Capture regressions")
struct CaptureRegressionTests {
    static let capturesDirectory = Fixtures.scenariosDirectory.deletingLastPathComponent().appendingPathComponent("captures")
    static let captureNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: capturesDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".capture") }.map { String($0.dropLast(8)) }.sorted()
    }()

    @Test("captures are shipped")
    func capturesExist() {
        #expect(Self.captureNames.count >= 2)
    }

    @Test("a capture decodes to its expected messages", arguments: captureNames)
    func decodesToExpected(name: String) throws {
        let capture = try Capture.load(path: Self.capturesDirectory.appendingPathComponent("\(name).capture").path)
        let expected = try String(contentsOf: Self.capturesDirectory.appendingPathComponent("\(name).expected"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let decoded = CaptureDecoder.decode(capture)
        #expect(decoded.lines == expected)
        #expect(decoded.host.quarantine.isEmpty)
        let sequences = decoded.host.messages.map(\.sequenceNumber)
        #expect(sequences == Array(1...UInt64(sequences.count)))
    }

    @Test("the faults capture really holds NAKs, duplicates and noise")
    func faultsCaptureExercisesRecovery() throws {
        let capture = try Capture.load(path: Self.capturesDirectory.appendingPathComponent("short-faults.capture").path)
        let hostBytes = capture.chunks.filter { $0.direction == .hostToDevice }.flatMap(\.bytes)
        #expect(hostBytes.contains(ASCIIControl.nak))
        #expect(CaptureDecoder.decode(capture).host.duplicates >= 1)
    }

    @Test("a capture with a bad line is refused with its line number")
    func badCaptureLine() {
        let text = "optia-sim-capture 1\n# comment\n0.1 > 05\n0.2 ? 06\n"
        #expect(throws: CaptureError.self) { try Capture.parse(text, source: "t") }
        do {
            _ = try Capture.parse(text, source: "t")
        } catch {
            #expect(error.line == 4)
            #expect(error.description.contains("direction"))
        }
        #expect(throws: CaptureError.self) { try Capture.parse("0.1 > 05\n", source: "t") }
        #expect(throws: CaptureError.self) { try Capture.parse("optia-sim-capture 1\n0.5 > 05\n0.1 > 06\n", source: "t") }
        #expect(throws: CaptureError.self) { try Capture.parse("optia-sim-capture 1\n0.5 > 0g\n", source: "t") }
    }
}
