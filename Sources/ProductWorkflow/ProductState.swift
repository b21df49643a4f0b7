import ApheresisCore
import Foundation
import ISBT128
import RecordStore
import WorkflowSettings

/// A product with its run, lab values, current computation and units, release and prints.
public struct ProductState: Sendable {
    public var product: ProductRow
    public var run: RunRow?
    /// Every version, oldest first; the last is current.
    public var labResults: [LabResultRow]
    public var computation: ComputationRow?
    public var units: [UnitRow]
    /// The signature on the current computation, if any.
    public var release: SignatureRow?
    public var signatures: [SignatureRow]
    public var labelPrints: [LabelPrintRow]
    /// What became of prints no longer valid (voided, superseded by a reprint).
    public var labelPrintFates: [LabelPrintFateRow]
    /// What the labels will say besides the record: from the configuration, and signed with the rest.
    public var labelling: Labelling
    /// How much of the run's telemetry reached the record (nil: the run has no messages).
    public var runCompleteness: TelemetryCompleteness?
    /// The gaps found in the run, as stored when they were found.
    public var runGaps: [RunGapRow] = []

    public struct Labelling: Sendable, Hashable {
        public var facilityName: String
        public var facilityAddress: [String]
        public var storage: String
        public var shelfLifeDays: Int
        init(_ settings: ProductSettings) {
            facilityName = settings.facilityName
            facilityAddress = settings.facilityAddress
            storage = settings.storage
            shelfLifeDays = settings.shelfLifeDays
        }
    }

    init(_ snapshot: ProductSnapshot, settings: ProductSettings) {
        product = snapshot.product
        run = snapshot.run
        labResults = snapshot.labResults
        computation = snapshot.computation
        units = snapshot.units
        release = snapshot.release
        signatures = snapshot.signatures
        labelPrints = snapshot.labelPrints
        labelPrintFates = snapshot.labelPrintFates
        labelling = Labelling(settings)
    }

    public enum Status: String, Sendable {
        case awaitingLabValues = "awaiting lab values"
        case awaitingRelease = "awaiting release"
        case released = "released"
        case labelled = "released, labels printed"
    }

    public var status: Status {
        if computation == nil { return .awaitingLabValues }
        guard let release else { return .awaitingRelease }
        return labelPrints.contains { $0.signatureRef == release.id && labelStatus(of: $0) == .printed } ? .labelled : .released
    }

    /// A print's labels: still valid (`printed`), destroyed (`voided`), or replaced by a reprint (`superseded`).
    public enum LabelStatus: String, Sendable {
        case printed, voided, superseded
    }

    public func fate(of print: LabelPrintRow) -> LabelPrintFateRow? {
        labelPrintFates.first { $0.labelPrintRef == print.id }
    }

    public func labelStatus(of print: LabelPrintRow) -> LabelStatus {
        switch fate(of: print)?.fate {
        case nil: .printed
        case .voided: .voided
        case .superseded: .superseded
        }
    }

    public var din: DonationIdentificationNumber? {
        guard let fin = try? FacilityIdentificationNumber(product.facility) else { return nil }
        return try? DonationIdentificationNumber(
            facility: fin, year: product.dinYear, sequence: product.dinSequence, flags: product.dinFlags)
    }

