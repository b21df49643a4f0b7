import Quantities
import SeparatorProtocol

/// What RUN_START says about the run, converted to SI on ingest.
/// A target of 0 on the wire means "not set" and is nil here.
public struct RunStartValues: Hashable, Sendable {
    public var runID: String
    public var procedure: Procedure
    public var deviceTimestamp: DeviceTimestamp
    public var totalBloodVolume: Volume?
    public var bodyMass: Mass?
    public var acRatioSet: Double?
    public var targetWholeBloodVolume: Volume?
    public var targetBloodVolumesProcessed: Double?
    public var targetRunTime: Seconds?
    public var extracorporealVolume: Volume?
    public var preWhiteCellCount: CellConcentration?

    public init(_ message: SeparatorMessage) {
        func positive(_ code: ParameterCode) -> Double? {
            guard let record = message.result(code), record.unit == code.definition?.unit,
                let value = record.value.number, value > 0, value.isFinite
            else { return nil }
            return value
        }
        runID = message.order.runID
        procedure = message.order.procedure
        deviceTimestamp = message.timestamp
        totalBloodVolume = positive(.totalBloodVolume).map { .millilitres($0) }
        bodyMass = message.patient?.weightKilograms.flatMap { $0 > 0 ? Mass(kilograms: $0) : nil }
        acRatioSet = positive(.acRatioSet)
        targetWholeBloodVolume = positive(.targetWholeBloodVolume).map { .millilitres($0) }
        targetBloodVolumesProcessed = positive(.targetBloodVolumesProcessed)
        targetRunTime = positive(.targetRunTime).map { .minutes($0) }
        extracorporealVolume = positive(.extracorporealVolume).map { .millilitres($0) }
        preWhiteCellCount = positive(.preWhiteCellCount).map { .gigaPerLitre($0) }
    }
}

/// Physical ranges a telemetry value must lie in, in its wire unit. Wide on
/// purpose: they catch corrupted or nonsensical data, not clinical limits.
public enum PhysicalRanges {
    public static let flowMillilitresPerMinute: ClosedRange<Double> = 0...300
    public static let volumeMillilitres: ClosedRange<Double> = 0...50_000
    /// AC_RATIO must also be > 0 (checked apart: a closed range cannot say it).
    public static let ratio: ClosedRange<Double> = 0...100
    public static let pressureMillimetresOfMercury: ClosedRange<Double> = -500...1000
    public static let centrifugeRPM: ClosedRange<Double> = 0...10_000
    /// 7 days: far beyond any run (the simulator ends one after 12 h), so that
    /// a long run's RUN_TIME is never dropped as nonsense.
    public static let runTimeMinutes: ClosedRange<Double> = 0...10_080
    /// Blood volumes processed: 0-50 (a run processes 1-6).
    public static let bloodVolumes: ClosedRange<Double> = 0...50
    /// AC infusion rate: 0-100 mL/min/L (the device's own limit is 0.5-2.5).
    public static let infusionRate: ClosedRange<Double> = 0...100

    public static func range(for code: ParameterCode) -> ClosedRange<Double>? {
        switch code {
        case .runTime: runTimeMinutes
        case .inletVolume, .wholeBloodVolume, .acVolume, .acToPatient, .collectVolume, .plasmaVolume: volumeMillilitres
        case .inletFlow, .acFlow, .returnFlow, .collectFlow: flowMillilitresPerMinute
        case .acRatio: ratio
        case .acInfusionRate: infusionRate
        case .bloodVolumesProcessed: bloodVolumes
        case .centrifugeSpeed: centrifugeRPM
        case .accessPressure, .returnPressure: pressureMillimetresOfMercury
        default: nil
        }
    }
}

/// One TICK or RUN_END, in SI, with where and when it came from.
struct TelemetrySample: Sendable {
    var receivedAt: Duration
    var deviceTimestamp: DeviceTimestamp
    var runTime: Seconds?
    var inlet: Volume?
    var wholeBlood: Volume?
    var ac: Volume?
    var acToPatient: Volume?
    var collect: Volume?
    var deviceRatio: Double?
    var deviceBloodVolumesProcessed: Double?
    /// Wire values of the cumulative codes, for the decreasing check.
    var cumulative: [ParameterCode: Double]
}

/// Numbers in the nurse's sentence. Only the sentence is shortened (to at
/// most `decimals` places): the transition's `value` and `limit` keep 12
/// significant digits (`clinic`).
func display(_ x: Double, decimals: Int = 2) -> String {
    guard x.isFinite else { return x > 0 ? "unbounded" : "-unbounded" }
    let x = clinic(x)
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    // Far beyond any clinical value (a typing slip, 1e308 from a client): Int cannot hold it, and
    // such a double has no fraction left to show.
    guard abs(x) * scale < 0x1p62 else { return String(x) }
    let scaled = (abs(x) * scale).rounded()
    let whole = (scaled / scale).rounded(.down)
    var fraction = Int(scaled - whole * scale)
    var digits = ""
    for _ in 0..<decimals {
        digits = String(fraction % 10) + digits
        fraction /= 10
    }
    while digits.hasSuffix("0") { digits.removeLast() }
    let sign = x < 0 && scaled != 0 ? "-" : ""
    return sign + String(Int(whole)) + (digits.isEmpty ? "" : "." + digits)
}
