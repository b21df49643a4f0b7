import RecordStore
import Testing

/// The one SHA-256 helper (issue 12); its text is `Hex.encode`'s (TextFormatsTests).
@Suite struct DigestTests {
    @Test func sha256OfTheStandardVectors() {
        // FIPS 180-2, appendix B.1, and the empty message.
        #expect(Digest.sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256Hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256Hex(Array("abc".utf8)) == Digest.sha256Hex("abc"))
    }
}
