import SeparatorProtocol

extension FuzzEntries {
    /// One message's text through the optia dialect's decoder, as the daemon decodes every message a
    /// link delivers. Refusals must be thrown errors that point inside the text; a message that
    /// decodes must encode to frame-safe text that decodes to the same message (the simulator and
    /// the tests write messages with the same encoder).
    @discardableResult
    public static func e1394Decoder(_ data: [UInt8]) -> DecodeOutcome {
        let dialect = SeparatorDialect.optiaStyle
        let message: SeparatorMessage
        do {
            message = try dialect.decodeMessage(data)
        } catch {
            let location = error.location
            precondition(
                (0...data.count).contains(location.byteOffset),
                "e1394: error offset \(location.byteOffset) outside the \(data.count) bytes: \(error)")
            precondition(location.record.map { $0 >= 1 } ?? true, "e1394: error in record \(location.record ?? 0): \(error)")
            precondition(location.field.map { $0 >= 1 } ?? true, "e1394: error in field \(location.field ?? 0): \(error)")
            return .rejected(error.description)
        }
        let text = E1394Encoder.encode(message)
        if let index = text.firstIndex(where: ASCIIControl.isForbiddenInText) {
            preconditionFailure("e1394: the encoder wrote byte \(text[index]) at \(index), which no frame may carry")
        }
        do {
            let again = try dialect.decodeMessage(text)
            precondition(
                again == message, "e1394: a decoded message encodes to a different one:\n\(message)\n\(again)")
        } catch {
            preconditionFailure("e1394: a decoded message encodes to text that does not decode: \(error)")
        }
        return .accepted
    }
}
