/// Minimal Lower Layer Protocol (HL7 v2 over TCP): a message is framed as
/// `<VT> message <FS><CR>` (0x0B ... 0x1C 0x0D).
public enum MLLP {
    public static let startBlock: UInt8 = 0x0B
    public static let endBlock: UInt8 = 0x1C
    public static let carriageReturn: UInt8 = 0x0D

    public static func frame(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [startBlock]
        out.reserveCapacity(message.count + 3)
        out += message
        out += [endBlock, carriageReturn]
        return out
    }
}

/// Reads MLLP frames out of a byte stream, fed as bytes arrive. A pure state machine: bytes
/// outside a frame are counted and skipped (a peer's noise never becomes a message), and a frame
/// longer than `maximumLength` is dropped whole and reported, so a peer cannot make it grow
/// without bound.
public struct MLLPDecoder: Sendable {
    public enum Output: Hashable, Sendable {
        case message([UInt8])
        /// A frame exceeded the maximum length; its bytes were discarded up to its end.
        case oversized(length: Int)
    }

    public let maximumLength: Int
    private var inFrame = false
    private var buffer: [UInt8] = []
    private var discarding = false
    private var discardedLength = 0
    private var sawEndBlock = false
    /// Bytes seen outside any frame (between frames, or before the first).
    public private(set) var strayBytes = 0

    public init(maximumLength: Int = 1 << 20) {
        self.maximumLength = maximumLength
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Output] {
        var outputs: [Output] = []
        for byte in bytes {
            if !inFrame {
                if byte == MLLP.startBlock {
                    inFrame = true
                    buffer.removeAll(keepingCapacity: true)
                    discarding = false
                    discardedLength = 0
                    sawEndBlock = false
                } else {
                    strayBytes += 1
                }
                continue
            }
            if sawEndBlock {
                sawEndBlock = false
                if byte == MLLP.carriageReturn {
                    inFrame = false
                    outputs.append(discarding ? .oversized(length: discardedLength) : .message(buffer))
                    buffer.removeAll(keepingCapacity: true)
                    continue
                }
                // A lone FS inside the data: keep it and go on.
                append(MLLP.endBlock)
            }
            if byte == MLLP.endBlock {
                sawEndBlock = true
            } else if byte == MLLP.startBlock {
                // A new start before the end: the sender gave up on the frame before; start again.
                buffer.removeAll(keepingCapacity: true)
                discarding = false
                discardedLength = 0
            } else {
                append(byte)
            }
        }
        return outputs
    }

    private mutating func append(_ byte: UInt8) {
        if discarding {
            discardedLength += 1
        } else if buffer.count >= maximumLength {
            discarding = true
            discardedLength = buffer.count + 1
            buffer.removeAll()
        } else {
            buffer.append(byte)
        }
    }
}
