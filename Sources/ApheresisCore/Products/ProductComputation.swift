import Quantities

/// The cell lab's measurements of a collected product, entered after the run
/// (product-records.md, "Inputs"). SI inside; lab units only at the edges.
public struct LabValues: Hashable, Sendable {
    /// How the CD3+ content was measured: a share of leukocytes by flow
    /// cytometry, or an absolute count.
    public enum CD3Measurement: Hashable, Sendable {
        case fractionOfLeukocytes(Fraction)
        case absolute(CellConcentration)
    }

    /// Product white cell count (10^9/L at the edge, which equals 10^3/uL).
    public var whiteCellConcentration: CellConcentration
    public var cd3: CD3Measurement
    public var viability: Fraction
    /// Volume drawn off for QC samples before reduction.
    public var qcSampleVolume: Volume
    /// Measured post-reduction recovery; 1.0 is assumed when not entered.
    public var postReductionRecovery: Fraction?
    /// The lab's own reduced volume when it differs from the policy's (e.g. too
    /// little product for 140 mL). Nil means the policy's volume.
    public var reducedVolume: Volume?

    public init(
        whiteCellConcentration: CellConcentration, cd3: CD3Measurement, viability: Fraction, qcSampleVolume: Volume,
        postReductionRecovery: Fraction? = nil, reducedVolume: Volume? = nil
    ) {
        self.whiteCellConcentration = whiteCellConcentration
        self.cd3 = cd3
        self.viability = viability
        self.qcSampleVolume = qcSampleVolume
        self.postReductionRecovery = postReductionRecovery
        self.reducedVolume = reducedVolume
    }
}

/// The clinic's practice, from configuration: never constants in code.
public struct ProductPolicy: Hashable, Sendable {
    public var reducedVolume: Volume
    public var unitVolume: Volume
    /// CD3+ cells per unit the clinic aims for (absolute, not per kg).
    public var unitCD3Band: ClosedRange<CellCount>
    /// A collection is sufficient above this CD3+ concentration in the product.
    public var sufficientCD3Concentration: CellConcentration

    public init(
        reducedVolume: Volume, unitVolume: Volume, unitCD3Band: ClosedRange<CellCount>,
        sufficientCD3Concentration: CellConcentration
    ) {
        self.reducedVolume = reducedVolume
        self.unitVolume = unitVolume
        self.unitCD3Band = unitCD3Band
        self.sufficientCD3Concentration = sufficientCD3Concentration
    }

    /// The reference practice of product-records.md: 140 mL, 35 mL units,
    /// 25-36 x10^6 CD3+ per unit, sufficient above 20 CD3+/uL.
    public static let referencePractice = ProductPolicy(
        reducedVolume: .millilitres(140), unitVolume: .millilitres(35),
        unitCD3Band: CellCount.millions(25)...CellCount.millions(36),
        sufficientCD3Concentration: .cellsPerMicrolitre(20))
}

/// Where a unit's dose falls against the policy's band.
public enum DoseBandFlag: String, Hashable, Sendable, CaseIterable {
    case withinBand = "within_band"
    case belowBand = "below_band"
    case aboveBand = "above_band"
}

public struct UnitComputation: Hashable, Sendable {
    /// 0-based; unit 0 gets division code A0.
    public var index: Int
    public var volume: Volume
    public var cd3Cells: CellCount
    public var totalNucleatedCells: CellCount
    /// Nil when the patient's weight is unknown.
    public var cd3PerPatientMass: CellDosePerMass?
    public var flag: DoseBandFlag
}

/// Everything the lab and the label need, unrounded.
public struct ProductComputation: Hashable, Sendable {
    public var collectedVolume: Volume
    public var qcSampleVolume: Volume
    /// Collected minus QC samples: what goes into the reduction.
    public var volumeAfterQC: Volume
    /// TNC of the whole collection (WBC x collected volume).
    public var collectedTotalNucleatedCells: CellCount
    /// CD3+ cells of the whole collection.
    public var collectedCD3Cells: CellCount
    /// CD3+ concentration of the collected product, judged against the sufficiency threshold.
    public var collectedCD3Concentration: CellConcentration
    public var collectionSufficient: Bool
    /// TNC and CD3+ in the volume left after QC samples, before reduction.
    public var totalNucleatedCellsBeforeReduction: CellCount
    public var cd3CellsBeforeReduction: CellCount
    public var recovery: Fraction
    public var recoveryMeasured: Bool
    public var reducedVolume: Volume
    /// CD3+ total x recovery / reduced volume.
    public var cd3ConcentrationAfterReduction: CellConcentration
    public var tncConcentrationAfterReduction: CellConcentration
    public var unitVolume: Volume
    public var remainderVolume: Volume
    public var viability: Fraction
    public var patientMass: Mass?
    public var units: [UnitComputation]
}

