import DaemonConfiguration
import Foundation
import Testing

typealias Kind = ConfigurationProblem.Kind

/// (kind, line, key path) of each problem, in the order reported.
func summary(_ text: String) -> [String] {
    DaemonConfiguration.check(text: text, file: "test.toml").map { "\($0.kind) \($0.line ?? 0) \($0.keyPath)" }
}

func problems(_ text: String) -> [ConfigurationProblem] {
    DaemonConfiguration.check(text: text, file: "")
}

@Suite struct CheckingProblems {
    /// Line numbers on the left are the file's.
    static let manyProblems = """
        format = 2
        frmat = 1
        [daemon]
        log_level = "verbose"
        state_directroy = "/x"

        [[device]]
        name = "optia-1"
        transport = "serial"
        path = "/dev/ttyUSB0"
        baud = 250000

        [[device]]
        name = "optia-1"
        transport = "serial"
        path = "/dev/ttyUSB0"
        buad = 9600

        [[device]]
        name = "bridge"
        transport = "tcp"
        host = "10.1.2.3"
        baud = 9600

        [[device]]
        name = "Optia 4"
        transport = "usb"

        [[device]]
        transport = "export"

        [[device]]
        name = "sim"
        transport = "simulator"
        scenario = "a.toml"
        speed = "fast"

        [[profile]]
        name = "pediatric-cmnc"
        procedures = ["CMNC", "cmnc", "LDL"]
        ratio_warn_deviation = 2.5
        ratio_alarm_deviation = 2.0
        citrate_load_alarm_mg_kg_min = 1.5
        hysteresis_percent = 80
        max_weight_kg = 40
        min_weight_kg = 50
        """

