import DaemonConfiguration
import Foundation
import ISBT128
import Labels
import RecordStore

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
            let collectedAt = Date(timeIntervalSince1970: Double(product.collectedAtUnixMilliseconds) / 1000)
            let collection = try ISBTDateTime(kind: .collection, date: collectedAt, timeZone: timeZone)
            let expiresAt =
                Calendar.gregorian(timeZone).date(byAdding: .day, value: state.labelling.shelfLifeDays, to: collectedAt) ?? collectedAt
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
                collection: Barcoded(dataStructure: collection.dataStructure, eyeReadable: collection.eyeReadable),
                expiration: Barcoded(dataStructure: expiration.dataStructure, eyeReadable: expiration.eyeReadable),
                unitLine: "Unit \(u.index + 1) of \(state.units.count) (\(u.divisionCode))",
                volume: "\(Self.decimal(u.volumeCubicMetres * 1e6, places: 0)) mL", cellLines: cells,
                storage: state.labelling.storage, intendedUse: Self.intendedUse, warnings: Self.warnings,
                patientName: name.isEmpty ? "(no name)" : name, patientID: product.patientID ?? "-",
                patientBirthDate: Self.birthDate(product.patientBirthDate),
                facilityName: state.labelling.facilityName, facilityAddress: state.labelling.facilityAddress)
        } catch {
            throw .identification(error.description)
        }
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
