// Clinical quantities with their units in the type. Values are stored in SI
// (or SI-accepted: the litre is not used inside, cubic metres are) and
// converted only at the edges, through the named accessors below.
// Nothing here rounds.

/// A volume, stored in cubic metres.
public struct Volume: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var cubicMetres: Double
    public init(cubicMetres: Double) { self.cubicMetres = cubicMetres }
    public static func millilitres(_ value: Double) -> Volume { Volume(cubicMetres: value * 1e-6) }
    public static func litres(_ value: Double) -> Volume { Volume(cubicMetres: value * 1e-3) }
    public var millilitres: Double { cubicMetres * 1e6 }
    public var litres: Double { cubicMetres * 1e3 }
    public static let zero = Volume(cubicMetres: 0)
    public static func < (a: Volume, b: Volume) -> Bool { a.cubicMetres < b.cubicMetres }
    public static func + (a: Volume, b: Volume) -> Volume { Volume(cubicMetres: a.cubicMetres + b.cubicMetres) }
    public static func - (a: Volume, b: Volume) -> Volume { Volume(cubicMetres: a.cubicMetres - b.cubicMetres) }
    public static func * (a: Volume, k: Double) -> Volume { Volume(cubicMetres: a.cubicMetres * k) }
    public static func / (a: Volume, b: Volume) -> Double { a.cubicMetres / b.cubicMetres }
    public static func / (a: Volume, t: Seconds) -> VolumeFlowRate { VolumeFlowRate(cubicMetresPerSecond: a.cubicMetres / t.value) }
    public static func += (a: inout Volume, b: Volume) { a.cubicMetres += b.cubicMetres }
    public var description: String { "\(millilitres) mL" }
}

/// A volume flow rate, stored in cubic metres per second.
public struct VolumeFlowRate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var cubicMetresPerSecond: Double
    public init(cubicMetresPerSecond: Double) { self.cubicMetresPerSecond = cubicMetresPerSecond }
    public static func millilitresPerMinute(_ value: Double) -> VolumeFlowRate {
        VolumeFlowRate(cubicMetresPerSecond: value * 1e-6 / 60)
    }
    public var millilitresPerMinute: Double { cubicMetresPerSecond * 1e6 * 60 }
    public static let zero = VolumeFlowRate(cubicMetresPerSecond: 0)
    public static func < (a: VolumeFlowRate, b: VolumeFlowRate) -> Bool { a.cubicMetresPerSecond < b.cubicMetresPerSecond }
    public static func + (a: VolumeFlowRate, b: VolumeFlowRate) -> VolumeFlowRate {
        VolumeFlowRate(cubicMetresPerSecond: a.cubicMetresPerSecond + b.cubicMetresPerSecond)
    }
    public static func - (a: VolumeFlowRate, b: VolumeFlowRate) -> VolumeFlowRate {
        VolumeFlowRate(cubicMetresPerSecond: a.cubicMetresPerSecond - b.cubicMetresPerSecond)
    }
    public static func * (a: VolumeFlowRate, k: Double) -> VolumeFlowRate {
        VolumeFlowRate(cubicMetresPerSecond: a.cubicMetresPerSecond * k)
    }
    public static func * (a: VolumeFlowRate, t: Seconds) -> Volume { Volume(cubicMetres: a.cubicMetresPerSecond * t.value) }
    public static func / (a: VolumeFlowRate, b: VolumeFlowRate) -> Double { a.cubicMetresPerSecond / b.cubicMetresPerSecond }
    public var description: String { "\(millilitresPerMinute) mL/min" }
}