    @Test func everyProblemIsReportedWithItsLine() {
        #expect(summary(Self.manyProblems) == [
            "unsupportedFormat 1 format",
            "unknownKey 2 frmat",
            "invalidValue 4 daemon.log_level",
            "unknownKey 5 daemon.state_directroy",
            "outOfRange 11 device[1].baud",
            "duplicateName 14 device[2].name",
            "sharedEndpoint 16 device[2].path",
            "unknownKey 17 device[2].buad",
            "missingKey 19 device[3].port",
            "inapplicableKey 23 device[3].baud",
            "invalidValue 26 device[4].name",
            "unknownTransport 27 device[4].transport",
            "missingKey 29 device[5].name",
            "missingKey 29 device[5].directory",
            "wrongType 36 device[6].speed",
            "unknownProcedure 40 profile[1].procedures",
            "unknownProcedure 40 profile[1].procedures",
            "ordering 42 profile[1].ratio_alarm_deviation",
            "ordering 43 profile[1].citrate_load_alarm_mg_kg_min",
            "outOfRange 44 profile[1].hysteresis_percent",
            "ordering 45 profile[1].max_weight_kg",
        ])
    }

    @Test func messagesAnAdminUnderstands() {
        let found = DaemonConfiguration.check(text: Self.manyProblems, file: "")
        let text = found.map(\.description)
        #expect(text.contains("line 11: device[1].baud: 250000 is not a serial speed this interface allows (1200 to 115200)"))
        #expect(text.contains("line 1: format: format 2 is not supported by this apheresisd, which reads format 1"))
        #expect(text.contains { $0.hasPrefix("line 2: frmat: ") && $0.hasSuffix("did you mean format?") })
        #expect(text.contains { $0.hasPrefix("line 5: daemon.state_directroy:") && $0.hasSuffix("did you mean state_directory?") })
        #expect(text.contains { $0.hasPrefix("line 17: device[2].buad:") && $0.hasSuffix("did you mean baud?") })
        #expect(text.contains { $0.hasPrefix("line 27: device[4].transport: unknown transport \"usb\"") })
        #expect(text.contains { $0.contains("device[2].path: /dev/ttyUSB0 is already used by device[1] (\"optia-1\") on line 7") })
        #expect(text.contains { $0.contains("device[2].name: the name \"optia-1\" is already used by device[1] on line 8") })
        #expect(text.contains { $0.contains("\"cmnc\"") && $0.contains("in capitals") })
        #expect(text.contains { $0.contains("1.5 mg/kg/min") && $0.contains("1.8 mg/kg/min (default)") })
        #expect(text.contains { $0.contains("baud applies only to serial devices; this device's transport is tcp") })
        // Columns where the key starts.
        #expect(found.first { $0.keyPath == "device[1].baud" }?.column == 1)
        #expect(found.allSatisfy { $0.file == "" })
    }

    @Test func fileNameLeadsTheDescription() {
        let found = DaemonConfiguration.check(text: "format = 1\nbogus = 2\n", file: "/etc/apheresisd/apheresisd.toml")
        #expect(found.map(\.description) == ["/etc/apheresisd/apheresisd.toml: line 2: bogus: \"bogus\" is not a setting of the file (top level)"])
    }

    @Test func syntaxErrorHasTOMLKitsLineAndColumn() {
        let found = problems("format = 1\n[daemon]\nlog_level = \"info\n")
        #expect(found.count == 1)
        #expect(found.first?.kind == .syntax)
        #expect(found.first?.line == 3)
        #expect(found.first?.column != nil)
        #expect(found.first?.message.hasPrefix("not valid TOML") == true)
    }

    @Test func duplicateKeyIsASyntaxError() {
        #expect(summary("format = 1\n[[device]]\nname = \"a\"\nname = \"b\"\n").first?.hasPrefix("syntax 4") == true)
    }

    @Test func missingFormat() {
        #expect(summary("[daemon]\nlog_level = \"info\"\n") == ["missingFormat 1 format"])
        #expect(problems("").first?.message.contains("format = 1") == true)
    }

    @Test func formatOfTheWrongType() {
        #expect(summary("format = \"1\"\n") == ["wrongType 1 format"])
        #expect(problems("format = \"1\"\n").first?.message.contains("remove the quotes") == true)
    }

    @Test func wrongTypes() {
        let text = """
            format = 1
            [[device]]
            name = "bridge"
            transport = "tcp"
            host = "bridge.local"
            port = "4001"

            [[profile]]
            name = "x"
            procedures = "CMNC"
            max_weight_kg = true
            """
        #expect(summary(text) == [
            "wrongType 6 device[1].port", "wrongType 10 profile[1].procedures", "wrongType 11 profile[1].max_weight_kg",
        ])
        let found = problems(text)
        #expect(found[0].message == "must be a whole number, but is the text \"4001\"; remove the quotes")
        #expect(found[1].message.contains("write [\"CMNC\"]"))
    }

    @Test func singleTableInsteadOfArray() {
        #expect(summary("format = 1\n\n[device]\nname = \"a\"\n") == ["wrongType 3 device"])
        #expect(summary("format = 1\ndaemon = 3\n") == ["wrongType 2 daemon"])
    }

    @Test func missingKeysPerTransport() {
        let text = """
            format = 1
            [[device]]
            name = "a"
            transport = "serial"

            [[device]]
            name = "b"
            transport = "pty"

            [[device]]
            name = "c"
            transport = "tcp"

            [[device]]
            name = "d"
            transport = "export"

            [[device]]
            name = "e"
            transport = "simulator"

            [[device]]
            name = "f"
            """
        #expect(summary(text) == [
            "missingKey 2 device[1].path",
            "missingKey 6 device[2].path",
            "missingKey 10 device[3].host", "missingKey 10 device[3].port",
            "missingKey 14 device[4].directory",
            "missingKey 18 device[5].scenario",
            "missingKey 22 device[6].transport",
        ])
    }

    @Test func serialPathAndUSBMatchConflict() {
        let text = """
            format = 1
            [[device]]
            name = "a"
            transport = "serial"
            path = "/dev/ttyUSB0"
            usb_serial = "A10K3XYZ"
            usb_vid_pid = "0403-6001"
            """
        #expect(summary(text) == ["conflict 6 device[1].usb_serial", "invalidValue 7 device[1].usb_vid_pid"])
    }

    @Test func sharedEndpoints() {
        let text = """
            format = 1
            [[device]]
            name = "a"
            transport = "tcp"
            host = "Bridge.local"
            port = 4001
            [[device]]
            name = "b"
            transport = "tcp"
            host = "bridge.local"
            port = 4001
            [[device]]
            name = "c"
            transport = "serial"
            usb_serial = "X1"
            [[device]]
            name = "d"
            transport = "serial"
            usb_serial = "X1"
            [[device]]
            name = "e"
            transport = "export"
            directory = "/srv/x/"
            [[device]]
            name = "f"
            transport = "export"
            directory = "/srv/x"
            [[device]]
            name = "g"
            transport = "pty"
            path = "/dev/pts/1"
            [[device]]
            name = "h"
            transport = "serial"
            path = "/dev/pts/1"
            """
        #expect(summary(text) == [
            "sharedEndpoint 11 device[2].port", "sharedEndpoint 19 device[4].usb_serial",
            "sharedEndpoint 27 device[6].directory", "sharedEndpoint 35 device[8].path",
        ])
    }

    @Test func outOfRangeValues() {
        let text = """
            format = 1
            [[device]]
            name = "a"
            transport = "tcp"
            host = "h"
            port = 70000
            reconnect_initial_ms = 5
            silence_timeout_s = 0
            [[device]]
            name = "b"
            transport = "serial"
            path = "/dev/ttyUSB0"
            baud = 14400
            [[device]]
            name = "c"
            transport = "simulator"
            scenario = "s.toml"
            speed = 0
            seed = -1
            [[profile]]
            name = "p"
            collect_target_ml = -5
            """
        #expect(summary(text) == [
            "outOfRange 6 device[1].port", "outOfRange 7 device[1].reconnect_initial_ms",
            "outOfRange 8 device[1].silence_timeout_s", "outOfRange 13 device[2].baud",
            "outOfRange 18 device[3].speed", "outOfRange 19 device[3].seed",
            "outOfRange 22 profile[1].collect_target_ml",
        ])
        #expect(problems(text)[3].message.contains("not a standard serial speed"))
        #expect(problems(text)[0].message == "70000 is outside the allowed range (1 to 65535)")
    }

    @Test func reconnectOrdering() {
        let text = """
            format = 1
            [[device]]
            name = "a"
            transport = "pty"
            path = "/dev/pts/1"
            reconnect_initial_ms = 5000
            reconnect_max_s = 2
            """
        #expect(summary(text) == ["ordering 7 device[1].reconnect_max_s"])
    }

    @Test func relativeDevicePathsAndBadNames() {
        let text = """
            format = 1
            [[device]]
            name = "-a"
            transport = "pty"
            path = "pts/1"
            [[profile]]
            [[profile]]
            name = "x"
            [[profile]]
            name = "x"
            """
        #expect(summary(text) == [
            "invalidValue 3 device[1].name", "invalidValue 5 device[1].path",
            "missingKey 6 profile[1].name", "duplicateName 10 profile[3].name",
        ])
    }

    @Test func keysLaterInTheFileAreFoundInTheirOwnTable() {
        // The same key in different tables: each gets its own line.
        let text = """
            format = 1
            [[device]]
            name = "a"
            transport = "serial"
            path = "/dev/ttyUSB0"
            baud = 1
            [[device]]
            name = "b"
            transport = "serial"
            # baud = 2 in a comment is not a key
            path = "/dev/ttyUSB1"
            baud = 2
            """
        #expect(summary(text) == ["outOfRange 6 device[1].baud", "outOfRange 12 device[2].baud"])
    }

    @Test func multilineValuesDoNotConfuseTheLines() {
        let text = """
            format = 1
            [[profile]]
            name = "p"
            procedures = [
              "CMNC",
              "XYZ",
            ]
            hysteresis_percent = 99
            """
        #expect(summary(text) == ["unknownProcedure 4 profile[1].procedures", "outOfRange 8 profile[1].hysteresis_percent"])
    }

    /// Values with which a limit could never be judged or never clear are refused, naming the key,
    /// the profile and why.
    @Test func profilesThatCouldNeverJudgeOrClearAreRefused() {
        let text = """
            format = 1
            [[profile]]
            name = "slow"
            expected_tick_interval_s = 300
            stale_after_tick_intervals = 1
            ratio_agreement_alarm_percent = 100
            hysteresis_percent = 100
            ac_ratio_set_default = 0
            [[profile]]
            name = "fast"
            expected_tick_interval_s = 0.5
            """
        #expect(summary(text) == [
            "outOfRange 4 profile[1].expected_tick_interval_s", "outOfRange 5 profile[1].stale_after_tick_intervals",
            "outOfRange 6 profile[1].ratio_agreement_alarm_percent", "outOfRange 7 profile[1].hysteresis_percent",
            "outOfRange 8 profile[1].ac_ratio_set_default", "outOfRange 11 profile[2].expected_tick_interval_s",
        ])
        let found = problems(text).map(\.description)
        #expect(found.contains {
            $0.contains("profile[1].expected_tick_interval_s: 300 s is outside the allowed range (1 to 60 s) for profile \"slow\": ")
                && $0.contains("TICK every 1 to 60 s")
        }, "\(found)")
        #expect(found.contains { $0.contains("stale_after_tick_intervals") && $0.contains("jitter") })
        #expect(found.contains { $0.contains("ratio_agreement_alarm_percent") && $0.contains("stalled AC pump") })
        #expect(found.contains { $0.contains("hysteresis_percent") && $0.contains("never clear") })
        #expect(found.contains { $0.contains("profile[2].expected_tick_interval_s: 0.5 s") && $0.contains("for profile \"fast\"") })
        // The shortest allowed values still judge: a window below the tick spacing is judged over that spacing.
        let shortest = """
            format = 1
            [[profile]]
            name = "tight"
            expected_tick_interval_s = 60
            ratio_window_s = 5
            ac_inf_window_s = 5
            prediction_window_s = 5
            stale_after_tick_intervals = 2
            hysteresis_percent = 0
            """
        #expect(summary(shortest).isEmpty)
    }

    @Test func suggestions() {
        #expect(problems("format = 1\n[[device]]\nname = \"a\"\ntransport = \"seriall\"\n").first?.message.contains("did you mean serial?") == true)
        #expect(problems("format = 1\n[daemon]\nlog_level = \"warn\"\n").first?.message.contains("did you mean") == true)
        #expect(problems("format = 1\nwibble = 1\n").first?.message.contains("did you mean") == false)
    }
}

