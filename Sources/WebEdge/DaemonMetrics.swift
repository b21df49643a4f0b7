import ApheresisCore
import ApheresisVersion
import LiveState
import Prometheus
import RecordStore
import Synchronization

/// `/metrics` in the Prometheus text format (swift-prometheus). Counters follow the daemon's own
/// counts (since it started), brought up to date at each scrape; commit latency is observed as it
/// happens. Every metric is made with help text: `promtool check metrics` refuses metrics without.
public final class DaemonMetrics: CommitObserver {
    let registry = PrometheusCollectorRegistry()
    private let seen = Mutex(Seen())

    private struct Seen {
        var counts: [String: Int] = [:]
        var alarmLabels: Set<[String]> = []
        var alarmLevelLabels: Set<[String]> = []
        var cpuSeconds: Double = 0
    }

    public init() {}

    /// A full metric name as one descriptor part (the name already ends in its unit).
    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    static let commitBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    static let requestBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// One HTTP request answered (EdgeResponder): `route` is the matched route's pattern.
    func observeRequest(method: String, route: String, status: Int, duration: Duration) {
        registry.makeCounter(
            descriptor: Self.descriptor("apheresisd_http_requests_total", "HTTP requests answered, by method, route pattern and status."),
            labels: [("method", method), ("route", route), ("status", String(status))]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: Self.descriptor(
                "apheresisd_http_request_duration_seconds", "Time from an HTTP request's arrival until its handler answered (status and headers), by method and route pattern."),
            labels: [("method", method), ("route", route)], buckets: Self.requestBuckets
        ).record(duration)
    }

    /// One store commit of a device's message, from the start of the transaction until it is durable.
    public func observeCommit(device: String, duration: Duration) {
        registry.makeDurationHistogram(
            descriptor: Self.descriptor(
                "apheresisd_store_commit_duration_seconds",
                "Time to store a message durably (one SQLite transaction, synchronous=FULL), per device."),
            labels: [("device", device)], buckets: Self.commitBuckets
        ).record(duration)
    }

    static let linkStates = ["connecting", "up", "stale", "down", "reconnecting"]

