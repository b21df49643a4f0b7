import DaemonConfiguration
import Foundation
import Testing

@Suite struct HL7SettingsTests {
    @Test func destinationsAreReadWithTheirDefaults() throws {
        let path = try temporaryFile(
            """
            format = 1
            [hl7]
            time_zone = "Europe/Berlin"

            [[hl7.destination]]
            name = "mirth"
            address = "engine.hospital.example:6661"

            [[hl7.destination]]
            name = "cell-lab"
            address = "10.0.0.7:2575"
            feeds = ["products"]
            observation_interval_s = 120
            sending_application = "APH-WS2"
            ack_timeout_s = 5
            retry_s = 2.5
            error_attempts = 5
            """)
        let hl7 = try DaemonConfiguration.load(path: path, environment: [:]).hl7
        #expect(hl7.timeZone == "Europe/Berlin")
        #expect(hl7.destinations.count == 2)
        let mirth = hl7.destinations[0]
        #expect(mirth.name == "mirth" && mirth.host == "engine.hospital.example" && mirth.port == 6661)
        #expect(mirth.feeds == [.observations, .alarms, .products])
        #expect(mirth.observationInterval == .seconds(60) && mirth.answerTimeout == .seconds(30) && mirth.retryDelay == .seconds(10))
        #expect(mirth.sendingApplication == "APHERESISD" && mirth.receivingFacility == "HOSPITAL" && mirth.errorAttempts == 3)
        let lab = hl7.destinations[1]
        #expect(lab.feeds == [.products] && lab.observationInterval == .seconds(120) && lab.answerTimeout == .seconds(5))
        #expect(lab.retryDelay == .milliseconds(2500) && lab.errorAttempts == 5 && lab.sendingApplication == "APH-WS2")
    }

    @Test func mistakesAreNamedWithTheirLines() {
        let text = """
            format = 1
            [hl7]
            time_zone = "Mars/Olympus"

            [[hl7.destination]]
            name = "mirth"
            address = "engine:0"
            feeds = ["observations", "alarm"]
            ack_timout_s = 5

            [[hl7.destination]]
            name = "mirth"
            address = "10.0.0.7:2575"
            sending_facility = "A|B"
            observation_interval_s = 1

            [[hl7.destination]]
            feeds = []
            """
        #expect(
            summary(text) == [
                "invalidValue 3 hl7.time_zone",
                "invalidValue 7 hl7.destination[1].address",
                "invalidValue 8 hl7.destination[1].feeds",
                "unknownKey 9 hl7.destination[1].ack_timout_s",
                "invalidValue 14 hl7.destination[2].sending_facility",
                "outOfRange 15 hl7.destination[2].observation_interval_s",
                "missingKey 17 hl7.destination[3].name",
                "missingKey 17 hl7.destination[3].address",
                "invalidValue 18 hl7.destination[3].feeds",
            ], "\(summary(text))")
        let messages = problems(text).map(\.message)
        #expect(messages.contains { $0.contains("\"alarm\" is not a feed") && $0.contains("did you mean alarms?") })
        #expect(messages.contains { $0.contains("did you mean ack_timeout_s?") })
        #expect(messages.contains { $0.contains("without | ^ ~ \\ &") })
    }

    @Test func aNameUsedTwiceIsRefused() {
        let text = """
            format = 1
            [[hl7.destination]]
            name = "mirth"
            address = "a:1"
            [[hl7.destination]]
            name = "mirth"
            address = "b:2"
            """
        #expect(summary(text) == ["duplicateName 6 hl7.destination[2].name"], "\(summary(text))")
    }

    @Test func tlsSettingsNeedTLSAndBothHalvesOfAClientCertificate() throws {
        let text = """
            format = 1
            [[hl7.destination]]
            name = "plain"
            address = "a:1"
            tls_ca_file = "/etc/ca.pem"

            [[hl7.destination]]
            name = "half"
            address = "b:2"
            tls = true
            tls_certificate_file = "/etc/client.pem"
            tls_ca_file = "ca.pem"
            """
        #expect(
            summary(text) == [
                "inapplicableKey 5 hl7.destination[1].tls_ca_file",
                "missingKey 11 hl7.destination[2].tls_certificate_file",
                "invalidValue 12 hl7.destination[2].tls_ca_file",
            ], "\(summary(text))")
        let path = try temporaryFile(
            """
            format = 1
            [[hl7.destination]]
            name = "secure"
            address = "engine.example:6661"
            tls = true
            tls_ca_file = "/etc/apheresisd/ca.pem"
            tls_certificate_file = "/etc/apheresisd/client.pem"
            tls_key_file = "/etc/apheresisd/client.key"
            tls_server_name = "engine.example"
            """)
        let tls = try #require(try DaemonConfiguration.load(path: path, environment: [:]).hl7.destinations.first?.tls)
        #expect(tls.caFile == "/etc/apheresisd/ca.pem" && tls.certificateFile == "/etc/apheresisd/client.pem")
        #expect(tls.keyFile == "/etc/apheresisd/client.key" && tls.serverName == "engine.example")
    }
}