/// A time span in seconds, for physiology (Swift's `Duration` is for clocks).
public struct Seconds: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Double
    public init(_ value: Double) { self.value = value }
    public static func minutes(_ value: Double) -> Seconds { Seconds(value * 60) }
    public static func hours(_ value: Double) -> Seconds { Seconds(value * 3600) }
    public var minutes: Double { value / 60 }
    public var hours: Double { value / 3600 }
    public static let zero = Seconds(0)
    public static func < (a: Seconds, b: Seconds) -> Bool { a.value < b.value }
    public static func + (a: Seconds, b: Seconds) -> Seconds { Seconds(a.value + b.value) }
    public static func - (a: Seconds, b: Seconds) -> Seconds { Seconds(a.value - b.value) }
    public static func += (a: inout Seconds, b: Seconds) { a.value += b.value }
    public static func * (a: Seconds, k: Double) -> Seconds { Seconds(a.value * k) }
    public var description: String { "\(value) s" }
}

/// A mass, stored in kilograms.
public struct Mass: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var kilograms: Double
    public init(kilograms: Double) { self.kilograms = kilograms }
    public static func milligrams(_ value: Double) -> Mass { Mass(kilograms: value * 1e-6) }
    public var milligrams: Double { kilograms * 1e6 }
    public static func < (a: Mass, b: Mass) -> Bool { a.kilograms < b.kilograms }
    public var description: String { "\(kilograms) kg" }
}

/// A length, stored in metres.
public struct Length: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var metres: Double
    public init(metres: Double) { self.metres = metres }
    public static func centimetres(_ value: Double) -> Length { Length(metres: value / 100) }
    public var centimetres: Double { metres * 100 }
    public static func < (a: Length, b: Length) -> Bool { a.metres < b.metres }
    public var description: String { "\(centimetres) cm" }
}

/// A mass concentration, stored in kilograms per cubic metre (= g/L = mg/mL).
public struct MassConcentration: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var kilogramsPerCubicMetre: Double
    public init(kilogramsPerCubicMetre: Double) { self.kilogramsPerCubicMetre = kilogramsPerCubicMetre }
    public static func milligramsPerMillilitre(_ value: Double) -> MassConcentration {
        MassConcentration(kilogramsPerCubicMetre: value)  // 1 mg/mL = 1 kg/m^3
    }
    public var milligramsPerMillilitre: Double { kilogramsPerCubicMetre }
    public static func < (a: MassConcentration, b: MassConcentration) -> Bool {
        a.kilogramsPerCubicMetre < b.kilogramsPerCubicMetre
    }
    /// The mass carried by a volume of this concentration.
    public static func * (c: MassConcentration, v: Volume) -> Mass { Mass(kilograms: c.kilogramsPerCubicMetre * v.cubicMetres) }
    public var description: String { "\(milligramsPerMillilitre) mg/mL" }
}

/// An infusion rate normalised to the patient's total blood volume,
/// stored as (m^3/s) per m^3 of TBV, i.e. per second. The clinic reads it
/// in mL/min per litre of TBV.
public struct BloodVolumeNormalisedRate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var perSecond: Double
    public init(perSecond: Double) { self.perSecond = perSecond }
    public init(flow: VolumeFlowRate, totalBloodVolume: Volume) {
        self.perSecond = flow.cubicMetresPerSecond / totalBloodVolume.cubicMetres
    }
    public static func millilitresPerMinutePerLitre(_ value: Double) -> BloodVolumeNormalisedRate {
        // (mL/min)/L = 1e-6 m^3 / 60 s / 1e-3 m^3
        BloodVolumeNormalisedRate(perSecond: value * 1e-3 / 60)
    }
    public var millilitresPerMinutePerLitre: Double { perSecond * 60 * 1e3 }
    public static func < (a: BloodVolumeNormalisedRate, b: BloodVolumeNormalisedRate) -> Bool { a.perSecond < b.perSecond }
    public var description: String { "\(millilitresPerMinutePerLitre) mL/min/L" }
}

/// A mass rate per kilogram of body weight (citrate load), stored in
/// kg/s per kg, i.e. per second. The clinic reads it in mg/kg/min.
public struct WeightNormalisedMassRate: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var perSecond: Double
    public init(perSecond: Double) { self.perSecond = perSecond }
    public init(mass: Mass, per time: Seconds, bodyMass: Mass) {
        self.perSecond = mass.kilograms / time.value / bodyMass.kilograms
    }
    public static func milligramsPerKilogramPerMinute(_ value: Double) -> WeightNormalisedMassRate {
        WeightNormalisedMassRate(perSecond: value * 1e-6 / 60)
    }
    public var milligramsPerKilogramPerMinute: Double { perSecond * 1e6 * 60 }
    public static func < (a: WeightNormalisedMassRate, b: WeightNormalisedMassRate) -> Bool { a.perSecond < b.perSecond }
    public var description: String { "\(milligramsPerKilogramPerMinute) mg/kg/min" }
}

