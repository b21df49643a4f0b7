import ApheresisCore
import Foundation
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

/// Lab values no apheresis product can have (docs/products.md, "Plausibility of lab values"). The
/// computation refuses what it cannot compute; these are values it could compute but that cannot be
/// true: a typing slip (a unit off by 10^3, a field swapped) would otherwise become a released label.
public enum LabPlausibility {
    /// A white cell count of 1000 x10^9/L is a leukocrit near 30 % (a leukocyte is about 300 fL):
    /// far above any apheresis MNC product (typically 20-300 x10^9/L), short of packed cells.
    public static let largestWhiteCellConcentration = CellConcentration.gigaPerLitre(1000)

    public struct Problem: Hashable, Sendable, CustomStringConvertible {
        /// The values concerned, as the lab names them.
        public var fields: [String]
        /// The values with their units and why they cannot be.
        public var reason: String
        public var description: String { reason }
    }

    /// Every implausible value (empty when the entry is plausible).
    public static func problems(_ v: LabValues) -> [Problem] {
        var problems: [Problem] = []
        let wbc = v.whiteCellConcentration
        let wbcText = "WBC \(shown(wbc.gigaPerLitre)) x10^9/L"
        if !wbc.gigaPerLitre.isFinite || wbc.gigaPerLitre <= 0 {
            problems.append(Problem(fields: ["WBC"], reason: "\(wbcText) is not a cell count (it must be a number above zero)"))
        } else if largestWhiteCellConcentration < wbc {
            problems.append(
                Problem(
                    fields: ["WBC"],
                    reason: "\(wbcText) is above \(shown(largestWhiteCellConcentration.gigaPerLitre)) x10^9/L, more leukocytes than an "
                        + "apheresis product can hold (check the unit: 10^9/L equals 10^3/uL)"))
        }
        switch v.cd3 {
        case .fractionOfLeukocytes(let fraction):
            if !fraction.value.isFinite || fraction.value < 0 || fraction.value > 1 {
                problems.append(
                    Problem(
                        fields: ["CD3+ %"],
                        reason: "CD3+ \(shown(fraction.percent)) % of leukocytes is not a share: CD3+ T cells are a subset of the "
                            + "leukocytes, between 0 and 100 %"))
            }
        case .absolute(let cd3):
            let cd3Text = "CD3+ \(shown(cd3.cellsPerMicrolitre)) /uL"
            if !cd3.cellsPerMicrolitre.isFinite || cd3.cellsPerMicrolitre < 0 {
                problems.append(Problem(fields: ["CD3+ count"], reason: "\(cd3Text) is not a cell count (it must be 0 or more)"))
            } else if wbc.gigaPerLitre.isFinite, wbc.gigaPerLitre > 0, wbc < cd3 {
                problems.append(
                    Problem(
                        fields: ["CD3+ count", "WBC"],
                        reason: "\(cd3Text) exceeds \(wbcText) (= \(shown(wbc.cellsPerMicrolitre)) /uL): CD3+ T cells are a subset "
                            + "of the leukocytes, so they cannot outnumber them (CD3+ would be \(shown(cd3.cellsPerMicrolitre / wbc.cellsPerMicrolitre * 100)) % of WBC)"))
            }
        }
        let viability = v.viability
        if !viability.value.isFinite || viability.value < 0 || viability.value > 1 {
            problems.append(
                Problem(fields: ["viability"], reason: "viability \(shown(viability.percent)) % is not a share of cells (0 to 100 %)"))
        }
        if let recovery = v.postReductionRecovery, !recovery.value.isFinite || recovery.value <= 0 || recovery.value > 1 {
            problems.append(
                Problem(
                    fields: ["recovery"],
                    reason: "recovery \(shown(recovery.percent)) % is impossible: a reduction loses cells, it cannot make them "
                        + "(above 0, at most 100 %)"))
        }
        let qc = v.qcSampleVolume.millilitres
        if !qc.isFinite || qc < 0 {
            problems.append(Problem(fields: ["QC volume"], reason: "QC samples of \(shown(qc)) mL are not a volume (0 mL or more)"))
        }
        if let reduced = v.reducedVolume?.millilitres, !reduced.isFinite || reduced <= 0 {
            problems.append(
                Problem(fields: ["reduced volume"], reason: "a reduced volume of \(shown(reduced)) mL is not a volume (above 0 mL)"))
        }
        return problems
    }

    /// Six significant digits, for messages.
    static func shown(_ value: Double) -> String {
        value.isFinite ? String(format: "%.6g", value) : "\(value)"
    }
}
