import SeparatorProtocol
import SimulatorKit
import Testing

/// What every delivery must satisfy, whatever happened on the wire.
enum DeliveryChecks {
    /// Every sequence number from `first` to `last` stored exactly once and
    /// in order; one run from RUN_START to RUN_END; cumulative values never
    /// decreasing; nothing quarantined.
    static func verify(_ snapshot: HostLoop.Snapshot, first: UInt64 = 1, last: UInt64, context: String) {
        let sequences = snapshot.messages.map(\.sequenceNumber)
        #expect(sequences == Array(first...last), "\(context): sequence numbers stored \(summarise(sequences)), expected \(first)...\(last)")
        #expect(snapshot.quarantined.isEmpty, "\(context): quarantined \(snapshot.quarantined)")
        #expect(snapshot.messages.first?.kind == .runStart, "\(context): first message is \(String(describing: snapshot.messages.first?.kind))")
        #expect(snapshot.messages.last?.kind == .runEnd, "\(context): last message is \(String(describing: snapshot.messages.last?.kind))")
        #expect(Set(snapshot.messages.map(\.order.runID)).count == 1, "\(context): more than one run id")
        let cumulative = ParameterDefinition.telemetry.filter { $0.kind == .cumulative }.map(\.code)
        var previous: [ParameterCode: Double] = [:]
        for message in snapshot.messages where message.kind == .tick || message.kind == .runEnd {
            for code in cumulative {
                guard let value = message.number(code) else {
                    Issue.record("\(context): #\(message.sequenceNumber) has no \(code)")
                    continue
                }
                if let before = previous[code] {
                    #expect(value >= before, "\(context): \(code) went from \(before) to \(value) at #\(message.sequenceNumber)")
                }
                previous[code] = value
            }
        }
    }

    static func summarise(_ sequences: [UInt64]) -> String {
        guard sequences.count > 12 else { return "\(sequences)" }
        return "\(sequences.prefix(5))...\(sequences.suffix(5)) (\(sequences.count) in all)"
    }
}