    /// What a signer is shown and signs (its SHA-256 is stored with the signature, which is also
    /// bound to the computation's row). Numbers show six significant digits: this is a display.
    public func releaseSummary(timeZone: TimeZone) -> String {
        var lines: [String] = []
        let dinText = din.map { "\($0.eyeReadable) \($0.flags) [\($0.keyboardCheckCharacter)]" } ?? product.din
        lines.append("Product \(product.id): DIN \(dinText), \(product.productName)")
        if let run { lines.append("Run \(run.runID) on \(run.deviceSerial), procedure \(run.procedure)") }
        // Only an incomplete run adds a line (the signer must see it; complete runs sign what they always did).
        if let c = runCompleteness, !c.isComplete {
            lines.append("Run telemetry INCOMPLETE: \(c.summary); releasing needs an acknowledgement")
        }
        lines.append(
            "Patient \(product.patientName ?? "-") (id \(product.patientID ?? "-")), born \(product.patientBirthDate ?? "-"), weight "
                + (product.patientMassKilograms.map { "\(Self.shown($0)) kg" } ?? "unknown"))
        lines.append(
            "Collected \(Self.shown(product.collectedVolumeCubicMetres * 1e6)) mL at "
                + Self.localTime(product.collectedAtUnixMilliseconds, timeZone))
        if let lab = labResults.last {
            let v = lab.values
            let cd3 =
                v.cd3Fraction.map { "CD3+ \(Self.shown($0 * 100)) % of leukocytes" }
                ?? "CD3+ \(Self.shown((v.cd3CellsPerCubicMetre ?? 0) / 1e9)) /uL"
            lines.append(
                "Lab values version \(lab.version) by \(lab.enteredBy): WBC \(Self.shown(v.wbcCellsPerCubicMetre / 1e12)) x10^9/L, "
                    + "\(cd3), viability \(Self.shown(v.viabilityFraction * 100)) %, QC samples \(Self.shown(v.qcVolumeCubicMetres * 1e6)) mL, "
                    + "recovery " + (v.recoveryFraction.map { "\(Self.shown($0 * 100)) %" } ?? "not measured (1.0 assumed)")
                    + (lab.reason.map { ", reason: \($0)" } ?? ""))
        }
        if let c = computation?.values {
            lines.append(
                "Collection: CD3+ \(Self.shown(c.collectedCD3CellsPerCubicMetre / 1e9)) /uL, "
                    + (c.collectionSufficient ? "sufficient" : "NOT sufficient")
                    + " (threshold \(Self.shown(c.policySufficientCD3CellsPerCubicMetre / 1e9)) /uL); "
                    + "TNC \(Self.shown(c.collectedTNCCells / 1e6)) x10^6, CD3+ \(Self.shown(c.collectedCD3Cells / 1e6)) x10^6")
            lines.append(
                "Reduced to \(Self.shown(c.reducedVolumeCubicMetres * 1e6)) mL from \(Self.shown(c.volumeAfterQCCubicMetres * 1e6)) mL: "
                    + "CD3+ \(Self.shown(c.cd3AfterReductionCellsPerCubicMetre / 1e9)) /uL; \(units.count) unit(s) of "
                    + "\(Self.shown(c.unitVolumeCubicMetres * 1e6)) mL, remainder \(Self.shown(c.remainderVolumeCubicMetres * 1e6)) mL")
            for unit in units {
                let u = unit.values
                lines.append(
                    "Unit \(u.divisionCode) (=<\(u.productCode)): \(Self.shown(u.volumeCubicMetres * 1e6)) mL, "
                        + "CD3+ \(Self.shown(u.cd3Cells / 1e6)) x10^6"
                        + (u.cd3CellsPerKilogram.map { " (\(Self.shown($0 / 1e6)) x10^6/kg)" } ?? "")
                        + ", TNC \(Self.shown(u.tncCells / 1e6)) x10^6, dose \(u.doseFlag.replacingOccurrences(of: "_", with: " ")) "
                        + "\(Self.shown(c.policyUnitCD3MinCells / 1e6))-\(Self.shown(c.policyUnitCD3MaxCells / 1e6)) x10^6")
            }
        }
        let collected = Date(timeIntervalSince1970: Double(product.collectedAtUnixMilliseconds) / 1000)
        let expiry = LabelComposer.expiry(collectedAt: collected, shelfLifeDays: labelling.shelfLifeDays, timeZone: timeZone)
        lines.append(
            "Labels: expire \(Self.localTime(Int64(expiry.timeIntervalSince1970 * 1000), timeZone)) "
                + "(\(labelling.shelfLifeDays) days after collection); \(labelling.storage); "
                + ([labelling.facilityName] + labelling.facilityAddress).joined(separator: ", "))
        return lines.joined(separator: "\n") + "\n"
    }

    /// The SHA-256 (hex) of the summary: what a release signs, and what labels are checked against.
    public func releaseSummarySHA256(timeZone: TimeZone) -> String {
        Digest.sha256Hex(releaseSummary(timeZone: timeZone))
    }

    /// Six significant digits, for display only (stored values are never rounded).
    static func shown(_ value: Double) -> String {
        String(format: "%.6g", value)
    }

    public static func localTime(_ unixMilliseconds: Int64, _ timeZone: TimeZone) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = timeZone
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        return formatter.string(from: Date(timeIntervalSince1970: Double(unixMilliseconds) / 1000)) + " " + timeZone.identifier
    }
}
