import Quantities
import SeparatorProtocol

/// How a total blood volume (TBV) was obtained.
public enum BloodVolumeMethod: Sendable, Equatable {
    /// Nadler, Hidalgo & Bloch (Surgery 1962), from sex, height and weight.
    case nadler
    /// A weight-based figure for a child under 12, in mL per kg.
    case weightBased(millilitresPerKilogram: Double)
    /// Given in the scenario (`tbv_ml`), e.g. a clinic's own estimate.
    case explicit
}

public struct BloodVolumeEstimate: Sendable, Equatable {
    public var volume: Volume
    public var method: BloodVolumeMethod
    public init(volume: Volume, method: BloodVolumeMethod) {
        self.volume = volume
        self.method = method
    }
}

/// The device's TBV formula.
///
/// Nadler from age 12: it was derived in adults and by adolescence body
/// proportions are close enough to adult ones (a 15-year-old girl of 52 kg,
/// 162 cm gets 66 mL/kg). Below 12 Nadler's constant term dominates and it
/// overestimates (an 18 kg, 108 cm boy would get 1.65 L = 91 mL/kg), so young
/// children get the usual weight-based paediatric figures: about 85 mL/kg
/// for infants, 80 mL/kg for pre-school children and 75 mL/kg for school-age
/// children (within the ranges in paediatric apheresis and transfusion
/// references: term newborn 80-90, infant 75-85, child 70-80 mL/kg).
public enum TotalBloodVolume {
    /// Age (completed years) from which Nadler is used.
    public static let nadlerMinimumAgeYears = 12

    /// Weight-based blood volume for a child under 12.
    public static func millilitresPerKilogram(ageYears: Int) -> Double {
        switch ageYears {
        case ..<1: 85
        case 1..<6: 80
        default: 75
        }
    }

    /// Nadler: TBV (L) = a * H(m)^3 + b * W(kg) + c.
    /// Unknown sex uses the female coefficients: the smaller estimate makes
    /// every per-litre limit (AC infusion, ECV, collected volume) stricter.
    public static func nadler(sex: Sex, height: Length, weight: Mass) -> Volume {
        let h3 = height.metres * height.metres * height.metres
        let litres: Double
        switch sex {
        case .male: litres = 0.3669 * h3 + 0.03219 * weight.kilograms + 0.6041
        case .female, .unknown: litres = 0.3561 * h3 + 0.03308 * weight.kilograms + 0.1833
        }
        return .litres(litres)
    }

    public static func estimate(sex: Sex, ageYears: Int, height: Length, weight: Mass) -> BloodVolumeEstimate {
        if ageYears >= nadlerMinimumAgeYears {
            return BloodVolumeEstimate(volume: nadler(sex: sex, height: height, weight: weight), method: .nadler)
        }
        let perKilogram = millilitresPerKilogram(ageYears: ageYears)
        return BloodVolumeEstimate(
            volume: .millilitres(perKilogram * weight.kilograms),
            method: .weightBased(millilitresPerKilogram: perKilogram))
    }
}

/// The patient as the scenario describes them.
public struct PatientProfile: Sendable, Equatable {
    public var id: String
    public var familyName: String
    public var givenName: String
    public var birthDate: CalendarDate
    public var sex: Sex
    public var height: Length
    public var weight: Mass
    /// Overrides the formula when the scenario gives `tbv_ml`.
    public var totalBloodVolumeOverride: Volume?

    public init(
        id: String, familyName: String, givenName: String, birthDate: CalendarDate, sex: Sex,
        height: Length, weight: Mass, totalBloodVolumeOverride: Volume? = nil
    ) {
        self.id = id
        self.familyName = familyName
        self.givenName = givenName
        self.birthDate = birthDate
        self.sex = sex
        self.height = height
        self.weight = weight
        self.totalBloodVolumeOverride = totalBloodVolumeOverride
    }

    /// Completed years on `date`.
    public func ageYears(on date: CalendarDate) -> Int {
        let beforeBirthday = (date.month, date.day) < (birthDate.month, birthDate.day)
        return date.year - birthDate.year - (beforeBirthday ? 1 : 0)
    }

    public func totalBloodVolume(on date: CalendarDate) -> BloodVolumeEstimate {
        if let override = totalBloodVolumeOverride { return BloodVolumeEstimate(volume: override, method: .explicit) }
        return TotalBloodVolume.estimate(sex: sex, ageYears: ageYears(on: date), height: height, weight: weight)
    }

    /// The P record.
    public var wirePatient: Patient {
        Patient(
            id: id, familyName: familyName, givenName: givenName, birthDate: birthDate, sex: sex,
            heightCentimetres: height.centimetres, weightKilograms: weight.kilograms)
    }
}

/// ACD-A (formula A) carries 21.3 mg/mL of citrate (22.0 g/L trisodium
/// citrate dihydrate + 7.3 g/L citric acid, expressed as citrate), the
/// figure the unit's citrate-load limit uses.
public let acdaCitrateConcentration = MassConcentration.milligramsPerMillilitre(21.3)
