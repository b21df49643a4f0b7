/// The figures a PCD-01 observation carries, each with its code, unit (UCUM) and place in the
/// containment tree (OBX-4: MDS 1, VMD 1, channel, metric). IEEE 11073-10101 has terms for an
/// infusion channel's flow and delivered volume, used for the AC and inlet pumps where the meaning is
/// the same; the apheresis figures it has no term for carry local codes (coding system 99APH),
/// documented in docs/hl7.md.
public enum ObservationKind: String, Hashable, Sendable, CaseIterable {
    case runTime
    case totalBloodVolume
    case inletVolume
    case inletFlow
    case wholeBloodProcessed
    case bloodVolumesProcessed
    case acVolume
    case acFlow
    case acToPatient
    case acRatioWindow
    case acRatioRun
    case acRatioDevice
    case acInfusionRate
    case acInfusionRateDevice
    case citrateLoadRate
    case citrateLoadTotal
    case collectVolume

    /// Channels of the containment tree: 1 the run as a whole, 2 the AC (ACD-A) line, 3 the inlet
    /// line, 4 the collect line.
    public var containment: String {
        switch self {
        case .runTime, .totalBloodVolume: "1.1.1.\(metric)"
        case .acVolume, .acFlow, .acToPatient, .acRatioWindow, .acRatioRun, .acRatioDevice, .acInfusionRate,
            .acInfusionRateDevice, .citrateLoadRate, .citrateLoadTotal:
            "1.1.2.\(metric)"
        case .inletVolume, .inletFlow, .wholeBloodProcessed, .bloodVolumesProcessed: "1.1.3.\(metric)"
        case .collectVolume: "1.1.4.\(metric)"
        }
    }

    private var metric: Int {
        switch self {
        case .runTime: 1
        case .totalBloodVolume: 2
        case .acVolume: 1
        case .acFlow: 2
        case .acToPatient: 3
        case .acRatioWindow: 4
        case .acRatioRun: 5
        case .acRatioDevice: 6
        case .acInfusionRate: 7
        case .acInfusionRateDevice: 8
        case .citrateLoadRate: 9
        case .citrateLoadTotal: 10
        case .inletVolume: 1
        case .inletFlow: 2
        case .wholeBloodProcessed: 3
        case .bloodVolumesProcessed: 4
        case .collectVolume: 1
        }
    }

    /// The local code (99APH) every figure has.
    public var localCode: String {
        switch self {
        case .runTime: "APH_RUN_TIME"
        case .totalBloodVolume: "APH_TBV"
        case .inletVolume: "APH_INLET_VOL"
        case .inletFlow: "APH_INLET_FLOW"
        case .wholeBloodProcessed: "APH_WB_PROCESSED"
        case .bloodVolumesProcessed: "APH_TBV_PROCESSED"
        case .acVolume: "APH_AC_VOL"
        case .acFlow: "APH_AC_FLOW"
        case .acToPatient: "APH_AC_TO_PATIENT"
        case .acRatioWindow: "APH_AC_RATIO_WINDOW"
        case .acRatioRun: "APH_AC_RATIO_RUN"
        case .acRatioDevice: "APH_AC_RATIO_DEVICE"
        case .acInfusionRate: "APH_AC_INF_RATE"
        case .acInfusionRateDevice: "APH_AC_INF_RATE_DEVICE"
        case .citrateLoadRate: "APH_CITRATE_LOAD_RATE"
        case .citrateLoadTotal: "APH_CITRATE_LOAD_TOTAL"
        case .collectVolume: "APH_COLLECT_VOL"
        }
    }

    public var text: String {
        switch self {
        case .runTime: "Run time, pauses excluded"
        case .totalBloodVolume: "Patient total blood volume"
        case .inletVolume: "Inlet volume processed (whole blood and ACD-A)"
        case .inletFlow: "Inlet pump flow"
        case .wholeBloodProcessed: "Whole blood processed"
        case .bloodVolumesProcessed: "Blood volumes processed"
        case .acVolume: "ACD-A drawn from the bag"
        case .acFlow: "ACD-A pump flow"
        case .acToPatient: "ACD-A returned to the patient"
        case .acRatioWindow: "Inlet:ACD-A ratio, recomputed over the window"
        case .acRatioRun: "Inlet:ACD-A ratio, recomputed over the run"
        case .acRatioDevice: "Inlet:ACD-A ratio, as the separator reports it"
        case .acInfusionRate: "ACD-A infusion rate per litre of TBV, recomputed"
        case .acInfusionRateDevice: "ACD-A infusion rate per litre of TBV, as the separator reports it"
        case .citrateLoadRate: "Citrate load rate, recomputed"
        case .citrateLoadTotal: "Citrate infused per kg so far, recomputed"
        case .collectVolume: "Volume in the collect bag"
        }
    }

    /// The IEEE 11073-10101 term, where one means the same: an infusion channel's flow
    /// (MDC_FLOW_FLUID_PUMP) and the volume it delivered to the patient (MDC_VOL_FLUID_DELIV_TOTAL).
    public var mdc: (code: String, name: String)? {
        switch self {
        case .acFlow, .inletFlow: ("157784", "MDC_FLOW_FLUID_PUMP")
        case .acToPatient: ("157993", "MDC_VOL_FLUID_DELIV_TOTAL")
        default: nil
        }
    }

    /// UCUM unit, with the text shown beside it.
    public var unit: (code: String, text: String) {
        switch self {
        case .runTime: ("min", "min")
        case .totalBloodVolume, .inletVolume, .wholeBloodProcessed, .acVolume, .acToPatient, .collectVolume: ("mL", "mL")
        case .inletFlow, .acFlow: ("mL/min", "mL/min")
        case .bloodVolumesProcessed: ("{TBV}", "blood volumes")
        case .acRatioWindow, .acRatioRun, .acRatioDevice: ("{ratio}", "inlet:AC")
        case .acInfusionRate, .acInfusionRateDevice: ("mL/min/L", "mL/min/L")
        case .citrateLoadRate: ("mg/kg/min", "mg/kg/min")
        case .citrateLoadTotal: ("mg/kg", "mg/kg")
        }
    }

    /// OBX-3: the MDC term first where there is one, the local code as its alternate.
    var identifier: String {
        if let mdc {
            return HL7Text.components([mdc.code, mdc.name, "MDC", localCode, text, "99APH"])
        }
        return HL7Text.components([localCode, text, "99APH"])
    }

    var unitField: String { HL7Text.components([unit.code, unit.text, "UCUM"]) }
}

/// One figure of an observation, in the unit `kind.unit` names.
public struct ObservedValue: Hashable, Sendable {
    public var kind: ObservationKind
    public var value: Double

    public init(_ kind: ObservationKind, _ value: Double) {
        self.kind = kind
        self.value = value
    }
}
