/// A receiver's answer to one message (MSA): the acknowledgement code, the control id it answers,
/// and its text (MSA-3, or ERR's diagnostic text when MSA-3 is empty).
public struct HL7Acknowledgement: Hashable, Sendable {
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// Original mode: accepted, error, rejected.
        case applicationAccept = "AA", applicationError = "AE", applicationReject = "AR"
        /// Enhanced mode's accept acknowledgements.
        case commitAccept = "CA", commitError = "CE", commitReject = "CR"

        /// What the sender does with the message it answers.
        public var verdict: Verdict {
            switch self {
            case .applicationAccept, .commitAccept: .accepted
            case .applicationError, .commitError: .error
            case .applicationReject, .commitReject: .rejected
            }
        }
    }

    public enum Verdict: String, Hashable, Sendable {
        case accepted, error, rejected
    }

    public var code: Code
    public var controlID: String
    public var text: String

    public init(code: Code, controlID: String, text: String) {
        self.code = code
        self.controlID = controlID
        self.text = text
    }

    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        case notHL7(String)
        case noMSA
        case unknownCode(String)

        public var description: String {
            switch self {
            case .notHL7(let start): "the answer is not an HL7 message (it starts \"\(start)\")"
            case .noMSA: "the answer has no MSA segment"
            case .unknownCode(let code): "the answer's MSA-1 is \"\(code)\", not an acknowledgement code (AA, AE, AR, CA, CE, CR)"
            }
        }
    }

    /// Reads an ACK message. Its own encoding characters (MSH-1, MSH-2) are honoured.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        let text = String(decoding: bytes, as: UTF8.self)
        let segments = text.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).map(String.init)
        guard let msh = segments.first, msh.hasPrefix("MSH"), msh.count >= 8 else {
            throw .notHL7(String(text.prefix(16)))
        }
        let chars = Array(msh)
        let field = chars[3]
        let component = chars[4]
        func fields(_ segment: String) -> [String] { segment.split(separator: field, omittingEmptySubsequences: false).map(String.init) }
        func first(_ value: String) -> String {
            HL7Text.unescape(String(value.split(separator: component, omittingEmptySubsequences: false).first ?? ""))
        }
        guard let msa = segments.first(where: { $0.hasPrefix("MSA\(field)") }).map(fields) else { throw .noMSA }
        let codeText = msa.count > 1 ? first(msa[1]) : ""
        guard let code = Code(rawValue: codeText) else { throw .unknownCode(codeText) }
        var detail = msa.count > 3 ? HL7Text.unescape(msa[3]) : ""
        if detail.isEmpty, let err = segments.first(where: { $0.hasPrefix("ERR\(field)") }).map(fields) {
            // ERR-8 user message, else ERR-3's text component (HL7 error code and text).
            if err.count > 8, !err[8].isEmpty {
                detail = HL7Text.unescape(err[8])
            } else if err.count > 3 {
                let parts = err[3].split(separator: component, omittingEmptySubsequences: false)
                detail = parts.count > 1 ? HL7Text.unescape(String(parts[1])) : HL7Text.unescape(err[3])
            }
        }
        self.init(code: code, controlID: msa.count > 2 ? first(msa[2]) : "", text: detail)
    }
}
