import Foundation
import HL7
import PropertyBased
import Testing

@Suite struct MessageTests {
    static let envelope = HL7Envelope(
        endpoints: HL7Endpoints(sendingApplication: "APHERESISD", sendingFacility: "UNIT", receivingApplication: "ENGINE", receivingFacility: "HOSP"),
        controlID: "0A1B2C3D-7", createdAt: "20261206101500+0100")
    static let equipment = HL7Equipment(serialNumber: "1OPT00417", model: "OPTIA-SIM")

    static func segments(_ message: HL7Message) -> [[String]] {
        message.text.split(separator: "\r").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test func anObservationIsMSHPIDPV1OBRThenItsOBXRows() {
        let observation = RunObservation(
            patient: HL7Patient(id: "PED-1", family: "O'Brien|Smith", given: "Ann", birthDate: "20160312", sex: "F"),
            equipment: Self.equipment, run: HL7Run(runID: "RUN-7", procedure: "CMNC", startedAt: "20261206090000+0000"),
            observedAt: "20261206093000+0000", runEnded: true,
            values: [ObservedValue(.acRatioWindow, 11.981566820276557), ObservedValue(.acToPatient, 181.64), ObservedValue(.runTime, .nan)])
        let s = Self.segments(observation.message(Self.envelope))
        #expect(s.map { $0[0] } == ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX"])
        #expect(s[0][1] == "^~\\&" && s[0][6] == "20261206101500+0100" && s[0][8] == "ORU^R01^ORU_R01" && s[0][9] == "0A1B2C3D-7")
        #expect(s[0][10] == "P" && s[0][11] == "2.6" && s[0][14] == "AL" && s[0][15] == "NE" && s[0][17] == "UNICODE UTF-8")
        #expect(s[0][20] == "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO")
        #expect(s[1][3] == "PED-1^^^^PI" && s[1][5] == "O'Brien\\F\\Smith^Ann" && s[1][7] == "20160312" && s[1][8] == "F")
        #expect(s[2][2] == "U")
        #expect(s[3][3] == "1OPT00417-RUN-7^APHERESISD" && s[3][7] == "20261206093000+0000" && s[3][8] == "20261206093000+0000")
        #expect(s[4][2] == "" && s[4][11] == "X" && s[4][18] == "1OPT00417^OPTIA-SIM")
        #expect(s[5][1] == "2" && s[5][2] == "NM" && s[5][3] == "APH_AC_RATIO_WINDOW^Inlet:ACD-A ratio, recomputed over the window^99APH")
        #expect(s[5][4] == "1.1.2.4" && s[5][5] == "11.9815668202766" && s[5][6] == "{ratio}^inlet:AC^UCUM" && s[5][11] == "R")
        #expect(s[6][3].hasPrefix("157993^MDC_VOL_FLUID_DELIV_TOTAL^MDC^APH_AC_TO_PATIENT^") && s[6][5] == "181.64" && s[6][6] == "mL^mL^UCUM")
    }

    @Test func anUnknownPatientIsStillAWholePID() {
        let observation = RunObservation(
            patient: HL7Patient(id: nil, family: nil, given: nil, birthDate: "2016-03-12", sex: "X"), equipment: Self.equipment,
            run: HL7Run(runID: "R", procedure: "CMNC", startedAt: nil), observedAt: "20261206093000+0000", runEnded: false, values: [])
        let pid = Self.segments(observation.message(Self.envelope))[1]
        #expect(pid == ["PID", "1", "", "UNKNOWN^^^^PI", "", "^^^^^^U"], "a malformed birth date and sex are left out, not sent")
    }

    @Test func anAlarmStepCarriesIHEACMRows() {
        let report = AlarmReport(
            patient: HL7Patient(id: "PED-1", family: "Doe", given: "Jo", birthDate: nil, sex: "M"), equipment: Self.equipment,
            alertID: "0A1B2C3D-A12", code: "CITRATE_LOAD", text: "citrate load 2.7 mg/kg/min", phase: .end, active: false,
            acknowledged: true, priority: .high, type: .physiological, value: 2.7, unit: "mg/kg/min", limit: 2.6,
            at: "20261206094500+0100", actor: nil, note: "back below 2.6")
        let s = Self.segments(report.message(Self.envelope))
        #expect(s.map { $0[0] } == ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX", "OBX", "NTE"])
        #expect(s[0][8] == "ORU^R40^ORU_R01" && s[0][20] == "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO")
        #expect(s[3][3] == "0A1B2C3D-A12^APHERESISD" && s[3][4] == "196616^MDC_EVT_ALARM^MDC")
        #expect(s[4][2] == "CWE" && s[4][5] == "CITRATE_LOAD^citrate load 2.7 mg/kg/min^99APH" && s[4][4] == "1.0.0.0.1")
        #expect(s[5][2] == "NM" && s[5][3] == "CITRATE_LOAD^^99APH" && s[5][5] == "2.7" && s[5][6] == "mg/kg/min^mg/kg/min^UCUM")
        #expect(s[5][7] == "<2.6", "the value went above the limit: the range it left is below it")
        #expect(s[6][3] == "68481^MDC_ATTR_EVENT_PHASE^MDC" && s[6][5] == "end")
        #expect(s[7][5] == "inactive" && s[8][5] == "alert-acknowledged" && s[9][5] == "PH" && s[10][5] == "SP")
        #expect(s[11] == ["NTE", "1", "", "back below 2.6"])
    }

    @Test func aProductReleaseNamesItsUnits() {
        let units = (0..<4).map { i in
            ProductReleaseReport.Unit(
                productCode: "S1234\(["A", "B", "C", "D"][i])0", volumeMillilitres: 35, cd3Cells: 2.9e10, cd3CellsPerKilogram: 9.1e8,
                doseFlag: "within_band")
        }
        let report = ProductReleaseReport(
            patient: HL7Patient(id: "PED-1", family: "Doe", given: "Jo", birthDate: "20160312", sex: "M"), din: "G123426000001",
            productName: "CD3+ lymphocytes", productDescriptionCode: "S1234", collectedAt: "20261206080000+0100",
            releasedAt: "20261206150000+0100", releasedBy: "Lab Technologist (lab1)", collectedVolumeMillilitres: 231.5,
            collectedCD3Cells: 1.2e11, viabilityFraction: 0.96, signedContentSHA256: String(repeating: "a", count: 64), units: units)
        let s = Self.segments(report.message(Self.envelope))
        #expect(s[3][3] == "G123426000001^ISBT128" && s[3][22] == "20261206150000+0100" && s[3][25] == "F")
        let rows = s.filter { $0[0] == "OBX" }
        #expect(rows.filter { $0[3].hasPrefix("APH_UNIT_VOL^") }.map { [$0[4], $0[5]] } == [["1", "35"], ["2", "35"], ["3", "35"], ["4", "35"]])
        #expect(rows.first { $0[3].hasPrefix("APH_VIABILITY^") }?[5] == "96")
        #expect(rows.first { $0[3].hasPrefix("APH_CD3_COLLECTED^") }?[5] == "120000000000")
        #expect(rows.allSatisfy { $0[11] == "F" })
    }

    /// The receiver's answer and the frames around it are untrusted bytes: any of them is read or
    /// refused with a reason, never a crash.
    @Test func anyBytesFromTheReceiverAreReadOrRefused() async {
        await propertyCheck(count: 2000, input: Gen.uint8().array(of: 0...120)) { bytes in
            var decoder = MLLPDecoder(maximumLength: 64)
            for output in decoder.feed(bytes + [0x0B] + bytes + [0x1C, 0x0D]) {
                if case .message(let m) = output { _ = try? HL7Acknowledgement(parsing: m) }
            }
            _ = try? HL7Acknowledgement(parsing: Array("MSH|^~\\&|R\rMSA|".utf8) + bytes)
            _ = try? HL7Acknowledgement(parsing: bytes)
        }
    }
}