public enum ProductComputationError: Error, Hashable, Sendable, CustomStringConvertible {
    case notPositive(field: String, value: String)
    case fractionOutOfRange(field: String, percent: Double)
    case qcVolumeExceedsCollected(qcMillilitres: Double, collectedMillilitres: Double)
    case reducedVolumeExceedsAvailable(reducedMillilitres: Double, availableMillilitres: Double, qcMillilitres: Double)
    case cannotSplit(reducedMillilitres: Double, unitMillilitres: Double)
    case tooManyUnits(reducedMillilitres: Double, unitMillilitres: Double)

    public var description: String {
        switch self {
        case .notPositive(let field, let value):
            "\(field) must be a finite number greater than zero (got \(value))"
        case .fractionOutOfRange(let field, let percent):
            "\(field) must be between 0 and 100 % (got \(percent) %)"
        case .qcVolumeExceedsCollected(let qc, let collected):
            "the QC sample volume (\(Self.shown(qc)) mL) is not less than the collected volume (\(Self.shown(collected)) mL)"
        case .reducedVolumeExceedsAvailable(let reduced, let available, let qc):
            "cannot reduce to \(Self.shown(reduced)) mL: only \(Self.shown(available)) mL are left after \(Self.shown(qc)) mL"
                + " of QC samples; enter a smaller reduced volume"
        case .cannotSplit(let reduced, let unit):
            "\(Self.shown(reduced)) mL cannot be split into units of \(Self.shown(unit)) mL: not even one unit"
        case .tooManyUnits(let reduced, let unit):
            "\(Self.shown(reduced)) mL in units of \(Self.shown(unit)) mL would be more than \(ProductComputation.maximumUnits) units"
                + " (ISBT 128 first-level divisions A0 to Z0)"
        }
    }

    /// Six significant digits: a message for people, not a stored value.
    static func shown(_ value: Double) -> String {
        var text = String(value.formatted6)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }
}

extension Double {
    /// Six significant digits without Foundation (this module stays pure Swift).
    fileprivate var formatted6: String {
        guard isFinite, self != 0, Swift.abs(self) < 1e15, Swift.abs(self) > 1e-6 else { return "\(self)" }
        let magnitude = Int((Swift.abs(self)).log10Floor)
        let decimals = Swift.max(0, 5 - magnitude)
        let scale = (0..<decimals).reduce(1.0) { r, _ in r * 10 }
        let rounded = (self * scale).rounded() / scale
        if decimals == 0 { return String(Int64(rounded)) }
        let whole = Int64(rounded.magnitude.rounded(.down))
        var fraction = String(Int64(((rounded.magnitude - Double(whole)) * scale).rounded()))
        while fraction.count < decimals { fraction = "0" + fraction }
        return (rounded < 0 ? "-" : "") + "\(whole).\(fraction)"
    }

    fileprivate var log10Floor: Double {
        var v = self
        var e = 0.0
        while v >= 10 { v /= 10; e += 1 }
        while v < 1 { v *= 10; e -= 1 }
        return e
    }
}

extension ProductComputation {
    /// First-level ISBT 128 divisions run A0...Z0.
    public static let maximumUnits = 26

