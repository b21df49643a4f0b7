import ApheresisCore
import DaemonConfiguration
import Foundation
import Quantities
import SeparatorProtocol
import Testing

/// Writes `text` to a fresh temporary directory and returns the file's path.
func temporaryFile(_ text: String, name: String = "apheresisd.toml") throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("apheresisd-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let file = directory.appendingPathComponent(name)
    try text.write(to: file, atomically: true, encoding: .utf8)
    return file.path
}

func nearlyEqual(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-12 * max(abs(a), abs(b)) }

@Suite struct LoadingAValidFile {
    static let full = """
        # a workstation with everything
        format = 1
        [daemon]
        state_directory = "/var/lib/apheresisd"
        database = "store/apheresisd.sqlite"
        log_level = "debug"

        [[device]]
        name = "optia-1"
        transport = "serial"
        path = "/dev/optia-1OPT00417"
        baud = 19200

        [[device]]
        name = "optia-2"
        transport = "serial"
        usb_serial = "A10K3XYZ"
        usb_vid_pid = "0403:6001"
        reconnect_initial_ms = 500
        reconnect_max_s = 10
        silence_timeout_s = 20.5

        [[device]]
        name = "bridge"
        transport = "tcp"
        host = "10.1.2.3"
        port = 4001

        [[device]]
        name = "share"
        transport = "export"
        directory = "/srv/optia-export/"

        [[device]]
        name = "bench"
        transport = "pty"
        path = "/dev/pts/3"

        [[device]]
        name = "sim"
        transport = "simulator"
        scenario = "scenarios/pediatric.toml"
        speed = 120.5
        seed = 7

        [[profile]]
        name = "small-children"
        procedures = ["CMNC", "MNC"]
        min_weight_kg = 5
        max_weight_kg = 20.5
        ratio_window_s = 90
        ratio_warn_deviation = 0.5
        ratio_alarm_deviation = 1.5
        ratio_agreement_alarm_percent = 8
        ac_inf_window_s = 120
        ac_inf_rate_warn_ml_min_l = 0.8
        ac_inf_rate_alarm_ml_min_l = 1.1
        citrate_mg_ml = 22
        citrate_load_warn_mg_kg_min = 1.5
        citrate_load_alarm_mg_kg_min = 2.2
        collect_target_ml = 150
        collect_alarm_percent_tbv = 12
        ecv_alarm_percent_tbv = 10
        blood_processed_alarm_factor = 1.5
        run_time_alarm_extension_min = 20
        stale_after_tick_intervals = 4
        expected_tick_interval_s = 2
        hysteresis_percent = 3
        collection_efficiency_percent = 45
        assumed_cd3_percent_of_wbc = 25
        prediction_window_s = 300
        ac_ratio_set_default = 13

        [[profile]]
        name = "default"

        """