// MARK: - Cells

/// A number of cells. A count is dimensionless, but keeping it in its own type stops a
/// concentration or a dose from being passed where a total is meant.
public struct CellCount: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var cells: Double
    public init(cells: Double) { self.cells = cells }
    /// Lab and label convention: "x 10^6 cells".
    public static func millions(_ value: Double) -> CellCount { CellCount(cells: value * 1e6) }
    public var millions: Double { cells / 1e6 }
    public static func < (a: CellCount, b: CellCount) -> Bool { a.cells < b.cells }
    public static func * (a: CellCount, k: Double) -> CellCount { CellCount(cells: a.cells * k) }
    public static func / (a: CellCount, v: Volume) -> CellConcentration {
        CellConcentration(cellsPerCubicMetre: a.cells / v.cubicMetres)
    }
    public static func / (a: CellCount, m: Mass) -> CellDosePerMass { CellDosePerMass(cellsPerKilogram: a.cells / m.kilograms) }
    public var description: String { "\(cells) cells" }
}

/// Cells per volume, stored in cells per cubic metre. Lab units at the edges:
/// a white cell count in 10^9/L (which equals 10^3/uL), a CD3+ count in cells/uL.
public struct CellConcentration: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var cellsPerCubicMetre: Double
    public init(cellsPerCubicMetre: Double) { self.cellsPerCubicMetre = cellsPerCubicMetre }
    /// 1 uL = 1e-9 m^3.
    public static func cellsPerMicrolitre(_ value: Double) -> CellConcentration {
        CellConcentration(cellsPerCubicMetre: value * 1e9)
    }
    public var cellsPerMicrolitre: Double { cellsPerCubicMetre / 1e9 }
    /// 10^9 cells per litre = 1e12 per m^3.
    public static func gigaPerLitre(_ value: Double) -> CellConcentration {
        CellConcentration(cellsPerCubicMetre: value * 1e12)
    }
    public var gigaPerLitre: Double { cellsPerCubicMetre / 1e12 }
    public static func < (a: CellConcentration, b: CellConcentration) -> Bool { a.cellsPerCubicMetre < b.cellsPerCubicMetre }
    public static func * (a: CellConcentration, v: Volume) -> CellCount { CellCount(cells: a.cellsPerCubicMetre * v.cubicMetres) }
    public static func * (a: CellConcentration, k: Double) -> CellConcentration {
        CellConcentration(cellsPerCubicMetre: a.cellsPerCubicMetre * k)
    }
    public var description: String { "\(cellsPerMicrolitre) cells/uL" }
}

/// A cell dose normalised to the patient's weight, stored in cells per kilogram.
public struct CellDosePerMass: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var cellsPerKilogram: Double
    public init(cellsPerKilogram: Double) { self.cellsPerKilogram = cellsPerKilogram }
    public var millionsPerKilogram: Double { cellsPerKilogram / 1e6 }
    public static func < (a: CellDosePerMass, b: CellDosePerMass) -> Bool { a.cellsPerKilogram < b.cellsPerKilogram }
    public var description: String { "\(cellsPerKilogram) cells/kg" }
}

/// A fraction between 0 and 1 (viability, CD3+ share, recovery). Percent only at the edges.
public struct Fraction: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: Double
    public init(_ value: Double) { self.value = value }
    public static func percent(_ value: Double) -> Fraction { Fraction(value / 100) }
    public var percent: Double { value * 100 }
    public static func < (a: Fraction, b: Fraction) -> Bool { a.value < b.value }
    public var description: String { "\(percent) %" }
}