    /// product-records.md, "Computation". The reduced volume may not exceed what
    /// is left after QC samples: that is refused, never silently lowered.
    public static func compute(
        collectedVolume: Volume, lab: LabValues, patientMass: Mass?, policy: ProductPolicy
    ) throws(ProductComputationError) -> ProductComputation {
        try requirePositive("the collected volume", collectedVolume.cubicMetres, collectedVolume.description)
        try requirePositive(
            "the white cell count", lab.whiteCellConcentration.cellsPerCubicMetre,
            "\(lab.whiteCellConcentration.gigaPerLitre) x10^9/L")
        try requireFraction("viability", lab.viability)
        if !lab.qcSampleVolume.cubicMetres.isFinite || lab.qcSampleVolume.cubicMetres < 0 {
            throw .notPositive(field: "the QC sample volume", value: lab.qcSampleVolume.description)
        }
        if let recovery = lab.postReductionRecovery {
            try requireFraction("post-reduction recovery", recovery)
            try requirePositive("post-reduction recovery", recovery.value, recovery.description)
        }
        if let patientMass { try requirePositive("the patient's weight", patientMass.kilograms, patientMass.description) }
        try requirePositive("the unit volume", policy.unitVolume.cubicMetres, policy.unitVolume.description)

        let collectedCD3Concentration: CellConcentration
        switch lab.cd3 {
        case .fractionOfLeukocytes(let fraction):
            try requireFraction("CD3+ share of leukocytes", fraction)
            collectedCD3Concentration = lab.whiteCellConcentration * fraction.value
        case .absolute(let concentration):
            if !concentration.cellsPerCubicMetre.isFinite || concentration.cellsPerCubicMetre < 0 {
                throw .notPositive(field: "the CD3+ count", value: concentration.description)
            }
            collectedCD3Concentration = concentration
        }
        guard lab.qcSampleVolume < collectedVolume else {
            throw .qcVolumeExceedsCollected(
                qcMillilitres: lab.qcSampleVolume.millilitres, collectedMillilitres: collectedVolume.millilitres)
        }
        let volumeAfterQC = collectedVolume - lab.qcSampleVolume
        let reducedVolume = lab.reducedVolume ?? policy.reducedVolume
        try requirePositive("the reduced volume", reducedVolume.cubicMetres, reducedVolume.description)
        guard reducedVolume <= volumeAfterQC else {
            throw .reducedVolumeExceedsAvailable(
                reducedMillilitres: reducedVolume.millilitres, availableMillilitres: volumeAfterQC.millilitres,
                qcMillilitres: lab.qcSampleVolume.millilitres)
        }
        // floor, with a guard against 139.99999 mL / 35 mL landing on 3.9999.
        let ratio = reducedVolume / policy.unitVolume
        guard ratio.isFinite, ratio < Double(Self.maximumUnits + 1) else {
            throw .tooManyUnits(reducedMillilitres: reducedVolume.millilitres, unitMillilitres: policy.unitVolume.millilitres)
        }
        let unitCount = Int((ratio + 1e-9).rounded(.down))
        guard unitCount >= 1 else {
            throw .cannotSplit(reducedMillilitres: reducedVolume.millilitres, unitMillilitres: policy.unitVolume.millilitres)
        }

        let recovery = lab.postReductionRecovery ?? Fraction(1)
        let tncBefore = lab.whiteCellConcentration * volumeAfterQC
        let cd3Before = collectedCD3Concentration * volumeAfterQC
        let cd3After = (cd3Before * recovery.value) / reducedVolume
        let tncAfter = (tncBefore * recovery.value) / reducedVolume
        let unitCD3 = cd3After * policy.unitVolume
        let unitTNC = tncAfter * policy.unitVolume
        let flag: DoseBandFlag =
            unitCD3 < policy.unitCD3Band.lowerBound ? .belowBand : unitCD3 > policy.unitCD3Band.upperBound ? .aboveBand : .withinBand
        let units = (0..<unitCount).map { index in
            UnitComputation(
                index: index, volume: policy.unitVolume, cd3Cells: unitCD3, totalNucleatedCells: unitTNC,
                cd3PerPatientMass: patientMass.map { unitCD3 / $0 }, flag: flag)
        }
        let remainder = reducedVolume - policy.unitVolume * Double(unitCount)
        // Nothing that is not a number leaves this function (a huge input can overflow to infinity).
        for (name, value) in [("CD3+ per unit", unitCD3.cells), ("TNC per unit", unitTNC.cells)] where !value.isFinite {
            throw .notPositive(field: name, value: "\(value) (the inputs are out of any real range)")
        }
        return ProductComputation(
            collectedVolume: collectedVolume, qcSampleVolume: lab.qcSampleVolume, volumeAfterQC: volumeAfterQC,
            collectedTotalNucleatedCells: lab.whiteCellConcentration * collectedVolume,
            collectedCD3Cells: collectedCD3Concentration * collectedVolume,
            collectedCD3Concentration: collectedCD3Concentration,
            collectionSufficient: collectedCD3Concentration > policy.sufficientCD3Concentration,
            totalNucleatedCellsBeforeReduction: tncBefore, cd3CellsBeforeReduction: cd3Before,
            recovery: recovery, recoveryMeasured: lab.postReductionRecovery != nil,
            reducedVolume: reducedVolume, cd3ConcentrationAfterReduction: cd3After,
            tncConcentrationAfterReduction: tncAfter, unitVolume: policy.unitVolume,
            remainderVolume: remainder.cubicMetres.magnitude < 1e-12 ? .zero : remainder,
            viability: lab.viability, patientMass: patientMass, units: units)
    }

    private static func requirePositive(_ field: String, _ value: Double, _ shown: String) throws(ProductComputationError) {
        guard value.isFinite, value > 0 else { throw .notPositive(field: field, value: shown) }
    }

    private static func requireFraction(_ field: String, _ fraction: Fraction) throws(ProductComputationError) {
        guard fraction.value.isFinite, (0...1).contains(fraction.value) else {
            throw .fractionOutOfRange(field: field, percent: fraction.percent)
        }
    }
}
