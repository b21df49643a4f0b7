import Quantities
import SeparatorProtocol

/// Reads a run's TICKs and RUN_END into samples, flagging values that cannot be used (another
/// unit, outside their physical range) or cannot be right (a cumulative value going down).
struct TelemetryReader: Sendable {
    /// The newest value of each cumulative code, for the decreasing check.
    private var previousCumulative: [ParameterCode: Double] = [:]

    mutating func read(_ message: SeparatorMessage, receivedAt: Duration) -> (sample: TelemetrySample, flags: [DataQualityFlag]) {
        var flags: [DataQualityFlag] = []
        var values: [ParameterCode: Double] = [:]
        for record in message.results {
            guard let definition = record.code.definition, definition.isTelemetry, let value = record.value.number else { continue }
            if record.unit != definition.unit {
                flags.append(.unexpectedUnit(record.code, unit: record.unit))
                continue
            }
            if let range = PhysicalRanges.range(for: record.code) {
                let zeroRatio = record.code == .acRatio && value == 0
                if !range.contains(value) || zeroRatio || !value.isFinite {
                    flags.append(.outOfRange(record.code, value: value, range: range))
                    // Kept in the store with its flag; not used for computing.
                    continue
                }
            }
            if definition.kind == .cumulative {
                if let previous = previousCumulative[record.code], value < previous {
                    flags.append(.decreasing(record.code, previous: previous, current: value))
                }
                previousCumulative[record.code] = value
            }
            values[record.code] = value
        }

        let sample = TelemetrySample(
            receivedAt: receivedAt, deviceTimestamp: message.timestamp,
            runTime: values[.runTime].map { .minutes($0) },
            inlet: values[.inletVolume].map { .millilitres($0) },
            wholeBlood: values[.wholeBloodVolume].map { .millilitres($0) },
            ac: values[.acVolume].map { .millilitres($0) },
            acToPatient: values[.acToPatient].map { .millilitres($0) },
            collect: values[.collectVolume].map { .millilitres($0) },
            deviceRatio: values[.acRatio],
            deviceBloodVolumesProcessed: values[.bloodVolumesProcessed],
            cumulative: values.filter { $0.key.definition?.kind == .cumulative })
        return (sample, flags)
    }
}
