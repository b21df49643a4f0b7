import Crypto

/// The record's digests as text: lower-case hex, two digits a byte. One helper, because a digest
/// written one way and compared another (upper case, a dropped leading zero) would quietly never
/// match: export files' content hashes, signed release summaries, label contents, the audit chain.
public enum Digest {
    /// Lower-case hex of `bytes`.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// SHA-256 of `bytes`, as lower-case hex.
    public static func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
        hex(SHA256.hash(data: Array(bytes)))
    }

    /// SHA-256 of the UTF-8 of `text`, as lower-case hex.
    public static func sha256Hex(_ text: String) -> String { sha256Hex(text.utf8) }
}