    @Test func roundTrips() throws {
        let path = try temporaryFile(Self.full)
        let directory = (path as NSString).deletingLastPathComponent
        let config = try DaemonConfiguration.load(path: path, environment: ["STATE_DIRECTORY": "/ignored"])

        #expect(config.stateDirectory == "/var/lib/apheresisd")
        #expect(config.databasePath == "/var/lib/apheresisd/store/apheresisd.sqlite")
        #expect(config.logLevel == .debug)

        #expect(config.devices == [
            DeviceConfiguration(
                name: "optia-1",
                transport: .serial(path: "/dev/optia-1OPT00417", usbSerial: nil, usbVIDPID: nil, baud: 19200)),
            DeviceConfiguration(
                name: "optia-2",
                transport: .serial(
                    path: nil, usbSerial: "A10K3XYZ", usbVIDPID: USBDeviceID(vendorID: 0x0403, productID: 0x6001), baud: 9600),
                reconnectInitial: .milliseconds(500), reconnectMax: .seconds(10), silenceTimeout: .milliseconds(20500)),
            DeviceConfiguration(name: "bridge", transport: .tcp(host: "10.1.2.3", port: 4001)),
            DeviceConfiguration(name: "share", transport: .export(directory: "/srv/optia-export")),
            DeviceConfiguration(name: "bench", transport: .pty(path: "/dev/pts/3")),
            DeviceConfiguration(
                name: "sim", transport: .simulator(scenario: directory + "/scenarios/pediatric.toml", speed: 120.5, seed: 7)),
        ])
        #expect(config.devices[0].reconnectInitial == .milliseconds(200))
        #expect(config.devices[0].reconnectMax == .seconds(30))
        #expect(config.devices[0].silenceTimeout == .seconds(60))

        #expect(config.profiles.count == 2)
        let p = config.profiles[0]
        #expect(p.name == "small-children")
        #expect(p.procedures == [.cmnc, .mnc])
        #expect(p.minimumWeight == Mass(kilograms: 5))
        #expect(p.maximumWeight == Mass(kilograms: 20.5))
        #expect(p.ratioWindow == Seconds(90))
        #expect(p.ratioWarnDeviation == 0.5)
        #expect(p.ratioAlarmDeviation == 1.5)
        #expect(nearlyEqual(p.ratioAgreementAlarmFraction, 0.08))
        #expect(p.acInfusionWindow == Seconds(120))
        // SI inside: (mL/min)/L → 1/s; mg/kg/min → 1/s; mg/mL → kg/m³; mL → m³.
        #expect(nearlyEqual(p.acInfusionRateWarn.perSecond, 0.8e-3 / 60))
        #expect(nearlyEqual(p.acInfusionRateAlarm.perSecond, 1.1e-3 / 60))
        #expect(nearlyEqual(p.acInfusionRateAlarm.millilitresPerMinutePerLitre, 1.1))
        #expect(p.citrateConcentration.kilogramsPerCubicMetre == 22)
        #expect(nearlyEqual(p.citrateLoadWarn.perSecond, 1.5e-6 / 60))
        #expect(nearlyEqual(p.citrateLoadAlarm.milligramsPerKilogramPerMinute, 2.2))
        #expect(nearlyEqual(p.collectTarget!.cubicMetres, 150e-6))
        #expect(nearlyEqual(p.collectAlarmFractionOfTBV, 0.12))
        #expect(nearlyEqual(p.extracorporealAlarmFractionOfTBV, 0.10))
        #expect(p.bloodProcessedAlarmFactor == 1.5)
        #expect(p.runTimeAlarmExtension == Seconds(1200))
        #expect(p.staleAfterTickIntervals == 4)
        #expect(p.expectedTickInterval == Seconds(2))
        #expect(nearlyEqual(p.hysteresisFraction, 0.03))
        #expect(nearlyEqual(p.collectionEfficiency, 0.45))
        #expect(nearlyEqual(p.assumedCD3FractionOfWBC, 0.25))
        #expect(p.predictionWindow == Seconds(300))
        #expect(p.defaultRatioSet == 13)
        #expect(config.profiles[1] == LimitProfile(name: "default"))
        #expect(config.profiles[1].defaultRatioSet == 12)
    }

    /// The profile of the example in the brief is the built-in pediatric one.
    @Test func documentedPediatricProfileIsTheBuiltIn() throws {
        let text = """
            format = 1
            [[profile]]
            name = "pediatric-cmnc"
            procedures = ["CMNC"]
            max_weight_kg = 40
            ratio_window_s = 60
            ratio_warn_deviation = 1.0
            ratio_alarm_deviation = 2.0
            ratio_agreement_alarm_percent = 10
            ac_inf_rate_warn_ml_min_l = 1.0
            ac_inf_rate_alarm_ml_min_l = 1.2
            citrate_mg_ml = 21.3
            citrate_load_warn_mg_kg_min = 1.8
            citrate_load_alarm_mg_kg_min = 2.6
            collect_target_ml = 250
            collect_alarm_percent_tbv = 15
            ecv_alarm_percent_tbv = 15
            blood_processed_alarm_factor = 1.25
            run_time_alarm_extension_min = 30
            stale_after_tick_intervals = 3
            expected_tick_interval_s = 5
            hysteresis_percent = 5
            collection_efficiency_percent = 50
            """
        let config = try DaemonConfiguration.load(path: try temporaryFile(text), environment: [:])
        #expect(config.profiles == [LimitProfile.pediatricCMNC])
    }

    @Test func defaultsUnderSystemd() throws {
        let config = try DaemonConfiguration.load(
            path: try temporaryFile("format = 1\n"),
            environment: ["STATE_DIRECTORY": "/var/lib/apheresisd:/var/lib/other"])
        #expect(config.stateDirectory == "/var/lib/apheresisd")
        #expect(config.databasePath == "/var/lib/apheresisd/apheresisd.sqlite")
        #expect(config.logLevel == .info)
        #expect(config.devices.isEmpty)
        #expect(config.profiles == [LimitProfile.pediatricCMNC, LimitProfile.standard])
    }

    @Test func defaultsByHand() throws {
        let config = try DaemonConfiguration.load(
            path: try temporaryFile("format = 1\n[daemon]\ndatabase = \"/data/x.sqlite\"\n"), environment: [:])
        let cwd = FileManager.default.currentDirectoryPath
        #expect(config.stateDirectory == cwd + "/apheresisd-state")
        #expect(config.databasePath == "/data/x.sqlite")
    }

    @Test func missingFile() {
        #expect(throws: ConfigurationError.unreadable(path: "/nonexistent/apheresisd.toml", reason: "No such file or directory")) {
            try DaemonConfiguration.load(path: "/nonexistent/apheresisd.toml", environment: [:])
        }
    }

    @Test func invalidFileThrowsEveryProblem() throws {
        let path = try temporaryFile("format = 1\n[daemon]\nlog_level = \"loud\"\n[[device]]\nname = \"a\"\n")
        do {
            _ = try DaemonConfiguration.load(path: path, environment: [:])
            Issue.record("loaded an invalid file")
        } catch {
            guard case .invalid(let p, let problems) = error else { Issue.record("\(error)"); return }
            #expect(p == path)
            #expect(problems.map(\.line) == [3, 4])
            #expect(problems.allSatisfy { $0.file == path })
            #expect(error.description.contains("2 problems"))
        }
    }

    @Test func demo() {
        let config = DaemonConfiguration.demo(workingDirectory: "/home/unit", simulatorScenario: "/opt/scenarios/normal.toml")
        #expect(config.stateDirectory == "/home/unit/apheresisd-state")
        #expect(config.databasePath == "/home/unit/apheresisd-state/apheresisd.sqlite")
        #expect(config.logLevel == .info)
        #expect(config.devices == [
            DeviceConfiguration(
                name: "optia-sim", transport: .simulator(scenario: "/opt/scenarios/normal.toml", speed: 60, seed: 1))
        ])
        #expect(config.devices[0].transport.keyword == "simulator")
        #expect(config.profiles == [LimitProfile.pediatricCMNC, LimitProfile.standard])
    }

    @Test func usbIDs() {
        #expect(USBDeviceID("0403:6001") == USBDeviceID(vendorID: 0x0403, productID: 0x6001))
        #expect(USBDeviceID("10C4:EA60")?.description == "10c4:ea60")
        #expect(USBDeviceID("403:6001") == nil)
        #expect(USBDeviceID("+403:6001") == nil, "four characters, but a sign is not a hex digit")
        #expect(USBDeviceID("0403-6001") == nil)
    }
}
