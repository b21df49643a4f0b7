/// Writes a message as E1394 records (separator-interface.md, section 3), each ending with CR.
public enum E1394Encoder: Sendable {
    public static func encode(_ message: SeparatorMessage, delimiters: Delimiters = .standard) -> [UInt8] {
        var writer = RecordWriter(delimiters: delimiters)
        let d = delimiters

        // H: field 2 is the delimiter declaration itself, written raw.
        writer.begin("H")
        writer.out.append(d.field)
        writer.out.append(contentsOf: [d.repeat, d.component, d.escape])
        writer.field(String(message.sequenceNumber))
        writer.empty()
        writer.components([message.device.model, message.device.softwareVersion, message.device.serialNumber])
        writer.empty(4)
        writer.field(message.receiverID)
        writer.empty()
        writer.field(message.processingID)
        writer.field(message.version)
        writer.field(message.timestamp.wire)
        writer.end()

        writer.begin("M")
        writer.field("1")
        writer.field("OSTI")
        writer.field(message.kind.rawValue)
        writer.field(message.interfaceVersion)
        writer.end()

        if let patient = message.patient {
            writer.begin("P")
            writer.field("1")
            writer.field(patient.id)
            writer.empty(2)
            writer.components([patient.familyName, patient.givenName])
            writer.empty()
            writer.field(patient.birthDate?.wire ?? "")
            writer.field(patient.sex.rawValue)
            writer.empty(7)
            writer.measurement(patient.heightCentimetres, unit: "cm")
            writer.measurement(patient.weightKilograms, unit: "kg")
            writer.end()
        }

        writer.begin("O")
        writer.field("1")
        writer.field(message.order.runID)
        writer.empty()
        writer.components(["", "", "", message.order.procedure.rawValue])
        // The spec's table says field 7 but its example (and every client written from it)
        // puts the run start after three delimiters, i.e. field 8; the example wins.
        writer.empty(2)
        writer.field(message.order.runStart?.wire ?? "")
        writer.end()

        for result in message.results {
            writer.begin("R")
            writer.field(String(result.sequence))
            writer.components(["", "", "", result.code.rawValue])
            switch result.value {
            case .number(let number): writer.field(formatNumber(number))
            case .text(let text): writer.field(text)
            }
            writer.field(result.unit)
            writer.empty(3)
            writer.field(result.status)
            writer.empty(3)
            writer.field(result.timestamp?.wire ?? "")
            writer.end()
        }

        for comment in message.comments {
            writer.begin("C")
            writer.field(String(comment.sequence))
            writer.field(comment.source)
            writer.components([comment.code, comment.text, comment.severity.rawValue])
            writer.field(comment.type)
            writer.end()
        }

        writer.begin("L")
        writer.field("1")
        writer.field("N")
        writer.end()
        return writer.out
    }

    /// Shortest text that reads back to the same Double (`60.0`, `1950.0`, `0.1`).
    /// NaN and infinities come out as `nan`/`inf`, which decoders reject: producers must not send them.
    public static func formatNumber(_ value: Double) -> String { value.description }
}

private struct RecordWriter {
    let delimiters: Delimiters
    var out: [UInt8] = []

    init(delimiters: Delimiters) {
        self.delimiters = delimiters
        out.reserveCapacity(2048)
    }

    mutating func begin(_ type: Unicode.Scalar) { out.append(UInt8(ascii: type)) }

    mutating func field(_ value: String) {
        out.append(delimiters.field)
        E1394Escaper.append(value, to: &out, delimiters: delimiters)
    }

    mutating func empty(_ count: Int = 1) {
        for _ in 0..<count { out.append(delimiters.field) }
    }

    mutating func components(_ values: [String]) {
        out.append(delimiters.field)
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(delimiters.component) }
            E1394Escaper.append(value, to: &out, delimiters: delimiters)
        }
    }

    /// `value^unit`, or an empty field when the value is absent.
    mutating func measurement(_ value: Double?, unit: String) {
        if let value { components([E1394Encoder.formatNumber(value), unit]) } else { empty() }
    }

    mutating func end() { out.append(ASCIIControl.cr) }
}
