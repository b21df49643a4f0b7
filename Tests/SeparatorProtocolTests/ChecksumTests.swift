import SeparatorProtocol
import Testing

@Suite struct ChecksumTests {
    @Test func specVector() {
        // `1A|B|C|D<CR><ETX>` gives BF (separator-interface.md, section 2).
        let sum = E1381.checksum(bytes("1A|B|C|D\r") + [ASCIIControl.etx])
        #expect(sum == 0xBF)
        #expect(E1381.hexString(sum) == "BF")
    }

    @Test func terminatorRecordByHand() {
        // "2L|1|N" CR ETX: 0x32+0x4C+0x7C+0x31+0x7C+0x4E+0x0D+0x03 = 0x205 -> 0x05.
        #expect(E1381.checksum(bytes("2L|1|N\r") + [ASCIIControl.etx]) == 0x05)
        #expect(E1381.hexString(0x05) == "05")
    }

    @Test func intermediateFrameByHand() {
        // "7ABC" ETB: 0x37+0x41+0x42+0x43+0x17 = 0x114 -> 0x14.
        let frame = E1381.frame(number: 7, text: bytes("ABC"), isFinal: false)
        #expect(frame == [0x02, 0x37, 0x41, 0x42, 0x43, 0x17, 0x31, 0x34, 0x0D, 0x0A])
    }

    @Test func hexAcceptsLowerCase() {
        #expect(E1381.hexValue(UInt8(ascii: "b"), UInt8(ascii: "f")) == 0xBF)
        #expect(E1381.hexValue(UInt8(ascii: "B"), UInt8(ascii: "F")) == 0xBF)
        #expect(E1381.hexValue(UInt8(ascii: "G"), UInt8(ascii: "0")) == nil)
    }

    @Test func forbiddenSetMatchesFastTest() {
        for byte in UInt8.min...UInt8.max {
            #expect(ASCIIControl.isForbiddenInText(byte) == ASCIIControl.forbiddenInText.contains(byte))
        }
        #expect(!ASCIIControl.isForbiddenInText(ASCIIControl.cr))
    }
}

@Suite struct FramerTests {
    @Test func wholeMessageCutsEvery240() {
        let text = [UInt8](repeating: UInt8(ascii: "x"), count: 500)
        let frames = E1381Framer.frames(forMessage: text, mode: .wholeMessage, firstFrameNumber: 7)
        #expect(frames.count == 3)
        #expect(frames.map { $0[1] } == [UInt8(ascii: "7"), UInt8(ascii: "0"), UInt8(ascii: "1")])
        #expect(frames.map { $0[$0.count - 5] } == [ASCIIControl.etb, ASCIIControl.etb, ASCIIControl.etx])
        #expect(frames.map { $0.count - 7 } == [240, 240, 20])
    }

    @Test func recordPerFrameEndsEachRecordWithETX() {
        let long = String(repeating: "y", count: 300)
        let text = bytes("H|\\^&\rR|1|\(long)\rL|1|N\r")
        let frames = E1381Framer.frames(forMessage: text, mode: .recordPerFrame, firstFrameNumber: 1)
        #expect(frames.count == 4)
        #expect(frames.map { $0[$0.count - 5] } == [ASCIIControl.etx, ASCIIControl.etb, ASCIIControl.etx, ASCIIControl.etx])
        #expect(frames.flatMap { $0[2..<($0.count - 5)] } == text)
    }
}
