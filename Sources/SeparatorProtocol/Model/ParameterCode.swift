/// A parameter code as it appears in an R record (`^^^CODE`). Codes the
/// interface defines carry a definition (unit, kind, meaning); codes it does
/// not define are kept as they came, never dropped.
public struct ParameterCode: Hashable, Sendable, RawRepresentable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// The interface's definition of this code, or nil for an unknown code.
    public var definition: ParameterDefinition? { ParameterDefinition.byCode[self] }
    public var isKnown: Bool { definition != nil }

    // RUN_START settings.
    public static let totalBloodVolume: ParameterCode = "TBV"
    public static let preHematocrit: ParameterCode = "PRE_HCT"
    public static let preWhiteCellCount: ParameterCode = "PRE_WBC"
    public static let acRatioSet: ParameterCode = "AC_RATIO_SET"
    public static let acInfusionRateMax: ParameterCode = "AC_INF_RATE_MAX"
    public static let targetWholeBloodVolume: ParameterCode = "TARGET_WB_VOL"
    public static let targetBloodVolumesProcessed: ParameterCode = "TARGET_TBV"
    public static let targetRunTime: ParameterCode = "TARGET_RUN_TIME"
    public static let extracorporealVolume: ParameterCode = "ECV"
    public static let acdaLot: ParameterCode = "ACDA_LOT"
    public static let setLot: ParameterCode = "SET_LOT"
    public static let operatorID: ParameterCode = "OPERATOR"

    // TICK and RUN_END telemetry.
    public static let runTime: ParameterCode = "RUN_TIME"
    public static let inletVolume: ParameterCode = "INLET_VOL"
    public static let wholeBloodVolume: ParameterCode = "WB_VOL"
    public static let acVolume: ParameterCode = "AC_VOL"
    public static let acToPatient: ParameterCode = "AC_TO_PATIENT"
    public static let collectVolume: ParameterCode = "COLLECT_VOL"
    public static let plasmaVolume: ParameterCode = "PLASMA_VOL"
    public static let inletFlow: ParameterCode = "INLET_FLOW"
    public static let acFlow: ParameterCode = "AC_FLOW"
    public static let returnFlow: ParameterCode = "RETURN_FLOW"
    public static let collectFlow: ParameterCode = "COLLECT_FLOW"
    public static let acRatio: ParameterCode = "AC_RATIO"
    public static let acInfusionRate: ParameterCode = "AC_INF_RATE"
    public static let bloodVolumesProcessed: ParameterCode = "TBV_PROCESSED"
    public static let centrifugeSpeed: ParameterCode = "CENTRIFUGE"
    public static let accessPressure: ParameterCode = "ACCESS_PRESS"
    public static let returnPressure: ParameterCode = "RETURN_PRESS"
}

/// What the interface says about a parameter code (separator-interface.md, section 3).
public struct ParameterDefinition: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        /// A RUN_START setting with a numeric value.
        case setting
        /// A RUN_START setting whose value is text (lots, operator); its unit field is empty.
        case textSetting
        /// Telemetry that never decreases within a run.
        case cumulative
        /// Telemetry that is an instantaneous rate or reading.
        case rate
    }

    public let code: ParameterCode
    /// UCUM case-sensitive unit code as the wire carries it; empty for text settings.
    public let unit: String
    public let kind: Kind
    public let meaning: String

    public var isTelemetry: Bool { kind == .cumulative || kind == .rate }
    public var isNumeric: Bool { kind != .textSetting }

    /// RUN_START settings in the order the interface lists them.
    public static let settings: [ParameterDefinition] = [
        .init(code: .totalBloodVolume, unit: "mL", kind: .setting, meaning: "patient total blood volume, as the device computed it"),
        .init(code: .preHematocrit, unit: "%", kind: .setting, meaning: "patient hematocrit before the run"),
        .init(code: .preWhiteCellCount, unit: "10*9/L", kind: .setting, meaning: "patient white cell count before the run"),
        .init(code: .acRatioSet, unit: "{ratio}", kind: .setting, meaning: "set inlet:AC ratio, e.g. 12.0 for 12:1"),
        .init(code: .acInfusionRateMax, unit: "mL/min/L", kind: .setting, meaning: "the device's own AC infusion rate limit"),
        .init(code: .targetWholeBloodVolume, unit: "mL", kind: .setting, meaning: "planned whole blood to process (0 = not set)"),
        .init(code: .targetBloodVolumesProcessed, unit: "{TBV}", kind: .setting, meaning: "planned blood volumes to process (0 = not set)"),
        .init(code: .targetRunTime, unit: "min", kind: .setting, meaning: "planned run time (0 = not set)"),
        .init(code: .extracorporealVolume, unit: "mL", kind: .setting, meaning: "extracorporeal volume of the tubing set"),
        .init(code: .acdaLot, unit: "", kind: .textSetting, meaning: "ACD-A bag lot"),
        .init(code: .setLot, unit: "", kind: .textSetting, meaning: "tubing set lot"),
        .init(code: .operatorID, unit: "", kind: .textSetting, meaning: "operator id"),
    ]

    /// TICK and RUN_END telemetry in the order the interface lists them.
    public static let telemetry: [ParameterDefinition] = [
        .init(code: .runTime, unit: "min", kind: .cumulative, meaning: "time since run start, pauses excluded"),
        .init(code: .inletVolume, unit: "mL", kind: .cumulative, meaning: "inlet volume processed (whole blood plus AC)"),
        .init(code: .wholeBloodVolume, unit: "mL", kind: .cumulative, meaning: "whole blood processed, AC excluded"),
        .init(code: .acVolume, unit: "mL", kind: .cumulative, meaning: "ACD-A drawn from the bag"),
        .init(code: .acToPatient, unit: "mL", kind: .cumulative, meaning: "ACD-A returned to the patient"),
        .init(code: .collectVolume, unit: "mL", kind: .cumulative, meaning: "volume in the collect bag"),
        .init(code: .plasmaVolume, unit: "mL", kind: .cumulative, meaning: "volume in the plasma bag"),
        .init(code: .inletFlow, unit: "mL/min", kind: .rate, meaning: "inlet pump"),
        .init(code: .acFlow, unit: "mL/min", kind: .rate, meaning: "AC pump"),
        .init(code: .returnFlow, unit: "mL/min", kind: .rate, meaning: "return pump"),
        .init(code: .collectFlow, unit: "mL/min", kind: .rate, meaning: "collect pump"),
        .init(code: .acRatio, unit: "{ratio}", kind: .rate, meaning: "current inlet:AC ratio"),
        .init(code: .acInfusionRate, unit: "mL/min/L", kind: .rate, meaning: "current AC infusion rate per litre of TBV"),
        .init(code: .bloodVolumesProcessed, unit: "{TBV}", kind: .cumulative, meaning: "blood volumes processed"),
        .init(code: .centrifugeSpeed, unit: "{rpm}", kind: .rate, meaning: "centrifuge speed"),
        .init(code: .accessPressure, unit: "mm[Hg]", kind: .rate, meaning: "access (draw) pressure"),
        .init(code: .returnPressure, unit: "mm[Hg]", kind: .rate, meaning: "return pressure"),
    ]

    public static let all: [ParameterDefinition] = settings + telemetry

    static let byCode: [ParameterCode: ParameterDefinition] = Dictionary(
        uniqueKeysWithValues: all.map { ($0.code, $0) }
    )
}
