import Foundation
import ISBT128
import Labels
import RecordStore
import WorkflowSettings

/// Turns a released product's units into label content. This is the one place where clinical
/// numbers are rounded: for the eye, on the label (product-records.md).
public struct LabelComposer: Sendable {
    public var settings: ProductSettings
    public var timeZone: TimeZone

    public init(settings: ProductSettings, timeZone: TimeZone) {
        self.settings = settings
        self.timeZone = timeZone
    }

    public static let intendedUse = "FOR AUTOLOGOUS USE ONLY"
    /// 21 CFR 1271.370 and 1271.90(c): autologous cells whose donor was not tested.
    public static let warnings = ["NOT EVALUATED FOR INFECTIOUS SUBSTANCES"]

    public func content(state: ProductState, unit: UnitRow) throws(ProductWorkflowError) -> LabelContent {
        let product = state.product
        do {
            let fin = try FacilityIdentificationNumber(product.facility)
            let din = try DonationIdentificationNumber(
                facility: fin, year: product.dinYear, sequence: product.dinSequence, flags: product.dinFlags)
            let code = try ProductCode(dataStructure: "=<" + unit.values.productCode)
            // Stored instants are UTC; the label shows and encodes the facility's local time, and names its zone.
            let collectedAt = Date(timeIntervalSince1970: Double(product.collectedAtUnixMilliseconds) / 1000)
            let collection = try ISBTDateTime(kind: .collection, date: collectedAt, timeZone: timeZone)
            let expiresAt = Self.expiry(collectedAt: collectedAt, shelfLifeDays: state.labelling.shelfLifeDays, timeZone: timeZone)
            let expiration = try ISBTDateTime(kind: .expiration, date: expiresAt, timeZone: timeZone)
            let u = unit.values
            var cells = ["CD3+ \(Self.millions(u.cd3Cells)) x 10^6 cells"]
            if let perKg = u.cd3CellsPerKilogram { cells.append("CD3+ \(Self.millions(perKg)) x 10^6 cells/kg") }
            cells.append("TNC \(Self.millions(u.tncCells)) x 10^6 cells")
            if let viability = state.computation?.values.viabilityFraction {
                cells.append("Viability \(Self.decimal(viability * 100, places: 0)) %")
            }
            // The patient as copied into the product when it was made (and signed with it).
            let name = product.patientName ?? ""
            return LabelContent(
                din: Barcoded(dataStructure: din.dataStructure, eyeReadable: din.eyeReadable), dinFlags: din.flags,
                dinCheckCharacter: String(din.keyboardCheckCharacter),
                productCode: Barcoded(dataStructure: code.dataStructure, eyeReadable: code.eyeReadable),
                productName: product.productName,
                collection: Barcoded(
                    dataStructure: collection.dataStructure,
                    eyeReadable: collection.eyeReadable + " " + ZoneAbbreviation.of(timeZone, at: collectedAt)),
                expiration: Barcoded(
                    dataStructure: expiration.dataStructure,
                    eyeReadable: expiration.eyeReadable + " " + ZoneAbbreviation.of(timeZone, at: expiresAt)),
                unitLine: "Unit \(u.index + 1) of \(state.units.count) (\(u.divisionCode))",
                volume: "\(Self.decimal(u.volumeCubicMetres * 1e6, places: 0)) mL", cellLines: cells,
                storage: state.labelling.storage, intendedUse: Self.intendedUse, warnings: Self.warnings,
                patientName: name.isEmpty ? "(no name)" : name, patientID: product.patientID ?? "-",
                patientBirthDate: Self.birthDate(product.patientBirthDate),
                facilityName: state.labelling.facilityName, facilityAddress: state.labelling.facilityAddress,
                alert: Self.doseBandAlert(unit: u, computation: state.computation?.values))
        } catch {
            throw .identification(error.description)
        }
    }

    /// Expiry: `shelfLifeDays` calendar days after collection at the same local wall-clock time, so a
    /// daylight-saving change in between moves neither the printed time nor the day. A wall-clock time
    /// the expiry day skips (the spring-forward hour) becomes the instant exactly that many 24-hour days on.
    public static func expiry(collectedAt: Date, shelfLifeDays: Int, timeZone: TimeZone) -> Date {
        Calendar.gregorian(timeZone).date(byAdding: .day, value: shelfLifeDays, to: collectedAt)
            ?? collectedAt.addingTimeInterval(Double(shelfLifeDays) * 86_400)
    }

    /// The line a unit outside the configured dose band carries (nil inside it): the unit's CD3+ dose
    /// and the band it was judged against (the band stored with the computation), both per unit as the
    /// band is configured, and the dose per kg beside it when the weight is known.
    static func doseBandAlert(unit u: UnitInput, computation c: ComputationInput?) -> String? {
        guard u.doseFlag != "within_band", let c else { return nil }
        let side = u.doseFlag == "below_band" ? "BELOW" : u.doseFlag == "above_band" ? "ABOVE" : u.doseFlag.uppercased()
        let perKilogram = u.cd3CellsPerKilogram.map { " (\(millions($0)) x10^6/kg)" } ?? ""
        return "OUT OF DOSE BAND (\(side)): CD3+ \(millions(u.cd3Cells)) x10^6/unit\(perKilogram), "
            + "band \(millions(c.policyUnitCD3MinCells))-\(millions(c.policyUnitCD3MaxCells)) x10^6/unit"
    }

    /// "34.7" for 34.72e6: three significant digits, the precision of a cell count.
    static func millions(_ cells: Double) -> String {
        let m = cells / 1e6
        let places = m >= 100 ? 0 : m >= 10 ? 1 : 2
        return decimal(m, places: places)
    }

    static func decimal(_ value: Double, places: Int) -> String {
        String(format: "%.\(places)f", value)
    }

    /// YYYYMMDD (as the separator sends it) to "29 FEB 1980".
    static func birthDate(_ text: String?) -> String {
        guard let text, text.count == 8, let y = Int(text.prefix(4)), let m = Int(text.dropFirst(4).prefix(2)),
            let d = Int(text.suffix(2)), (1...12).contains(m)
        else { return text ?? "-" }
        let months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        return String(format: "%02d ", d) + months[m - 1] + String(format: " %04d", y)
    }
}
