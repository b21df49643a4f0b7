import Foundation
import ApheresisCore
import Logging
import Monitor
import RecordStore
import SeparatorProtocol

/// Everything that happens to one device's complete message before its last
/// frame is answered: decode (or quarantine), evaluate against the run's
/// limits, commit message, sample and alarm changes in one transaction. The
/// run watchers live here, one per open run; a watcher's new state is kept
/// only once the store has the message, so a duplicate never counts twice.
actor MessagePipeline {
    let deviceName: String
    let store: RecordStore
    let profiles: [LimitProfile]
    let health: HealthBoard
    let metrics: DaemonMetrics?
    let feed: LiveFeed?
    let watches: RunWatchBoard?
    let logger: Logger
    private var monitors: [String: RunMonitor] = [:]
    /// The store's id of each run watched, by run id (asked once per run).
    private var runRefs: [String: Int64] = [:]
    /// Each run's preset changes, by run id. The authority for the watchers: a watcher copy held
    /// across a store write may predate a change, so it is brought up to date before it is kept.
    private var presetChanges: [String: [RunPreset: Double]] = [:]
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var serialNumber: String?

    init(
        deviceName: String, store: RecordStore, profiles: [LimitProfile], health: HealthBoard, metrics: DaemonMetrics? = nil,
        feed: LiveFeed? = nil, watches: RunWatchBoard? = nil, logger: Logger
    ) {
        self.metrics = metrics
        self.feed = feed
        self.watches = watches
        self.deviceName = deviceName
        self.store = store
        self.profiles = profiles
        self.health = health
        var logger = logger
        logger[metadataKey: "device"] = "\(deviceName)"
        self.logger = logger
    }

    /// Returns true once the message is durably handled (stored, known, or
    /// quarantined): only then may its last frame be acknowledged.
    func ingest(_ text: [UInt8], now: Duration) async -> Bool {
        await exclusively { await ingestExclusively(text, now: now) }
    }

    private func ingestExclusively(_ text: [UInt8], now: Duration) async -> Bool {
        let wall = DaemonClock.wallMilliseconds
        let message: SeparatorMessage
        do {
            message = try E1394Decoder.decode(text)
        } catch {
            do {
                try await store.quarantine(raw: text, reason: error.description, deviceSerial: serialNumber, atUnixMilliseconds: wall)
            } catch {
                return storeFailed(error)
            }
            health.update(deviceName) { $0.quarantined += 1 }
            logger.error("quarantined a message that does not parse: \(error.description)", metadata: metadata())
            return true
        }
        if serialNumber != message.device.serialNumber {
            serialNumber = message.device.serialNumber
            let serial = message.device.serialNumber
            health.update(deviceName) { $0.serialNumber = serial }
        }

        let runID = message.order.runID
        var monitor = monitors[runID]
        if monitor == nil, message.kind != .runStart {
            monitor = await restoreMonitor(runID: runID, now: now)
        }
        var transitions: [AlarmTransition] = []
        var quality: [DataQualityFlag] = []
        var profileName: String?
        if message.kind == .runStart {
            if monitor == nil {
                let profile = RunMonitor.profile(for: message, from: profiles)
                let started = RunMonitor(runStart: message, profile: profile, receivedAt: now)
                transitions = started.initialTransitions
                profileName = profile.name
                monitor = started
            }
        } else if var watching = monitor {
            bringPresetsUpToDate(&watching)
            let evaluation = watching.ingest(message, receivedAt: now)
            transitions = evaluation.transitions
            quality = evaluation.sampleQuality
            monitor = watching
        }

        do {
            let outcome: CommitOutcome
            let commitStarted = ContinuousClock.now
            do {
                outcome = try await store.commit(
                    message, raw: text, receivedAtUnixMilliseconds: wall, monotonic: now, profileName: profileName,
                    sampleQuality: quality.map(\.storeLabel), alarms: transitions.compactMap(AlarmChange.init))
            } catch let error as RecordStoreError {
                // The watcher and the store disagree about an alarm (e.g. after a
                // restart): keep the message, which matters more, and say so.
                logger.error("alarm changes refused by the store (\(error)); storing the message without them", metadata: metadata(message))
                outcome = try await store.commit(
                    message, raw: text, receivedAtUnixMilliseconds: wall, monotonic: now, profileName: profileName,
                    sampleQuality: quality.map(\.storeLabel))
            }
            metrics?.observeCommit(device: deviceName, duration: ContinuousClock.now - commitStarted)
            health.storeWrote(at: DaemonClock.monotonic)
            switch outcome {
            case .stored:
                health.update(deviceName) { $0.messagesStored += 1 }
                if let monitor, monitor.isOpen {
                    monitors[runID] = monitor
                } else {
                    monitors[runID] = nil
                    presetChanges[runID] = nil
                }
                let watch = await recordWatch(monitor, serial: message.device.serialNumber, movedOn: message.kind == .tick || message.kind == .runEnd)
                if monitor?.isOpen != true { runRefs[runID] = nil }
                if let feed {
                    let changes = transitions.compactMap(AlarmChange.init)
                    // The stream names each alarm by its store id, so that a client can acknowledge it.
                    let alarmIDs = changes.isEmpty ? [:] : await alarmIDs(runID: runID, serial: message.device.serialNumber)
                    LiveEvents.publish(
                        feed, device: deviceName, message: message, quality: quality.map(\.storeLabel),
                        alarms: changes, alarmIDs: alarmIDs, watch: watch,
                        at: Date(timeIntervalSince1970: Double(wall) / 1000))
                }
                if message.kind == .runStart {
                    logger.notice("run \(runID) started (\(message.order.procedure), profile \(profileName ?? "?"))", metadata: metadata(message))
                } else if message.kind == .runEnd {
                    logger.notice("run \(runID) ended", metadata: metadata(message))
                }
                for flag in quality {
                    logger.warning("data quality: \(flag.storeLabel) in message #\(message.sequenceNumber) (kept, marked)", metadata: metadata(message))
                }
                log(transitions, message: message)
            case .duplicate:
                health.update(deviceName) { $0.duplicates += 1 }
                logger.debug("message #\(message.sequenceNumber) already stored: acknowledged again", metadata: metadata(message))
            case .conflict(let reference):
                health.update(deviceName) { $0.quarantined += 1 }
                logger.error(
                    "message #\(message.sequenceNumber) differs from the stored one with that number: kept in quarantine (\(reference))",
                    metadata: metadata(message))
            }
            return true
        } catch {
            return storeFailed(error)
        }
    }

    /// After a daemon restart in the middle of a run, the watcher is rebuilt by
    /// replaying the run's stored messages (the core is deterministic), so that
    /// alarms already in the store are not raised twice.
    private func restoreMonitor(runID: String, now: Duration) async -> RunMonitor? {
        guard let serial = serialNumber else { return nil }
        do {
            guard let run = try await store.run(deviceSerial: serial, runID: runID), run.state == .open else { return nil }
            let stored = try await store.messages(deviceSerial: serial).filter { $0.runRef == run.id }
            let messages = stored.compactMap { try? E1394Decoder.decode($0.raw) }
            guard let start = messages.first(where: { $0.kind == .runStart }) else { return nil }
            let profile = profiles.first { $0.name == run.profileName } ?? RunMonitor.profile(for: start, from: profiles)
            var monitor = RunMonitor(runStart: start, profile: profile, receivedAt: now)
            // The run's preset changes hold for the replay too: the watcher then agrees with the
            // alarms it raised under them (a change's time within the run is not replayed).
            var changes: [RunPreset: Double] = [:]
            for change in try await store.presetChanges(runRef: run.id) {
                for (key, value) in change.changes {
                    guard let preset = RunPreset(rawValue: key) else {
                        logger.error("run \(runID): stored preset change \(change.id) names \(key), which this build does not know; left out")
                        continue
                    }
                    changes[preset] = value
                }
            }
            if !changes.isEmpty {
                do {
                    try monitor.setPresetChanges(changes)
                    presetChanges[runID] = changes
                } catch {
                    logger.error("run \(runID): stored preset changes no longer apply (\(error)); watching with the profile's presets")
                }
            }
            runRefs[runID] = run.id
            for message in messages where message.kind != .runStart {
                _ = monitor.ingest(message, receivedAt: now)
                if message.kind == .tick, let watches {
                    watches.record(RunWatch(monitor: monitor, deviceSerial: serial, runRef: run.id), addPoint: true)
                }
            }
            logger.notice("resumed watching run \(runID) from \(messages.count) stored message(s)")
            return monitor.isOpen ? monitor : nil
        } catch {
            logger.error("cannot restore the watcher of run \(runID): \(error)")
            return nil
        }
    }

    /// The run's newest watch on the board (and for the stream), after a message was stored.
    private func recordWatch(_ monitor: RunMonitor?, serial: String, movedOn: Bool) async -> RunWatch? {
        guard let monitor else { return nil }
        let runID = monitor.start.runID
        if runRefs[runID] == nil { runRefs[runID] = try? await store.run(deviceSerial: serial, runID: runID)?.id }
        let watch = RunWatch(monitor: monitor, deviceSerial: serial, runRef: runRefs[runID])
        watches?.record(watch, addPoint: movedOn)
        return watch
    }

    /// A preset change for one of this device's open runs (RunControl): checked against the run's
    /// watcher, recorded with its audit entry, then applied. Nil when this pipeline does not watch
    /// the run. Serialized with the device's messages, so no message is judged by lines the store
    /// does not hold, and no change is recorded but not applied.
    func changePresets(
        deviceSerial: String, runID: String, runRef: Int64, changes: [RunPreset: Double], mayRaiseLines: Bool, reason: String,
        by user: String
    ) async throws -> RunWatch? {
        guard deviceSerial == serialNumber else { return nil }
        return try await exclusively {
            if monitors[runID] == nil, let restored = await restoreMonitor(runID: runID, now: DaemonClock.monotonic) {
                monitors[runID] = restored
            }
            guard var monitor = monitors[runID] else { return nil }
            let raised = monitor.raisedLines(changes)
            if !mayRaiseLines, !raised.isEmpty { throw RaisesLines(presets: raised) }
            try monitor.changePresets(changes)  // on a copy: refused as a whole, nothing recorded
            _ = try await store.recordPresetChange(
                runRef: runRef, changes: Dictionary(uniqueKeysWithValues: changes.map { ($0.key.rawValue, $0.value) }), reason: reason,
                by: user, atUnixMilliseconds: DaemonClock.wallMilliseconds)
            presetChanges[runID] = monitor.presetChanges
            monitors[runID] = monitor
            let watch = RunWatch(monitor: monitor, deviceSerial: deviceSerial, runRef: runRef)
            watches?.record(watch, addPoint: false)
            let summary = changes.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) = \($0.value)" }.joined(separator: ", ")
            logger.notice("run \(runID): presets changed by \(user): \(summary) (reason: \(reason))", metadata: metadata())
            feed?.publish(
                "presets",
                LiveEvents.Presets(
                    device: deviceName, deviceSerial: deviceSerial, runId: runID, changedBy: user, reason: reason, watch: watch, at: Date()))
            return watch
        }
    }

    /// Whether this pipeline watches the run now (it may have restored it after a restart).
    func isWatching(deviceSerial: String, runID: String) -> Bool {
        deviceSerial == serialNumber && monitors[runID] != nil
    }

    /// The store's id of each alarm code's newest alarm in the run (for the stream).
    private func alarmIDs(runID: String, serial: String) async -> [String: Int64] {
        var ids: [String: Int64] = [:]
        do {
            let ref: Int64?
            if let known = runRefs[runID] { ref = known } else { ref = try await store.run(deviceSerial: serial, runID: runID)?.id }
            guard let ref else { return [:] }
            for alarm in try await store.alarms(runRef: ref) where alarm.id > ids[alarm.code] ?? 0 { ids[alarm.code] = alarm.id }
        } catch {
            logger.warning("cannot read alarm ids for the stream: \(error)", metadata: metadata())
        }
        return ids
    }

    /// One mutation of the watchers at a time: a message, a staleness or link check, a preset change.
    /// The actor alone does not give this, because each of them awaits the store in between.
    private func exclusively<T>(_ body: () async throws -> T) async rethrows -> T {
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

    private func bringPresetsUpToDate(_ monitor: inout RunMonitor) {
        let wanted = presetChanges[monitor.start.runID] ?? [:]
        guard monitor.presetChanges != wanted else { return }
        do {
            try monitor.setPresetChanges(wanted)
        } catch {
            logger.error("run \(monitor.start.runID): preset changes no longer apply (\(error))", metadata: metadata())
        }
    }

    /// Stale telemetry: called on the device loop's tick.
    func checkStaleness(now: Duration) async {
        await exclusively { await evaluateAll(now: now) { $0.checkStaleness(now: now) } }
    }

    func linkChanged(up: Bool, detail: String, now: Duration) async {
        do {
            try await store.recordEvent(
                kind: up ? "link_up" : "link_down", deviceSerial: serialNumber, detail: "\(deviceName): \(detail)",
                atUnixMilliseconds: DaemonClock.wallMilliseconds)
        } catch {
            _ = storeFailed(error)
        }
        await exclusively { await evaluateAll(now: now) { $0.linkChanged(up: up, now: now) } }
    }

    private func evaluateAll(now: Duration, _ step: (inout RunMonitor) -> [AlarmTransition]) async {
        guard let serial = serialNumber else { return }
        for (runID, monitor) in monitors {
            var next = monitor
            let transitions = step(&next)
            guard !transitions.isEmpty else { continue }
            do {
                let changes = transitions.compactMap(AlarmChange.init)
                let wall = DaemonClock.wallMilliseconds
                try await store.recordAlarmChanges(deviceSerial: serial, runID: runID, changes: changes, atUnixMilliseconds: wall)
                monitors[runID] = next
                log(transitions, runID: runID)
                // Stale telemetry and link alarms are raised without a message: they reach the
                // stream here, with their store ids, like those a message raises.
                if let feed, !changes.isEmpty {
                    let alarmIDs = await alarmIDs(runID: runID, serial: serial)
                    LiveEvents.publishAlarms(
                        feed, device: deviceName, deviceSerial: serial, runID: runID, alarms: changes, alarmIDs: alarmIDs,
                        at: Date(timeIntervalSince1970: Double(wall) / 1000))
                }
            } catch {
                _ = storeFailed(error)
            }
        }
    }

    private func storeFailed(_ error: any Error) -> Bool {
        health.storeFailed("\(error)")
        logger.error("store write failed, message left unanswered for the device to resend: \(error)")
        return false
    }

    // MARK: Journal

    private func metadata(_ message: SeparatorMessage? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        if let serial = message?.device.serialNumber ?? serialNumber { metadata["device_serial"] = "\(serial)" }
        if let message {
            metadata["run_id"] = "\(message.order.runID)"
            metadata["message_sequence"] = "\(message.sequenceNumber)"
        }
        return metadata
    }

    private func log(_ transitions: [AlarmTransition], message: SeparatorMessage) {
        log(transitions, runID: message.order.runID)
    }

    private func log(_ transitions: [AlarmTransition], runID: String) {
        for transition in transitions {
            var metadata = metadata()
            metadata["run_id"] = "\(runID)"
            metadata["alarm_code"] = "\(transition.code.rawValue)"
            metadata["alarm_level"] = "\(transition.level.rawValue)"
            metadata["alarm_transition"] = "\(transition.kind.name)"
            if let value = transition.value { metadata["alarm_value"] = "\(value)" }
            if let limit = transition.limit { metadata["alarm_limit"] = "\(limit)" }
            if !transition.unit.isEmpty { metadata["alarm_unit"] = "\(transition.unit)" }
            if let minutes = transition.runTimeMinutes { metadata["run_time_min"] = "\(minutes)" }
            let level: Logger.Level =
                switch transition.kind {
                case .raised, .escalated, .repeated: transition.level == .alarm ? .critical : .warning
                case .deescalated: .warning
                case .acknowledged, .cleared: .notice
                }
            logger.log(level: level, "\(transition.kind.name) \(transition.code.rawValue): \(transition.message)", metadata: metadata)
        }
    }
}

