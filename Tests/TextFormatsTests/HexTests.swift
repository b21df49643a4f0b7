import Testing
import TextFormats

/// The one hex rule (issue 12): lower case, leading zeros kept, either case read back.
@Suite struct HexTests {
    @Test func bytesAreTwoLowerCaseDigitsEach() {
        #expect(Hex.encode([0x00, 0x0F, 0xA0, 0xFF]) == "000fa0ff")
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode("\r\n".utf8) == "0d0a")
    }

    @Test func bytesReadBackInEitherCase() {
        #expect(Hex.decode("000fa0ff") == [0x00, 0x0F, 0xA0, 0xFF])
        #expect(Hex.decode("000FA0FF"[...]) == [0x00, 0x0F, 0xA0, 0xFF])
        #expect(Hex.decode("") == [])
        #expect(Hex.decode("abc") == nil, "odd count")
        #expect(Hex.decode("0g") == nil)
        #expect(Hex.decode("+1") == nil)
        let all = (0...255).map(UInt8.init)
        #expect(Hex.decode(Hex.encode(all)) == all)
    }

    @Test func numbersArePaddedToTheirWidth() {
        #expect(Hex.digits(UInt16(0x403), width: 4) == "0403")
        #expect(Hex.digits(UInt16(0x10C4), width: 4) == "10c4")
        #expect(Hex.digits(UInt64(0), width: 16) == "0000000000000000")
        #expect(Hex.digits(UInt64.max, width: 16) == "ffffffffffffffff")
        // A minimum, not a cut: /proc/locks writes majors above 0xff in full.
        #expect(Hex.digits(UInt64(0x103), width: 2) == "103")
        #expect(Hex.digits(UInt64(8), width: 2) == "08")
    }

    @Test func fixedWidthNumbersReadBackExactly() {
        #expect(Hex.value("0403", width: 4, as: UInt16.self) == 0x0403)
        #expect(Hex.value("EA60"[...], width: 4, as: UInt16.self) == 0xEA60)
        #expect(Hex.value("403", width: 4, as: UInt16.self) == nil, "too short")
        #expect(Hex.value("04030", width: 4, as: UInt16.self) == nil, "too long")
        #expect(Hex.value("+403", width: 4, as: UInt16.self) == nil, "a sign is not a digit")
        #expect(Hex.value("04 3", width: 4, as: UInt16.self) == nil)
        #expect(Hex.value("10000", width: 5, as: UInt16.self) == nil, "does not fit")
        for n in [UInt16(0), 1, 0x0403, 0xFFFF] {
            #expect(Hex.value(Hex.digits(n, width: 4), width: 4, as: UInt16.self) == n)
        }
    }
}
