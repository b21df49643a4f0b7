import ApheresisVersion
import Foundation
import LiveState
import Testing

@testable import RecordStore
@testable import WebEdge

/// `/metrics` rendered in process, checked with Debian's `promtool` (a real child process), and the
/// example alert rules in monitoring/ checked and exercised with `promtool check rules` and
/// `promtool test rules`.
@Suite("Metrics and the example alert rules")
struct MetricsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let rules = repository.appendingPathComponent("monitoring/apheresisd-alerts.yml").path

    static func device(_ name: String, serial: String?, state: String = "up") -> DeviceStatus {
        DeviceStatus(
            name: name, link: "/dev/ttyUSB0", linkState: state, serialNumber: serial, lastActivityAgeSeconds: 0.5, reconnects: 1,
            lastError: nil, messagesStored: 12, duplicates: 0, quarantined: 0, framesRejected: 0)
    }

    static func alarm(serial: String, code: String, level: String) -> AlarmRow {
        AlarmRow(
            id: 1, deviceSerial: serial, runRef: 1, code: code, level: level, state: .raised, value: 9, limit: 10, unit: "ratio",
            message: nil, raisedAtUnixMilliseconds: 0, raisedRunTimeMinutes: 1, acknowledgedBy: nil, acknowledgedAtUnixMilliseconds: nil,
            clearedAtUnixMilliseconds: nil, clearReason: nil)
    }

    /// Everything the daemon can report at once: two devices, an alarm, HL7, the central record.
    static func everything(_ metrics: DaemonMetrics, alarms: [AlarmRow]) -> String {
        var central = CentralReplicationStatus(endpoint: "postgresql://central/apheresis", site: "ws1", since: .zero)
        central.state = .up
        central.lastCommitAt = .seconds(1)
        central.dinReserve = ["A9999/26": 40]
        metrics.observeRequest(method: "GET", route: "/api/v1/runs", status: 200, duration: .milliseconds(3))
        return metrics.render(
            devices: [device("optia-1", serial: "1OPT00417"), device("optia-2", serial: nil, state: "down")], activeAlarms: alarms,
            raisedByCode: ["AC_RATIO": 1], storeFailure: nil, storeFreeBytes: 10_000_000_000,
            hl7Queues: [
                HL7DestinationStatus(
                    name: "his", address: "his:2575", active: true, feeds: ["observations"], pending: 2, oldestPendingAtUnixMilliseconds: nil,
                    delivered: 5, setAside: 0, lastDeliveredAtUnixMilliseconds: nil, lastError: nil)
            ],
            central: central, monotonicNow: .seconds(3), storeSizes: (database: 81920, wal: 4096),
            process: ProcessFigures.readSynchronously())
    }

    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1).split(separator: " ").first ?? "")
        }
        return nil
    }

    static func promtool(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
        p.arguments = arguments
        p.currentDirectoryURL = repository.appendingPathComponent("monitoring")
        let output = Pipe()
        p.standardOutput = output
        p.standardError = output
        let input = Pipe()
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    @Test func noAlarmIsAZeroPerDeviceAndLevelNotAMissingSeries() throws {
        let text = Self.everything(DaemonMetrics(), alarms: [])
        for device in ["optia-1", "optia-2"] {
            for level in ["warning", "alarm"] {
                #expect(Self.value(text, #"apheresisd_alarms_active{device="\#(device)",level="\#(level)"}"#) == 0, "\(text)")
            }
        }
        let check = try Self.promtool(["check", "metrics"], stdin: text)
        #expect(check.status == 0, "\(check.output)\n\(text)")
    }

    @Test func devicesAreNamedByTheirConfiguredNameEverywhere() throws {
        let metrics = DaemonMetrics()
        var text = Self.everything(
            metrics, alarms: [Self.alarm(serial: "1OPT00417", code: "AC_RATIO", level: "alarm"), Self.alarm(serial: "9ZZZ", code: "AIR", level: "warning")])
        // The serial of a configured link becomes its name; one no link reported stands for itself.
        #expect(Self.value(text, #"apheresisd_alarms_active{device="optia-1",level="alarm"}"#) == 1, "\(text)")
        #expect(Self.value(text, #"apheresisd_alarms_active_by_code{device="optia-1",code="AC_RATIO",level="alarm"}"#) == 1)
        #expect(Self.value(text, #"apheresisd_alarms_active{device="9ZZZ",level="warning"}"#) == 1)
        let labelNames = Set(text.matches(of: /[{,]([a-z_]+)="/).map { String($0.1) })
        #expect(!labelNames.contains("device_serial") && !labelNames.contains("serial"), "\(labelNames)")
        // A cleared alarm's series drops to 0 and stays.
        text = Self.everything(metrics, alarms: [])
        #expect(Self.value(text, #"apheresisd_alarms_active_by_code{device="optia-1",code="AC_RATIO",level="alarm"}"#) == 0)
        #expect(Self.value(text, #"apheresisd_alarms_active{device="9ZZZ",level="warning"}"#) == 0)
    }

    @Test func buildProcessStoreAndHTTPFiguresAreThere() throws {
        let text = Self.everything(DaemonMetrics(), alarms: [])
        #expect(Self.value(text, #"apheresisd_build_info{version="\#(ApheresisVersion.string)"}"#) == 1)
        #expect(Self.value(text, #"apheresisd_store_size_bytes{file="database"}"#) == 81920)
        #expect(Self.value(text, #"apheresisd_store_size_bytes{file="wal"}"#) == 4096)
        #expect(Self.value(text, #"apheresisd_http_requests_total{method="GET",route="/api/v1/runs",status="200"}"#) == 1)
        #expect(Self.value(text, #"apheresisd_http_request_duration_seconds_count{method="GET",route="/api/v1/runs"}"#) == 1)
        #expect((Self.value(text, "process_resident_memory_bytes") ?? 0) > 1_000_000)
        #expect((Self.value(text, "process_open_fds") ?? 0) >= 3)
        let start = try #require(Self.value(text, "process_start_time_seconds"))
        #expect(abs(start - Date().timeIntervalSince1970) < 24 * 3600, "\(start)")
    }

    @Test func procStatIsReadPastACommandNameWithSpacesAndParentheses() throws {
        // proc(5): pid (comm) state ppid ... utime(14) stime(15) ... num_threads(20) ... starttime(22) vsize(23) rss(24)
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 7 0 1000 123456789 2048 18446744073709551615"
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n"
        let p = try #require(
            ProcessFigures.parse(stat: stat, bootTimeSeconds: 1_700_000_000, ticksPerSecond: 100, pageBytes: 4096, openDescriptors: 9, limits: limits))
        #expect(p.cpuSeconds == 4)
        #expect(p.threads == 7)
        #expect(p.startTimeSeconds == 1_700_000_010)
        #expect(p.virtualBytes == 123_456_789)
        #expect(p.residentBytes == 2048 * 4096)
        #expect(p.maxDescriptors == 1024)
        #expect(ProcessFigures.parse(stat: "garbage", bootTimeSeconds: 0, ticksPerSecond: 100, pageBytes: 4096, openDescriptors: 0, limits: nil) == nil)
    }

    @Test func theExampleAlertRulesAreValidAndFireWhenTheyShould() throws {
        let check = try Self.promtool(["check", "rules", Self.rules])
        #expect(check.status == 0, "\(check.output)")
        let test = try Self.promtool(["test", "rules", "apheresisd-alerts.test.yml"])
        #expect(test.status == 0, "\(test.output)")
    }

    /// A rule on a metric the daemon does not export never fires: a quiet error.
    @Test func everyMetricTheRulesUseIsOneTheDaemonExports() throws {
        let rules = try String(contentsOfFile: Self.rules, encoding: .utf8)
        let used = Set(rules.matches(of: /\b(apheresisd_[a-z0-9_]+)/).map { String($0.1) })
        #expect(used.count >= 8, "\(used)")
        let text = Self.everything(DaemonMetrics(), alarms: [Self.alarm(serial: "1OPT00417", code: "AC_RATIO", level: "alarm")])
        let exported = Set(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init) })
        #expect(used.subtracting(exported).isEmpty, "not exported: \(used.subtracting(exported).sorted())")
    }
}
