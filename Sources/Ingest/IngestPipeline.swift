import ApheresisCore
import Foundation
import LiveState
import Logging
import RecordStore
import SeparatorProtocol

/// Everything that happens to one device's input before it is answered: decode by the link's
/// dialect (or quarantine), judge against the run's limits, commit message, sample and alarm
/// changes in one transaction, then publish (journal, live state, stream). One actor per device
/// link; live messages, export files, the clock, operator acknowledgements and preset changes all
/// take their turn here, so a run's watcher sees them in one order. A watcher's new state is kept
/// only once the store has the message, so a duplicate never counts twice.
public actor IngestPipeline {
    public struct Settings: Sendable {
        /// The configured link name (journal field, live state, the store's device name).
        public var deviceName: String
        public var dialect: SeparatorDialect
        public var profiles: [LimitProfile]
        /// An open run that hears nothing for this long is closed (docs/limits-implementation.md):
        /// a run never ends by itself otherwise when its RUN_END is lost for good.
        public var openRunTimeout: Duration
        /// Devices stored before link names were kept (an earlier build) are this link's when it is
        /// the only wire link configured.
        public var adoptUnnamedDevices: Bool

        public init(
            deviceName: String, dialect: SeparatorDialect = .standard, profiles: [LimitProfile],
            openRunTimeout: Duration = .seconds(12 * 3600), adoptUnnamedDevices: Bool = false
        ) {
            self.deviceName = deviceName
            self.dialect = dialect
            self.profiles = profiles
            self.openRunTimeout = openRunTimeout
            self.adoptUnnamedDevices = adoptUnnamedDevices
        }
    }

    /// Where the pipeline reports: the live state the web edge reads. Each part is optional, so a
    /// test or a benchmark can leave out what it does not look at.
    public struct Outlets: Sendable {
        public var health: HealthBoard
        public var feed: LiveFeed?
        public var watches: RunWatchBoard?
        public var commits: (any CommitObserver)?

        public init(health: HealthBoard, feed: LiveFeed? = nil, watches: RunWatchBoard? = nil, commits: (any CommitObserver)? = nil) {
            self.health = health
            self.feed = feed
            self.watches = watches
            self.commits = commits
        }
    }

    public nonisolated let settings: Settings
    let store: RecordStore
    let outlets: Outlets
    let logger: Logger
    var deviceName: String { settings.deviceName }
    var health: HealthBoard { outlets.health }

    /// One open run: its device and run id (run ids are the device's, so the serial is part of the key).
    struct RunKey: Hashable, Sendable {
        var serial: String
        var runID: String
    }

    var monitors: [RunKey: RunMonitor] = [:]
    /// The store's id of each run watched: from the commit that wrote its messages, or the restore.
    var runRefs: [RunKey: Int64] = [:]
    /// The store's id of each run's newest alarm per code, as the commits wrote them: the stream names
    /// alarms by id without reading them back.
    var alarmRefs: [RunKey: [String: Int64]] = [:]
    /// Each run's preset changes. The authority for the watchers: a watcher copy held across a store
    /// write may predate a change, so it is brought up to date before it is kept.
    var presetChanges: [RunKey: [RunPreset: Double]] = [:]
    /// When each watched run last had a message stored (monotonic), for the open-run timeout.
    var lastMessageAt: [RunKey: Duration] = [:]
    /// Alarm changes raised without a message (stale, link, timeouts) that the store refused, in
    /// order: the alarm is shown at once, and written before anything else of its run.
    var pendingAlarmChanges: [RunKey: [(changes: [AlarmChange], atUnixMilliseconds: Int64, monotonic: Duration)]] = [:]
    /// Runs known only from an export file whose alarms the store has not taken yet.
    var pendingExportAlarms: [PendingExportAlarms] = []
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    var serialNumber: String?
    /// The open runs could not be read at start: tried again on each clock tick until they are.
    var restorePending = false

    public init(settings: Settings, store: RecordStore, outlets: Outlets, logger: Logger) {
        self.settings = settings
        self.store = store
        self.outlets = outlets
        var logger = logger
        logger[metadataKey: "device"] = "\(settings.deviceName)"
        self.logger = logger
    }

    /// The one entry point for a device's input. A message may be acknowledged only when this
    /// returns `.handled`: it is then durably stored, known, or quarantined.
    public func ingest(_ arrival: Arrival) async -> IngestOutcome {
        await exclusively {
            switch arrival {
            case .message(let text, let receivedAt): await ingestMessage(text, now: receivedAt)
            case .exportFile(let file): await ingestExportFile(file)
            }
        }
    }

    private func ingestMessage(_ text: [UInt8], now: Duration) async -> IngestOutcome {
        let wall = DaemonClock.wallMilliseconds
        let message: SeparatorMessage
        do {
            message = try settings.dialect.decodeMessage(text)
        } catch {
            do {
                try await store.quarantine(raw: text, reason: error.description, deviceSerial: serialNumber, atUnixMilliseconds: wall)
            } catch {
                return storeFailed(error, doing: "quarantining a message that does not parse")
            }
            storeWrote()
            health.update(deviceName) { $0.quarantined += 1 }
            logger.error("quarantined a message that does not parse: \(error.description)", metadata: metadata())
            return .handled
        }
        if serialNumber != message.device.serialNumber {
            serialNumber = message.device.serialNumber
            let serial = message.device.serialNumber
            health.update(deviceName) { $0.serialNumber = serial }
        }

        let key = RunKey(serial: message.device.serialNumber, runID: message.order.runID)
        // Alarms raised while the store refused writes go first, so that the store sees them in order.
        guard await flushPending(key) else { return .retry }

        // Judge: the run's watcher, restored or started as needed, on a copy kept only once stored.
        var monitor = monitors[key]
        var startedNow = false
        if monitor == nil, message.kind != .runStart {
            switch await restoreMonitor(key, now: now) {
            case .watching(let restored): monitor = restored
            case .closed: break
            case .failed:
                // Not a new run: unanswered, the device sends it again and the restore is tried again.
                return .retry
            case .unknown:
                // The daemon started mid-run, or RUN_START was quarantined: watch from here with what
                // is known, and say that the start is missing.
                let profile = RunMonitor.profile(for: message, from: settings.profiles)
                monitor = RunMonitor(midRun: message, profile: profile, receivedAt: now)
                startedNow = true
            }
        }
        var transitions: [AlarmTransition] = []
        var quality: [DataQualityFlag] = []
        var judgements: [JudgementChange] = []
        var gaps: [TelemetryGap] = []
        var profileName: String?
        if message.kind == .runStart {
            if var watching = monitor {
                // A RUN_START resent after the run was already watched without it (cable pull, quarantine).
                watching.adoptRunStart(message)
                monitor = watching
            } else {
                let profile = RunMonitor.profile(for: message, from: settings.profiles)
                let started = RunMonitor(runStart: message, profile: profile, receivedAt: now)
                transitions = started.initialTransitions
                profileName = profile.name
                monitor = started
            }
        } else if var watching = monitor {
            if startedNow {
                transitions = watching.initialTransitions
                profileName = watching.profile.name
            }
            bringPresetsUpToDate(&watching, key: key)
            let evaluation = watching.ingest(message, receivedAt: now)
            transitions += evaluation.transitions
            quality = evaluation.sampleQuality
            judgements = evaluation.judgements
            gaps = evaluation.gaps
            monitor = watching
        }

        // Commit: message, sample, alarm steps and gaps in one transaction.
        var changes = transitions.compactMap(AlarmChange.init)
        let figures = monitor.map(ObservationFigures.init)
        let outcome: CommitOutcome
        do {
            let commitStarted = ContinuousClock.now
            var alarmsRefused = false
            do {
                outcome = try await store.commit(
                    message, raw: text, receivedAtUnixMilliseconds: wall, monotonic: now, profileName: profileName,
                    sampleQuality: quality.map(\.storeLabel), alarms: changes, gaps: gaps, linkName: deviceName,
                    observation: figures)
            } catch let error as RecordStoreError where error.isAlarmDisagreement {
                // The watcher and the store disagree about an alarm: keep the message, which matters
                // more, and say so.
                logger.error(
                    "alarm changes refused by the store (\(error)); storing message #\(message.sequenceNumber) without them and taking the store's alarms",
                    metadata: metadata(message))
                alarmsRefused = true
                outcome = try await store.commit(
                    message, raw: text, receivedAtUnixMilliseconds: wall, monotonic: now, profileName: profileName,
                    sampleQuality: quality.map(\.storeLabel), gaps: gaps, linkName: deviceName, observation: figures)
            }
            outlets.commits?.observeCommit(device: deviceName, duration: ContinuousClock.now - commitStarted)
            if alarmsRefused, case .stored(_, let runRef, _) = outcome, var watching = monitor {
                // The store holds other alarms than the watcher believed: it decides, and what the
                // watcher still sees is raised again (and stored) by the next judgement.
                if let runRef, let active = try? await store.activeAlarms(runRef: runRef) {
                    watching.reconcile(with: active.compactMap(StoredAlarmState.init))
                    learnAlarmRefs(active, key: key)
                    monitor = watching
                }
                transitions = []
                changes = []
            }
        } catch {
            return storeFailed(error, doing: "storing message #\(message.sequenceNumber) of run \(key.runID)")
        }

        // Publish what was stored.
        switch outcome {
        case .stored(_, let runRef, let committedAlarmRefs):
            storeWrote()
            health.update(deviceName) { $0.messagesStored += 1 }
            lastMessageAt[key] = now
            if let runRef { runRefs[key] = runRef }
            learnAlarmRefs(changes, committedAlarmRefs, key: key, at: now)
            let watch = monitor.map { RunWatch(monitor: $0, deviceSerial: key.serial, runRef: runRefs[key]) }
            if let watch {
                let isSample = message.kind == .tick || message.kind == .runEnd
                outlets.watches?.record(
                    watch, addPoint: isSample, sampleReceivedAt: isSample ? now : nil, receivedAtWallMilliseconds: isSample ? wall : nil)
            }
            publishMessage(message, quality: quality.map(\.storeLabel), alarms: changes, key: key, watch: watch, wall: wall)
            if let monitor, monitor.isOpen {
                monitors[key] = monitor
            } else {
                forget(key)
            }
            if message.kind == .runStart {
                logger.notice(
                    "run \(key.runID) started (\(message.order.procedure), profile \(profileName ?? monitor?.profile.name ?? "?"))",
                    metadata: metadata(message))
            } else if message.kind == .runEnd {
                logger.notice("run \(key.runID) ended", metadata: metadata(message))
            }
            for gap in gaps {
                logger.warning("data gap in run \(key.runID): \(gap.sentence)", metadata: metadata(message))
            }
            for flag in quality {
                logger.warning("data quality: \(flag.storeLabel) in message #\(message.sequenceNumber) (kept, marked)", metadata: metadata(message))
            }
            AlarmJournal.log(transitions, runID: key.runID, serial: key.serial, logger: logger)
            await recordJudgements(judgements, key: key)
        case .duplicate:
            health.update(deviceName) { $0.duplicates += 1 }
            logger.debug("message #\(message.sequenceNumber) already stored: acknowledged again", metadata: metadata(message))
        case .conflict(let reference):
            storeWrote()
            health.update(deviceName) { $0.quarantined += 1 }
            logger.error(
                "message #\(message.sequenceNumber) differs from the stored one with that number: kept in quarantine (\(reference))",
                metadata: metadata(message))
        }
        return .handled
    }

    /// The run is closed: nothing of it stays in memory but its last watch, for a while.
    func forget(_ key: RunKey) {
        outlets.watches?.closed(deviceSerial: key.serial, runID: key.runID)
        monitors[key] = nil
        presetChanges[key] = nil
        lastMessageAt[key] = nil
        runRefs[key] = nil
        alarmRefs[key] = nil
    }

    /// The alarm rows the store just wrote, by code: the newest row of a code is the one a client acknowledges.
    /// `at`: the monotonic time the changes happened, for the age the API shows (nil for changes
    /// found after the fact, in an export file).
    func learnAlarmRefs(_ changes: [AlarmChange], _ refs: [Int64], key: RunKey, at: Duration?) {
        guard !changes.isEmpty, changes.count == refs.count else { return }
        for (change, ref) in zip(changes, refs) {
            alarmRefs[key, default: [:]][change.code] = ref
            switch change.kind {
            case .raised: if let at { outlets.watches?.alarmRaised(id: ref, at: at) }
            case .cleared: outlets.watches?.alarmEnded(id: ref)
            case .escalated, .deescalated, .acknowledged: break
            }
        }
    }

    func learnAlarmRefs(_ rows: [AlarmRow], key: RunKey) {
        for row in rows where row.id > alarmRefs[key]?[row.code] ?? 0 { alarmRefs[key, default: [:]][row.code] = row.id }
    }

    /// A limit that could not be judged (or is judged again) goes into the run's record once per change.
    private func recordJudgements(_ judgements: [JudgementChange], key: RunKey) async {
        for j in judgements {
            let detail = j.judged ? "\(j.code.rawValue) judged again" : "\(j.code.rawValue) not judged: \(j.reason ?? "no reason given")"
            let at = j.runTimeMinutes.map { " (run time \(AlarmJournal.number($0)) min)" } ?? ""
            do {
                try await store.recordEvent(
                    kind: j.judged ? "limit_judged" : "limit_not_judged", deviceSerial: key.serial, runID: key.runID, detail: detail + at,
                    atUnixMilliseconds: DaemonClock.wallMilliseconds)
            } catch {
                _ = storeFailed(error, doing: "recording that \(j.code.rawValue) is \(j.judged ? "judged again" : "not judged")")
            }
            var metadata = metadata()
            metadata["run_id"] = "\(key.runID)"
            metadata["alarm_code"] = "\(j.code.rawValue)"
            logger.log(level: j.judged ? .notice : .warning, "\(detail)\(at)", metadata: metadata)
        }
    }

    // MARK: The stream

    /// A stored message on the stream: its run's start, its sample, its alarm steps, its run's end.
    private func publishMessage(
        _ message: SeparatorMessage, quality: [String], alarms: [AlarmChange], key: RunKey, watch: RunWatch?, wall: Int64
    ) {
        guard let feed = outlets.feed else { return }
        let at = Date(timeIntervalSince1970: Double(wall) / 1000)
        let serial = message.device.serialNumber
        let runID = message.order.runID
        let run = StreamEvent.Run(
            device: deviceName, deviceSerial: serial, runId: runID, procedure: message.order.procedure.rawValue,
            patientId: message.patient?.id, at: at)
        if message.kind == .runStart { feed.publish(.runStart(run)) }
        if message.kind == .tick || message.kind == .runEnd {
            var values: [String: StreamEvent.Value] = [:]
            for r in message.results {
                if let number = r.value.number { values[r.code.rawValue] = StreamEvent.Value(value: number, unit: r.unit) }
            }
            feed.publish(
                .sample(
                    StreamEvent.Sample(
                        device: deviceName, deviceSerial: serial, runId: runID, kind: message.kind.rawValue,
                        deviceTime: message.timestamp.wire, receivedAt: at, runTimeMinutes: message.result(.runTime)?.value.number,
                        values: values, qualityFlags: quality, watch: watch)))
        }
        publishAlarms(alarms, key: key, at: wall)
        if message.kind == .runEnd { feed.publish(.runEnd(run)) }
    }

    /// Alarm steps on the stream, each named by its store id (a client acknowledges by it).
    func publishAlarms(_ changes: [AlarmChange], key: RunKey, at wall: Int64 = DaemonClock.wallMilliseconds) {
        guard let feed = outlets.feed, !changes.isEmpty else { return }
        let at = Date(timeIntervalSince1970: Double(wall) / 1000)
        for a in changes {
            feed.publish(
                .alarm(
                    StreamEvent.Alarm(
                        alarmId: alarmRefs[key]?[a.code], device: deviceName, deviceSerial: key.serial, runId: key.runID,
                        change: a.kind.rawValue, code: a.code, level: a.level, value: a.value, limit: a.limit, unit: a.unit,
                        message: a.message, by: a.by, runTimeMinutes: a.runTimeMinutes, at: at)))
        }
    }

    // MARK: Turns

    /// One mutation of the watchers at a time: a message, a file, a staleness or link check, an
    /// acknowledgement, a preset change. The actor alone does not give this, because each of them
    /// awaits the store in between.
    func exclusively<T>(_ body: () async throws -> T) async rethrows -> T {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            busy = true
        }
        defer {
            if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
        }
        return try await body()
    }

    func bringPresetsUpToDate(_ monitor: inout RunMonitor, key: RunKey) {
        let wanted = presetChanges[key] ?? [:]
        guard monitor.presetChanges != wanted else { return }
        do {
            try monitor.setPresetChanges(wanted)
        } catch {
            logger.error("run \(key.runID): preset changes no longer apply (\(error))", metadata: metadata())
        }
    }

    // MARK: The store's health

    func storeWrote() {
        health.storeWrote(at: DaemonClock.monotonic)
    }

    /// A store that refuses writes (disk full, read-only, I/O, locked) is the daemon's STORE_WRITE_FAILED
    /// alarm, told once per episode (StoreFailureReporter), each refused write a debug line. A refusal
    /// of what was asked (an inconsistent alarm step) is not a failing store: an error line, naming it.
    func storeFailed(_ error: any Error, doing what: String) -> IngestOutcome {
        if Self.isStoreFailure(error) {
            health.storeFailed(store.failure(of: error).description, now: DaemonClock.monotonic, wallMilliseconds: DaemonClock.wallMilliseconds)
            logger.debug("store write failed while \(what), left for later: \(error)", metadata: metadata())
        } else {
            logger.error("the store refused \(what): \(error)", metadata: metadata())
        }
        return .retry
    }

    static func isStoreFailure(_ error: any Error) -> Bool {
        guard let error = error as? RecordStoreError else { return true }
        if case .storageFull = error { return true }
        return false
    }

    // MARK: Journal

    func metadata(_ message: SeparatorMessage? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        if let serial = message?.device.serialNumber ?? serialNumber { metadata["device_serial"] = "\(serial)" }
        if let message {
            metadata["run_id"] = "\(message.order.runID)"
            metadata["message_sequence"] = "\(message.sequenceNumber)"
        }
        return metadata
    }
}