@Suite struct ShippedFiles {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func defaultConfigurationHasNoProblems() throws {
        let path = Self.root.appendingPathComponent("systemd/apheresisd.toml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(DaemonConfiguration.check(text: text, file: path) == [])
        let config = try DaemonConfiguration.load(path: path, environment: ["STATE_DIRECTORY": "/var/lib/apheresisd"])
        #expect(config.databasePath == "/var/lib/apheresisd/apheresisd.sqlite")
    }

    /// Each commented example device in the default file, uncommented alone, is sound.
    @Test func defaultConfigurationExamplesAreSound() throws {
        let text = try String(contentsOfFile: Self.root.appendingPathComponent("systemd/apheresisd.toml").path, encoding: .utf8)
        let blocks = text.components(separatedBy: "# [[device]]\n").dropFirst().map { block in
            block.split(separator: "\n").prefix { $0.hasPrefix("# ") && $0.contains(" = ") }.map { $0.dropFirst(2) }
                .joined(separator: "\n")
        }
        #expect(blocks.count == 6)
        for block in blocks {
            #expect(DaemonConfiguration.check(text: "format = 1\n[[device]]\n" + block + "\n", file: "") == [], "\(block)")
        }
    }

    /// Every ```toml block of docs/configuration.md is a complete, sound file.
    @Test func documentedExamplesHaveNoProblems() throws {
        let text = try String(
            contentsOfFile: Self.root.appendingPathComponent("docs/configuration.md").path, encoding: .utf8)
        let blocks = text.components(separatedBy: "```toml\n").dropFirst().map { $0.components(separatedBy: "```").first ?? "" }
        #expect(blocks.count >= 3)
        for block in blocks {
            #expect(DaemonConfiguration.check(text: block, file: "docs") == [], "\(block)")
        }
    }
}
