import Glibc
import ApheresisCore
import ISBT128
import Quantities
import TOMLKit
import WorkflowSettings

/// Reads `[product]` and `[labels]` into the settings ProductWorkflow runs by (WorkflowSettings).
struct ProductSettingsReader {
    let checker: Checker

    static let productKeys = [
        "facility_identification_number", "facility_name", "facility_address", "product_description_code", "product_name",
        "din_flags", "reduced_volume_ml", "unit_volume_ml", "unit_cd3_min_millions", "unit_cd3_max_millions",
        "sufficient_cd3_per_ul", "storage", "shelf_life_days", "time_zone",
    ]
    static let labelKeys = ["width_in", "height_in", "printer_dpi", "printer"]

    func read(product: TOMLValue?, labels: TOMLValue?) -> ProductSettings {
        var settings = ProductSettings.unconfigured
        if let value = product {
            if let table = value.table {
                readProduct(table, into: &settings)
            } else {
                checker.wrongType("product", expected: "a table, written [product] on a line of its own", found: value)
            }
        }
        if let value = labels {
            if let table = value.table {
                readLabels(table, into: &settings.labels)
            } else {
                checker.wrongType("labels", expected: "a table, written [labels] on a line of its own", found: value)
            }
        }
        return settings
    }

    private func readProduct(_ t: TOMLTable, into s: inout ProductSettings) {
        let at = "product"
        _ = checker.unknownKeys(in: t, at: at, known: Self.productKeys, what: "[product]")
        if let fin = checker.text(t, "facility_identification_number", at: at) {
            do {
                s.facilityIdentificationNumber = try FacilityIdentificationNumber(fin).text
            } catch {
                checker.report(.invalidValue, "product.facility_identification_number", error.description)
            }
        }
        if let v = checker.text(t, "facility_name", at: at) { s.facilityName = v }
        if let v = checker.textList(t, "facility_address", at: at) { s.facilityAddress = v }
        if let code = checker.text(t, "product_description_code", at: at) {
            do {
                s.productDescriptionCode =
                    try ProductCode(descriptionCode: code, typeOfCollection: .forAutologousUseOnly, division: DivisionCode("00"))
                    .descriptionCode
            } catch {
                checker.report(.invalidValue, "product.product_description_code", error.description)
            }
        }
        if let v = checker.text(t, "product_name", at: at) {
            if v.isEmpty { checker.report(.invalidValue, "product.product_name", "must not be empty") } else { s.productName = v }
        }
        if let v = checker.text(t, "din_flags", at: at) {
            if let n = Int(v), (60...96).contains(n) {
                checker.report(
                    .invalidValue, "product.din_flags",
                    "\"\(v)\" is a check-value flag (60-96), which differs from DIN to DIN; use \"00\" or a fixed flag")
            } else {
                do {
                    _ = try DonationIdentificationNumber(
                        facility: FacilityIdentificationNumber("A9999"), year: 0, sequence: 1, flags: v)
                    s.dinFlags = v
                } catch {
                    checker.report(.invalidValue, "product.din_flags", error.description)
                }
            }
        }
        if let v = millilitres(t, "reduced_volume_ml", 1...2000) { s.policy.reducedVolume = .millilitres(v) }
        if let v = millilitres(t, "unit_volume_ml", 1...2000) { s.policy.unitVolume = .millilitres(v) }
        var low = s.policy.unitCD3Band.lowerBound.millions
        var high = s.policy.unitCD3Band.upperBound.millions
        if let v = checker.number(t, "unit_cd3_min_millions", at: at),
            checker.within(v, 0...1e6, unit: "x10^6 cells", at: "product.unit_cd3_min_millions")
        { low = v }
        if let v = checker.number(t, "unit_cd3_max_millions", at: at),
            checker.within(v, 0...1e6, unit: "x10^6 cells", at: "product.unit_cd3_max_millions")
        { high = v }
        if low > high {
            checker.report(
                .invalidValue, "product.unit_cd3_min_millions",
                "the band's lower end (\(low) x10^6) is above its upper end (\(high) x10^6)")
        } else {
            s.policy.unitCD3Band = CellCount.millions(low)...CellCount.millions(high)
        }
        if let v = checker.number(t, "sufficient_cd3_per_ul", at: at),
            checker.within(v, 0...1e6, unit: "cells/uL", at: "product.sufficient_cd3_per_ul")
        { s.policy.sufficientCD3Concentration = .cellsPerMicrolitre(v) }
        if let v = checker.text(t, "storage", at: at) { s.storage = v }
        if let v = checker.integer(t, "shelf_life_days", at: at),
            checker.within(Double(v), 1...36500, unit: "days", at: "product.shelf_life_days")
        { s.shelfLifeDays = v }
        if let v = checker.text(t, "time_zone", at: at) {
            if TimeZoneNames.isKnown(v) {
                s.timeZone = v
            } else {
                checker.report(.invalidValue, "product.time_zone", "\"\(v)\" is not a time zone name such as \"Europe/Berlin\"")
            }
        }
    }

    private func millilitres(_ t: TOMLTable, _ key: String, _ range: ClosedRange<Double>) -> Double? {
        guard let v = checker.number(t, key, at: "product"), checker.within(v, range, unit: "mL", at: "product." + key) else {
            return nil
        }
        return v
    }

    private func readLabels(_ t: TOMLTable, into l: inout LabelSettings) {
        let at = "labels"
        _ = checker.unknownKeys(in: t, at: at, known: Self.labelKeys, what: "[labels]")
        if let v = checker.number(t, "width_in", at: at), checker.within(v, 1...8, unit: "in", at: "labels.width_in") {
            l.widthInches = v
        }
        if let v = checker.number(t, "height_in", at: at), checker.within(v, 1...12, unit: "in", at: "labels.height_in") {
            l.heightInches = v
        }
        if let v = checker.integer(t, "printer_dpi", at: at) {
            if [203, 300].contains(v) {
                l.printerDotsPerInch = v
            } else {
                checker.report(.invalidValue, "labels.printer_dpi", "\(v) is not a label printer resolution; use 203 or 300")
            }
        }
        if let v = checker.text(t, "printer", at: at) {
            // The same rule as --printer and the API's printer.
            if let problem = PrinterAddress.problem(with: v) {
                checker.report(.invalidValue, "labels.printer", problem)
            } else {
                l.printer = v
            }
        }
    }
}

enum TimeZoneNames {
    /// IANA names as the system knows them (Foundation is not linked here: look in zoneinfo).
    static func isKnown(_ name: String) -> Bool {
        guard !name.isEmpty, !name.contains(".."), !name.hasPrefix("/") else { return false }
        var st = stat()
        return stat("/usr/share/zoneinfo/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }
}
