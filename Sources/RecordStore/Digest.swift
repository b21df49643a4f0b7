import Crypto
import TextFormats

/// The record's digests as text, by `Hex.encode` (lower case, two digits a byte): export files'
/// content hashes, signed release summaries, label contents, the audit chain.
public enum Digest {
    /// SHA-256 of `bytes`, as lower-case hex.
    public static func sha256Hex(_ bytes: some Sequence<UInt8>) -> String {
        Hex.encode(SHA256.hash(data: Array(bytes)))
    }

    /// SHA-256 of the UTF-8 of `text`, as lower-case hex.
    public static func sha256Hex(_ text: String) -> String { sha256Hex(text.utf8) }
}
