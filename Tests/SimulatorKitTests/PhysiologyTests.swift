import Quantities
import SeparatorProtocol
import SimulatorKit
import Testing

@Suite("Total blood volume")
struct PhysiologyTests {
    let runDate = CalendarDate(year: 2026, month: 11, day: 24)!

    @Test("boy 10 y, 32 kg: 75 mL/kg x 32 kg = 2400 mL")
    func schoolAgeBoy() {
        let p = PatientProfile(
            id: "x", familyName: "A", givenName: "B", birthDate: CalendarDate(year: 2016, month: 3, day: 12)!,
            sex: .male, height: .centimetres(138), weight: Mass(kilograms: 32))
        #expect(p.ageYears(on: runDate) == 10)
        let tbv = p.totalBloodVolume(on: runDate)
        #expect(tbv.method == .weightBased(millilitresPerKilogram: 75))
        #expect(abs(tbv.volume.millilitres - 2400) < 1e-6)
    }

    @Test("girl 15 y, 52 kg, 162 cm: Nadler female = 3417.4 mL")
    func adolescentGirl() {
        // 0.3561 x 1.62^3 (4.251528) = 1.513969
        // + 0.03308 x 52             = 1.720160
        // + 0.1833                   = 3.417429 L
        let p = PatientProfile(
            id: "x", familyName: "A", givenName: "B", birthDate: CalendarDate(year: 2011, month: 6, day: 5)!,
            sex: .female, height: .centimetres(162), weight: Mass(kilograms: 52))
        #expect(p.ageYears(on: runDate) == 15)
        let tbv = p.totalBloodVolume(on: runDate)
        #expect(tbv.method == .nadler)
        #expect(abs(tbv.volume.millilitres - 3417.429) < 0.01)
    }

    @Test("girl 5 y, 18 kg: 80 mL/kg x 18 kg = 1440 mL")
    func preSchoolGirl() {
        let p = PatientProfile(
            id: "x", familyName: "A", givenName: "B", birthDate: CalendarDate(year: 2021, month: 8, day: 18)!,
            sex: .female, height: .centimetres(108), weight: Mass(kilograms: 18))
        #expect(p.ageYears(on: runDate) == 5)
        let tbv = p.totalBloodVolume(on: runDate)
        #expect(tbv.method == .weightBased(millilitresPerKilogram: 80))
        #expect(abs(tbv.volume.millilitres - 1440) < 1e-6)
    }

    @Test("man 40 y, 80 kg, 180 cm: Nadler male = 5319.1 mL")
    func adultMan() {
        // 0.3669 x 1.8^3 (5.832) = 2.139761
        // + 0.03219 x 80         = 2.575200
        // + 0.6041               = 5.319061 L
        let v = TotalBloodVolume.estimate(sex: .male, ageYears: 40, height: .centimetres(180), weight: Mass(kilograms: 80))
        #expect(v.method == .nadler)
        #expect(abs(v.volume.millilitres - 5319.061) < 0.01)
    }

    @Test("infant 8 months, 8 kg: 85 mL/kg = 680 mL; age bands switch on the birthday")
    func infantAndBands() {
        let v = TotalBloodVolume.estimate(sex: .male, ageYears: 0, height: .centimetres(70), weight: Mass(kilograms: 8))
        #expect(abs(v.volume.millilitres - 680) < 1e-6)
        #expect(TotalBloodVolume.millilitresPerKilogram(ageYears: 1) == 80)
        #expect(TotalBloodVolume.millilitresPerKilogram(ageYears: 5) == 80)
        #expect(TotalBloodVolume.millilitresPerKilogram(ageYears: 6) == 75)
        #expect(TotalBloodVolume.millilitresPerKilogram(ageYears: 11) == 75)
        // The day before the 12th birthday is still weight-based; the day itself is Nadler.
        let p = PatientProfile(
            id: "x", familyName: "A", givenName: "B", birthDate: CalendarDate(year: 2014, month: 11, day: 25)!,
            sex: .female, height: .centimetres(150), weight: Mass(kilograms: 40))
        #expect(p.ageYears(on: runDate) == 11)
        #expect(p.totalBloodVolume(on: CalendarDate(year: 2026, month: 11, day: 25)!).method == .nadler)
    }

    @Test("an explicit TBV overrides the formula")
    func explicitOverride() {
        let p = PatientProfile(
            id: "x", familyName: "A", givenName: "B", birthDate: CalendarDate(year: 2016, month: 3, day: 12)!,
            sex: .male, height: .centimetres(138), weight: Mass(kilograms: 32), totalBloodVolumeOverride: .millilitres(2250))
        let tbv = p.totalBloodVolume(on: runDate)
        #expect(tbv.method == .explicit)
        #expect(abs(tbv.volume.millilitres - 2250) < 1e-9)
    }
}
