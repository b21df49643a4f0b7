import ApheresisCore
import Quantities

/// Lab values as a person or a client enters them, in the lab's units, each optional until checked.
/// The CLI and the API both go through here, so both refuse the same gaps with the names their
/// users typed (`--viability-percent` or `viability_percent`).
public struct LabEntry: Sendable {
    public var wbcGigaPerLitre: Double?
    public var cd3Percent: Double?
    public var cd3PerMicrolitre: Double?
    public var viabilityPercent: Double?
    public var qcMillilitres: Double?
    public var recoveryPercent: Double?
    public var reducedMillilitres: Double?

    public init(
        wbcGigaPerLitre: Double?, cd3Percent: Double?, cd3PerMicrolitre: Double?, viabilityPercent: Double?,
        qcMillilitres: Double?, recoveryPercent: Double?, reducedMillilitres: Double?
    ) {
        self.wbcGigaPerLitre = wbcGigaPerLitre
        self.cd3Percent = cd3Percent
        self.cd3PerMicrolitre = cd3PerMicrolitre
        self.viabilityPercent = viabilityPercent
        self.qcMillilitres = qcMillilitres
        self.recoveryPercent = recoveryPercent
        self.reducedMillilitres = reducedMillilitres
    }

    /// What each value is called where it was typed.
    public struct Names: Sendable {
        public var wbc, cd3Percent, cd3PerMicrolitre, viability, qc: String
        public static let commandLine = Names(
            wbc: "--wbc", cd3Percent: "--cd3-percent", cd3PerMicrolitre: "--cd3-per-ul", viability: "--viability-percent",
            qc: "--qc-ml")
        public static let json = Names(
            wbc: "wbc_giga_per_litre", cd3Percent: "cd3_percent", cd3PerMicrolitre: "cd3_per_microlitre",
            viability: "viability_percent", qc: "qc_millilitres")
    }

    /// The values in SI, or a refusal listing every missing one.
    public func values(named names: Names) throws(ProductWorkflowError) -> LabValues {
        var missing: [String] = []
        if wbcGigaPerLitre == nil { missing.append(names.wbc) }
        if cd3Percent == nil && cd3PerMicrolitre == nil { missing.append("\(names.cd3Percent) or \(names.cd3PerMicrolitre)") }
        if viabilityPercent == nil { missing.append(names.viability) }
        if qcMillilitres == nil { missing.append(names.qc) }
        guard missing.isEmpty, let wbc = wbcGigaPerLitre, let viability = viabilityPercent, let qc = qcMillilitres else {
            throw .missingLabValues(missing)
        }
        let cd3: LabValues.CD3Measurement
        switch (cd3Percent, cd3PerMicrolitre) {
        case (let percent?, nil): cd3 = .fractionOfLeukocytes(.percent(percent))
        case (nil, let count?): cd3 = .absolute(.cellsPerMicrolitre(count))
        default:
            throw .invalidLabValue(field: "CD3+", reason: "give \(names.cd3Percent) or \(names.cd3PerMicrolitre), not both")
        }
        return LabValues(
            whiteCellConcentration: .gigaPerLitre(wbc), cd3: cd3, viability: .percent(viability),
            qcSampleVolume: .millilitres(qc), postReductionRecovery: recoveryPercent.map { .percent($0) },
            reducedVolume: reducedMillilitres.map { .millilitres($0) })
    }
}