extension AlarmTransition.Kind {
    var name: String {
        switch self {
        case .raised: "raised"
        case .escalated: "escalated"
        case .deescalated: "deescalated"
        case .repeated: "repeated"
        case .acknowledged: "acknowledged"
        case .cleared: "cleared"
        }
    }
}

extension AlarmChange {
    /// The store's record of a watcher's transition. A repeat of a latched
    /// condition changes nothing the store keeps; it goes to the journal only.
    init?(_ transition: AlarmTransition) {
        let kind: AlarmChange.Kind
        var by: String?
        var reason: String?
        switch transition.kind {
        case .raised: kind = .raised
        case .escalated: kind = .escalated
        case .deescalated: kind = .deescalated
        case .repeated: return nil
        case .acknowledged(let user):
            kind = .acknowledged
            by = user
        case .cleared(let why):
            kind = .cleared
            reason = why
        }
        self.init(
            kind: kind, code: transition.code.rawValue, level: transition.level.rawValue, value: transition.value,
            limit: transition.limit, unit: transition.unit, message: transition.message,
            runTimeMinutes: transition.runTimeMinutes, by: by, reason: reason)
    }
}

extension DataQualityFlag {
    /// How the store marks a sample: the alarm class and what was seen.
    var storeLabel: String {
        switch self {
        case .decreasing(let code, let previous, let current): "DATA_DECREASING:\(code.rawValue):\(previous)>\(current)"
        case .outOfRange(let code, let value, _): "DATA_RANGE:\(code.rawValue):\(value)"
        case .unexpectedUnit(let code, let unit): "DATA_RANGE:\(code.rawValue):unit \(unit)"
        case .clockJump(let device, _, let received): "DATA_CLOCK_JUMP:device \(device.value)s vs \(received.value)s"
        }
    }
}
