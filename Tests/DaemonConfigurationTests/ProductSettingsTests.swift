import ApheresisCore
import DaemonConfiguration
import Foundation
import Quantities
import Testing
import WorkflowSettings

@Suite("[product], [labels] and [api]")
struct ProductSettingsTests {
    @Test func aFullProductSectionIsRead() throws {
        let config = try DaemonConfiguration.load(
            path: try temporaryFile(
                """
                format = 1
                [product]
                facility_identification_number = "G1234"
                facility_name = "Example Children's Hospital"
                facility_address = ["1 Example Street", "Springfield"]
                product_description_code = "S1234"
                reduced_volume_ml = 120
                unit_volume_ml = 30
                unit_cd3_min_millions = 20
                unit_cd3_max_millions = 30.5
                sufficient_cd3_per_ul = 25
                shelf_life_days = 1825
                time_zone = "Europe/Berlin"
                [labels]
                width_in = 4
                height_in = 6
                printer_dpi = 300
                printer = "10.1.2.40:9100"
                [api]
                unix_socket = "/run/apheresisd/api.sock"
                """), environment: [:])
        let p = config.product
        #expect(p.facilityIdentificationNumber == "G1234" && p.productDescriptionCode == "S1234")
        #expect(p.facilityAddress == ["1 Example Street", "Springfield"])
        #expect(nearlyEqual(p.policy.reducedVolume.millilitres, 120) && nearlyEqual(p.policy.unitVolume.millilitres, 30))
        #expect(nearlyEqual(p.policy.unitCD3Band.lowerBound.millions, 20) && nearlyEqual(p.policy.unitCD3Band.upperBound.millions, 30.5))
        #expect(nearlyEqual(p.policy.sufficientCD3Concentration.cellsPerMicrolitre, 25))
        #expect(p.shelfLifeDays == 1825 && p.timeZone == "Europe/Berlin")
        #expect(p.labels == LabelSettings(widthInches: 4, heightInches: 6, printerDotsPerInch: 300, printer: "10.1.2.40:9100"))
        #expect(config.api.listen == .unixSocket(path: "/run/apheresisd/api.sock"))
    }

    @Test func withoutTheSectionsTheReferencePracticeAndLoopbackApply() throws {
        let config = try DaemonConfiguration.load(path: try temporaryFile("format = 1\n"), environment: [:])
        #expect(config.product == .unconfigured)
        #expect(config.product.policy == .referencePractice)
        #expect(config.api.listen == .tcp(host: "127.0.0.1", port: 8470))
        #expect(DaemonConfiguration.demo(workingDirectory: "/tmp", simulatorScenario: "x").product.facilityIdentificationNumber == "A9999")
    }

    @Test func everyProblemIsNamedWithItsLine() {
        let found = summary(
            """
            format = 1
            [product]
            facility_identification_number = "O1234"
            product_description_code = "12"
            unit_cd3_min_millions = 40
            unit_cd3_max_millions = 30
            shelf_life_days = 0
            time_zone = "Mars/Olympus"
            reduced_volum_ml = 140
            [labels]
            printer_dpi = 600
            printer = "printer-without-port:"
            [api]
            listen = "8470"
            unix_socket = "relative.sock"
            """)
        #expect(
            found == [
                "invalidValue 3 product.facility_identification_number",
                "invalidValue 4 product.product_description_code",
                "invalidValue 5 product.unit_cd3_min_millions",
                "outOfRange 7 product.shelf_life_days",
                "invalidValue 8 product.time_zone",
                "unknownKey 9 product.reduced_volum_ml",
                "invalidValue 11 labels.printer_dpi",
                "invalidValue 12 labels.printer",
                "invalidValue 14 api.listen",
                "invalidValue 15 api.unix_socket",
            ], "\(found)")
        let messages = problems("format = 1\n[product]\nfacility_identification_number = \"O1234\"\nreduced_volum_ml = 1\n").map(\.message)
        #expect(messages.contains { $0.contains("'O' at position 1") }, "\(messages)")
        #expect(messages.contains { $0.contains("did you mean reduced_volume_ml?") }, "\(messages)")
        let flags = problems("format = 1\n[product]\ndin_flags = \"70\"\n").map(\.message)
        #expect(flags.contains { $0.contains("check-value flag") }, "\(flags)")
    }
}
