import ApheresisCore
import Quantities
import Testing

@Suite("Product computation (product-records.md)")
struct ProductComputationTests {
    /// 160 mL collected, WBC 2.0 x10^9/L, CD3+ 44.8 % (the reference median), 5 mL QC, 20 kg.
    /// Worked by hand: 155 mL after QC; CD3+ 2000 x 0.448 = 896/uL; 896/uL x 155,000 uL = 138.88 x10^6
    /// CD3+ into the reduction; / 140 mL = 992/uL; x 35 mL = 34.72 x10^6 per unit; / 20 kg = 1.736 x10^6/kg.
    let lab = LabValues(
        whiteCellConcentration: .gigaPerLitre(2.0), cd3: .fractionOfLeukocytes(.percent(44.8)),
        viability: .percent(97), qcSampleVolume: .millilitres(5))

    func close(_ a: Double, _ b: Double, relative: Double = 1e-9) -> Bool { abs(a - b) <= relative * max(abs(a), abs(b)) }

    @Test func referencePracticeGivesFourUnitsOf35mL() throws {
        let c = try ProductComputation.compute(
            collectedVolume: .millilitres(160), lab: lab, patientMass: Mass(kilograms: 20), policy: .referencePractice)
        #expect(close(c.volumeAfterQC.millilitres, 155))
        #expect(close(c.collectedCD3Concentration.cellsPerMicrolitre, 896))
        #expect(close(c.collectedTotalNucleatedCells.millions, 320))
        #expect(close(c.totalNucleatedCellsBeforeReduction.millions, 310))
        #expect(close(c.cd3CellsBeforeReduction.millions, 138.88))
        #expect(close(c.cd3ConcentrationAfterReduction.cellsPerMicrolitre, 992))
        #expect(c.units.count == 4)
        #expect(c.units.map(\.index) == [0, 1, 2, 3])
        for unit in c.units {
            #expect(close(unit.volume.millilitres, 35))
            #expect(close(unit.cd3Cells.millions, 34.72))
            #expect(close(unit.totalNucleatedCells.millions, 77.5))
            #expect(close(unit.cd3PerPatientMass!.millionsPerKilogram, 1.736))
            #expect(unit.flag == .withinBand)
        }
        #expect(c.remainderVolume == .zero)
        #expect(c.collectionSufficient)
        #expect(c.recovery == Fraction(1) && !c.recoveryMeasured)
    }

    @Test func absoluteCD3CountAndRecovery() throws {
        var lab = self.lab
        lab.cd3 = .absolute(.cellsPerMicrolitre(896))
        lab.postReductionRecovery = .percent(80)
        let c = try ProductComputation.compute(
            collectedVolume: .millilitres(160), lab: lab, patientMass: nil, policy: .referencePractice)
        // 34.72 x 0.8 = 27.776 x10^6: still within 25-36.
        #expect(close(c.units[0].cd3Cells.millions, 27.776))
        #expect(c.units[0].cd3PerPatientMass == nil)
        #expect(c.recoveryMeasured)
    }

    @Test func unitsOutsideTheBandAreFlagged() throws {
        var high = lab
        high.whiteCellConcentration = .gigaPerLitre(20)
        let above = try ProductComputation.compute(
            collectedVolume: .millilitres(160), lab: high, patientMass: nil, policy: .referencePractice)
        #expect(above.units.allSatisfy { $0.flag == .aboveBand })
        var low = lab
        low.whiteCellConcentration = .gigaPerLitre(1)
        let below = try ProductComputation.compute(
            collectedVolume: .millilitres(160), lab: low, patientMass: nil, policy: .referencePractice)
        #expect(below.units.allSatisfy { $0.flag == .belowBand })
    }

    @Test func remainderIsReportedNotHidden() throws {
        var lab = self.lab
        lab.reducedVolume = .millilitres(120)
        let c = try ProductComputation.compute(
            collectedVolume: .millilitres(160), lab: lab, patientMass: nil, policy: .referencePractice)
        #expect(c.units.count == 3)
        #expect(close(c.remainderVolume.millilitres, 15))
    }

    @Test func refusalsSayWhy() throws {
        #expect(throws: ProductComputationError.reducedVolumeExceedsAvailable(
            reducedMillilitres: 140, availableMillilitres: 125, qcMillilitres: 5)) {
            try ProductComputation.compute(
                collectedVolume: .millilitres(130), lab: lab, patientMass: nil, policy: .referencePractice)
        }
        func refusal(_ collectedML: Double, _ lab: LabValues) -> String? {
            do {
                _ = try ProductComputation.compute(
                    collectedVolume: .millilitres(collectedML), lab: lab, patientMass: nil, policy: .referencePractice)
                return nil
            } catch {
                return error.description
            }
        }
        var small = lab
        small.reducedVolume = .millilitres(30)
        #expect(refusal(130, small) == "30 mL cannot be split into units of 35 mL: not even one unit")
        var qc = lab
        qc.qcSampleVolume = .millilitres(200)
        #expect(refusal(160, qc) == "the QC sample volume (200 mL) is not less than the collected volume (160 mL)")
        var odd = lab
        odd.reducedVolume = .millilitres(137.25)
        #expect(refusal(100, odd) == "cannot reduce to 137.25 mL: only 95 mL are left after 5 mL of QC samples; enter a smaller reduced volume")
        var infinite = lab
        infinite.cd3 = .absolute(.cellsPerMicrolitre(.infinity))
        #expect(refusal(160, infinite)?.contains("the CD3+ count must be a finite number greater than zero") == true)
        var notANumber = lab
        notANumber.cd3 = .absolute(.cellsPerMicrolitre(.nan))
        #expect(refusal(160, notANumber) != nil)
        var nanQC = lab
        nanQC.qcSampleVolume = Volume(cubicMetres: .nan)
        #expect(refusal(160, nanQC) != nil)
        var huge = lab
        huge.whiteCellConcentration = .gigaPerLitre(1e300)
        #expect(refusal(160, huge)?.contains("the white cell count must be a finite number") == true)
        var many = lab
        many.reducedVolume = .millilitres(1e30)
        #expect(refusal(2e30, many)?.contains("more than 26 units") == true)
        var share = lab
        share.cd3 = .fractionOfLeukocytes(.percent(120))
        do {
            _ = try ProductComputation.compute(
                collectedVolume: .millilitres(160), lab: share, patientMass: nil, policy: .referencePractice)
            Issue.record("a CD3+ share of 120 % was accepted")
        } catch {
            #expect(error.description.contains("CD3+ share of leukocytes must be between 0 and 100 %"))
        }
        #expect(
            ProductComputationError.reducedVolumeExceedsAvailable(reducedMillilitres: 140, availableMillilitres: 125, qcMillilitres: 5)
                .description.contains("only 125 mL are left after 5 mL of QC samples"))
    }
}