    /// Brings every metric up to date, then renders them.
    func render(
        devices: [DeviceStatus], activeAlarms: [AlarmRow], raisedByCode: [String: Int], storeFailure: StoreFailureStatus? = nil,
        storeFreeBytes: UInt64? = nil, hl7Queues: [HL7DestinationStatus] = [], hl7Links: [HL7LinkBoard.Destination] = [],
        central: CentralReplicationStatus? = nil, monotonicNow: Duration = .zero,
        storeSizes: (database: UInt64, wal: UInt64)? = nil, process: ProcessFigures? = nil
    ) -> String {
        registry.makeGauge(
            descriptor: Self.descriptor("apheresisd_build_info", "Always 1; the labels say which build of apheresisd answers."),
            labels: [("version", ApheresisVersion.string)]
        ).set(1.0)
        if let process { record(process) }
        if let storeSizes {
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_store_size_bytes", "The record store's files on disk, in bytes: the database and its write-ahead log."),
                labels: [("file", "database")]
            ).set(Double(storeSizes.database))
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_store_size_bytes", "The record store's files on disk, in bytes: the database and its write-ahead log."),
                labels: [("file", "wal")]
            ).set(Double(storeSizes.wal))
        }
        if let central {
            let labels = [("site", central.site)]
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_central_up", "1 while the central database is connected and replicating, else 0."),
                labels: labels
            ).set(central.state == .up ? 1.0 : 0.0)
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_central_backlog", "Replication log entries not yet committed in the central database."),
                labels: labels
            ).set(Double(central.backlog))
            count("apheresisd_central_rows_replicated_total", labels, central.rowsReplicated, "Rows committed in the central database since start.")
            if let last = central.lastCommitAt {
                registry.makeGauge(
                    descriptor: Self.descriptor("apheresisd_central_last_commit_age_seconds", "Seconds since the last batch the central database committed."),
                    labels: labels
                ).set((monotonicNow - last).seconds)
            }
            for (key, free) in central.dinReserve {
                registry.makeGauge(
                    descriptor: Self.descriptor("apheresisd_din_reserve", "DIN sequences this workstation holds in central blocks and has not issued, per facility/year."),
                    labels: labels + [("facility_year", key)]
                ).set(Double(free))
            }
        }
        let links = Dictionary(uniqueKeysWithValues: hl7Links.map { ($0.name, $0) })
        for q in hl7Queues {
            let labels = [("destination", q.name)]
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_hl7_backlog", "HL7 messages queued for the destination and not yet accepted."),
                labels: labels
            ).set(Double(q.pending))
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_hl7_set_aside", "HL7 messages the destination refused (AR, or AE too often), kept aside."),
                labels: labels
            ).set(Double(q.setAside))
            count("apheresisd_hl7_delivered_total", labels, q.delivered, "HL7 messages the destination accepted.")
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_hl7_link_up", "1 while the connection to the HL7 destination is up, else 0."),
                labels: labels
            ).set(links[q.name]?.state == .up ? 1.0 : 0.0)
        }
        registry.makeGauge(
            descriptor: Self.descriptor(
                "apheresisd_store_failing", "1 while the record store refuses writes (full disk, read-only, I/O error): messages are not acknowledged."))
            .set(storeFailure == nil ? 0.0 : 1.0)
        if let storeFreeBytes {
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_store_free_bytes", "Free space on the record store's volume, for its user, in bytes."))
                .set(Double(storeFreeBytes))
        }
        for d in devices {
            let labels = [("device", d.name)]
            count("apheresisd_messages_stored_total", labels, d.messagesStored, "Messages stored (each once), per device.")
            count("apheresisd_messages_duplicate_total", labels, d.duplicates, "Messages received again and acknowledged without storing, per device.")
            count("apheresisd_messages_quarantined_total", labels, d.quarantined, "Messages kept in quarantine because they did not parse, per device.")
            count("apheresisd_frames_rejected_total", labels, d.framesRejected, "Frames answered with NAK (checksum, frame number or framing), per device.")
            count("apheresisd_reconnects_total", labels, d.reconnects, "Times the link was opened again after a loss, per device.")
            registry.makeGauge(descriptor: Self.descriptor("apheresisd_link_up", "1 while the device's link is up, else 0."), labels: labels)
                .set(d.linkState == "up" ? 1.0 : 0.0)
            for state in Self.linkStates {
                registry.makeGauge(
                    descriptor: Self.descriptor(
                        "apheresisd_link_state", "1 for the link's current state (connecting, up, stale, down, reconnecting), else 0."),
                    labels: [("device", d.name), ("state", state)]
                ).set(d.linkState == state ? 1.0 : 0.0)
            }
            if let age = d.lastActivityAgeSeconds {
                registry.makeGauge(
                    descriptor: Self.descriptor(
                        "apheresisd_link_last_activity_age_seconds", "Seconds since the last byte arrived from the separator (or its last export file was read)."),
                    labels: labels
                ).set(age)
            }
        }
        // Alarms carry the separator's serial; metrics name a device by its configured name, as the
        // link metrics do (a serial no configured link has reported stands for itself).
        var nameBySerial: [String: String] = [:]
        for d in devices { if let serial = d.serialNumber { nameBySerial[serial] = d.name } }
        func deviceName(_ serial: String) -> String { nameBySerial[serial] ?? serial }
        // Per device and level: present at 0 for every configured device, so that "no alarm" is a
        // value, not a missing series (an alert on it cannot tell absence from calm otherwise).
        var byLevel: [[String]: Int] = [:]
        for d in devices { for level in AlarmLevel.allCases { byLevel[[d.name, level.rawValue]] = 0 } }
        var byCode: [[String]: Int] = [:]
        for a in activeAlarms {
            byLevel[[deviceName(a.deviceSerial), a.level], default: 0] += 1
            byCode[[deviceName(a.deviceSerial), a.code, a.level], default: 0] += 1
        }
        // Label sets seen before drop to 0, never vanish mid-series.
        let (levelSets, codeSets) = seen.withLock { s in
            s.alarmLevelLabels.formUnion(byLevel.keys)
            s.alarmLabels.formUnion(byCode.keys)
            return (s.alarmLevelLabels, s.alarmLabels)
        }
        for key in levelSets {
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_alarms_active", "Alarms raised and not cleared, by device and level (0 when none)."),
                labels: [("device", key[0]), ("level", key[1])]
            ).set(Double(byLevel[key] ?? 0))
        }
        for key in codeSets {
            registry.makeGauge(
                descriptor: Self.descriptor("apheresisd_alarms_active_by_code", "Alarms raised and not cleared, by device, code and level."),
                labels: [("device", key[0]), ("code", key[1]), ("level", key[2])]
            ).set(Double(byCode[key] ?? 0))
        }
        for (code, total) in raisedByCode {
            count("apheresisd_alarms_raised_total", [("code", code)], total, "Alarms raised since the store began, by code.")
        }
        return registry.emitToString()
    }

    /// The standard `process_*` metrics (the names Prometheus' client libraries use).
    private func record(_ p: ProcessFigures) {
        let gauges: [(String, String, Double)] = [
            ("process_resident_memory_bytes", "Resident memory size in bytes.", p.residentBytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes.", p.virtualBytes),
            ("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", p.startTimeSeconds),
            ("process_open_fds", "Number of open file descriptors.", p.openDescriptors),
            ("process_threads", "Number of operating-system threads.", p.threads),
        ]
        for (name, help, value) in gauges { registry.makeGauge(descriptor: Self.descriptor(name, help)).set(value) }
        if let max = p.maxDescriptors {
            registry.makeGauge(descriptor: Self.descriptor("process_max_fds", "Maximum number of open file descriptors.")).set(max)
        }
        // The kernel's total, followed as a counter: incremented by what it grew since the last scrape.
        let grown = seen.withLock { s -> Double in
            let delta = max(0, p.cpuSeconds - s.cpuSeconds)
            s.cpuSeconds = max(s.cpuSeconds, p.cpuSeconds)
            return delta
        }
        let cpu = registry.makeCounter(descriptor: Self.descriptor("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
        if grown > 0 { cpu.increment(by: grown) }
    }

    /// A counter that follows an absolute count: increments by what it grew since the last scrape.
    private func count(_ name: String, _ labels: [(String, String)], _ value: Int, _ help: String) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta = seen.withLock { s -> Int in
            let previous = s.counts[key] ?? 0
            s.counts[key] = max(previous, value)
            return value - previous
        }
        let counter = registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
        if delta > 0 { counter.increment(by: Int64(delta)) }
    }
}
