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
    /// An open run that hears nothing for this long is closed (docs/limits-implementation.md):
    /// a run never ends by itself otherwise when its RUN_END is lost for good.
    let openRunTimeout: Duration

    /// One open run: its device and run id (run ids are the device's, so the serial is part of the key).
    struct RunKey: Hashable, Sendable {
        var serial: String
        var runID: String
    }

    private var monitors: [RunKey: RunMonitor] = [:]
    /// The store's id of each run watched (asked once per run).
    private var runRefs: [RunKey: Int64] = [:]
    /// Each run's preset changes. The authority for the watchers: a watcher copy held across a store
    /// write may predate a change, so it is brought up to date before it is kept.
    private var presetChanges: [RunKey: [RunPreset: Double]] = [:]
    /// When each watched run last had a message stored (monotonic), for the open-run timeout.
    private var lastMessageAt: [RunKey: Duration] = [:]
    /// Alarm changes raised without a message (stale, link, timeouts) that the store refused, in
    /// order: the alarm is shown at once, and written before anything else of its run.
    private var pendingAlarmChanges: [RunKey: [(changes: [AlarmChange], atUnixMilliseconds: Int64)]] = [:]
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var serialNumber: String?
    /// The open runs could not be read at start: tried again on each clock tick until they are.
    private var restorePending = false
    /// Devices stored before link names were kept (an earlier build) are this link's when it is the
    /// only wire link configured.
    let adoptUnnamedDevices: Bool

    init(
        deviceName: String, store: RecordStore, profiles: [LimitProfile], health: HealthBoard, metrics: DaemonMetrics? = nil,
        feed: LiveFeed? = nil, watches: RunWatchBoard? = nil, openRunTimeout: Duration = .seconds(12 * 3600),
        adoptUnnamedDevices: Bool = false, logger: Logger
    ) {
        self.adoptUnnamedDevices = adoptUnnamedDevices
        self.metrics = metrics
        self.feed = feed
        self.watches = watches
        self.deviceName = deviceName
        self.store = store
        self.profiles = profiles
        self.health = health
        self.openRunTimeout = openRunTimeout
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
                return storeFailed(error, doing: "quarantining a message that does not parse")
            }
            storeWrote()
            health.update(deviceName) { $0.quarantined += 1 }
            logger.error("quarantined a message that does not parse: \(error.description)", metadata: metadata())
            return true
        }
        if serialNumber != message.device.serialNumber {
            serialNumber = message.device.serialNumber
            let serial = message.device.serialNumber
            health.update(deviceName) { $0.serialNumber = serial }
        }

        let key = RunKey(serial: message.device.serialNumber, runID: message.order.runID)
        // Alarms raised while the store refused writes go first, so that the store sees them in order.
        guard await flushPending(key) else { return false }

        var monitor = monitors[key]
        var startedNow = false
        if monitor == nil, message.kind != .runStart {
            switch await restoreMonitor(key, now: now) {
            case .watching(let restored): monitor = restored
            case .closed: break
            case .failed:
                // Not a new run: unanswered, the device sends it again and the restore is tried again.
                return false
            case .unknown:
                // The daemon started mid-run, or RUN_START was quarantined: watch from here with what
                // is known, and say that the start is missing.
                let profile = RunMonitor.profile(for: message, from: profiles)
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
                let profile = RunMonitor.profile(for: message, from: profiles)
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

        do {
            let outcome: CommitOutcome
            let commitStarted = ContinuousClock.now
            var alarmsRefused = false
            do {
                outcome = try await store.commit(
                    message, raw: text, receivedAtUnixMilliseconds: wall, monotonic: now, profileName: profileName,
                    sampleQuality: quality.map(\.storeLabel), alarms: transitions.compactMap(AlarmChange.init), gaps: gaps,
                    linkName: deviceName)
            } catch let error as RecordStoreError where error.isAlarmDisagreement {
                // The watcher and the store disagree about an alarm: keep the message, which matters
                // more, and say so.
                logger.error(
                    "alarm changes refused by the store (\(error)); storing message #\(message.sequenceNumber) without them and taking the store's alarms",
                    metadata: metadata(message))
                alarmsRefused = true
                outcome = try await store.commit(
                    message, raw: text, receivedAtUnixMilliseconds: wall, monotonic: now, profileName: profileName,
                    sampleQuality: quality.map(\.storeLabel), gaps: gaps, linkName: deviceName)
            }
            metrics?.observeCommit(device: deviceName, duration: ContinuousClock.now - commitStarted)
            switch outcome {
            case .stored:
                storeWrote()
                health.update(deviceName) { $0.messagesStored += 1 }
                lastMessageAt[key] = now
                if alarmsRefused, var watching = monitor {
                    // The store holds other alarms than the watcher believed: it decides, and what the
                    // watcher still sees is raised again (and stored) by the next judgement.
                    if let ref = try? await runReference(key), let active = try? await store.activeAlarms(runRef: ref) {
                        watching.reconcile(with: active.compactMap(StoredAlarmState.init))
                        monitor = watching
                    }
                    transitions = []
                }
                if let monitor, monitor.isOpen {
                    monitors[key] = monitor
                } else {
                    forget(key)
                }
                let watch = await recordWatch(monitor, key: key, movedOn: message.kind == .tick || message.kind == .runEnd)
                if monitor?.isOpen != true { runRefs[key] = nil }
                if let feed {
                    let changes = transitions.compactMap(AlarmChange.init)
                    // The stream names each alarm by its store id, so that a client can acknowledge it.
                    let alarmIDs = changes.isEmpty ? [:] : await alarmIDs(key)
                    LiveEvents.publish(
                        feed, device: deviceName, message: message, quality: quality.map(\.storeLabel),
                        alarms: changes, alarmIDs: alarmIDs, watch: watch,
                        at: Date(timeIntervalSince1970: Double(wall) / 1000))
                }
                if message.kind == .runStart {
                    logger.notice("run \(key.runID) started (\(message.order.procedure), profile \(profileName ?? monitor?.profile.name ?? "?"))", metadata: metadata(message))
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
            return true
        } catch {
            return storeFailed(error, doing: "storing message #\(message.sequenceNumber) of run \(key.runID)")
        }
    }

    private func forget(_ key: RunKey) {
        monitors[key] = nil
        presetChanges[key] = nil
        lastMessageAt[key] = nil
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

    // MARK: Restoring watchers

    enum Restored {
        case watching(RunMonitor)
        /// The store holds the run as closed: nothing to watch.
        case closed
        /// The store does not know the run: a new run for this daemon.
        case unknown
        /// The store could not be read: not a new run; try again.
        case failed
    }

    /// At start, before the link opens: every open run last seen on this link is watched again, so
    /// that a cable out at restart raises LINK_DOWN and a silent run goes stale by the clock.
    func restoreOpenRuns(now: Duration) async {
        await exclusively { await restoreOpenRunsInTurn(now: now) }
    }

    private func restoreOpenRunsInTurn(now: Duration) async {
        do {
            var serials = try await store.serials(linkName: deviceName)
            if serials.isEmpty, adoptUnnamedDevices {
                // Stored by a build that did not keep link names: with one wire link, they came on it.
                let open = Set(try await store.openRuns().map(\.deviceSerial))
                serials = try await store.devices().filter { $0.name == nil && open.contains($0.serial) }
                    .sorted { $0.lastSeenAtUnixMilliseconds > $1.lastSeenAtUnixMilliseconds }.map(\.serial)
            }
            if serialNumber == nil, let newest = serials.first {
                serialNumber = newest
                health.update(deviceName) { $0.serialNumber = newest }
            }
            for serial in serials {
                for run in try await store.openRuns(deviceSerial: serial) {
                    let key = RunKey(serial: serial, runID: run.runID)
                    guard monitors[key] == nil else { continue }
                    switch await restoreMonitor(key, now: now) {
                    case .watching(let monitor):
                        monitors[key] = monitor
                        _ = await recordWatch(monitor, key: key, movedOn: false)
                    case .failed: throw RestoreFailed(runID: run.runID)
                    case .closed, .unknown: break
                    }
                }
            }
            restorePending = false
            // Runs silent past the open-run timeout are closed first (without an alarm raised only to be
            // cleared); the others that are past their silence limit go stale now, not at a next message.
            await closeSilentRuns(now: now)
            await evaluateAll(now: now) { $0.checkStaleness(now: now) }
        } catch {
            if !restorePending {
                logger.error("cannot read the open runs of this link to watch them again (trying again): \(error)", metadata: metadata())
            }
            restorePending = true
        }
    }

    struct RestoreFailed: Error, CustomStringConvertible {
        var runID: String
        var description: String { "run \(runID) could not be rebuilt from the store" }
    }

    /// After a daemon restart in the middle of a run, the watcher is rebuilt by replaying the run's
    /// stored messages (the core is deterministic) at their receive times, then made to agree with
    /// the alarms the store holds, so that nothing is raised twice and nothing stays raised forever.
    private func restoreMonitor(_ key: RunKey, now: Duration) async -> Restored {
        do {
            guard let run = try await store.run(deviceSerial: key.serial, runID: key.runID) else { return .unknown }
            guard run.state == .open else { return .closed }
            let stored = try await store.messages(runRef: run.id)
            let wallNow = DaemonClock.wallMilliseconds
            // Receive times on this process's monotonic clock: a run silent since before the restart
            // is judged by how long it has really been silent.
            var messages: [(message: SeparatorMessage, receivedAt: Duration)] = []
            for m in stored {
                do {
                    let decoded = try E1394Decoder.decode(m.raw)
                    messages.append((decoded, now - .milliseconds(max(0, wallNow - m.receivedAtUnixMilliseconds))))
                } catch {
                    // Stored messages decoded once; one that no longer does is left out, and said.
                    logger.error("run \(key.runID): stored message \(m.id) does not decode any more (\(error)); left out of the replay")
                }
            }
            guard let first = messages.first else { return .unknown }
            var monitor: RunMonitor
            var replay = messages[...]
            if let start = messages.first(where: { $0.message.kind == .runStart }) {
                let profile = profiles.first { $0.name == run.profileName } ?? RunMonitor.profile(for: start.message, from: profiles)
                monitor = RunMonitor(runStart: start.message, profile: profile, receivedAt: start.receivedAt)
                replay = replay.filter { $0.message.kind != .runStart }[...]
            } else {
                let profile = profiles.first { $0.name == run.profileName } ?? RunMonitor.profile(for: first.message, from: profiles)
                monitor = RunMonitor(midRun: first.message, profile: profile, receivedAt: first.receivedAt)
            }
            // The run's preset changes hold for the replay too: the watcher then agrees with the
            // alarms it raised under them (a change's time within the run is not replayed).
            var changes: [RunPreset: Double] = [:]
            for change in try await store.presetChanges(runRef: run.id) {
                for (name, value) in change.changes {
                    guard let preset = RunPreset(rawValue: name) else {
                        logger.error("run \(key.runID): stored preset change \(change.id) names \(name), which this build does not know; left out")
                        continue
                    }
                    changes[preset] = value
                }
            }
            if !changes.isEmpty {
                do {
                    try monitor.setPresetChanges(changes)
                    presetChanges[key] = changes
                } catch {
                    logger.error("run \(key.runID): stored preset changes no longer apply (\(error)); watching with the profile's presets")
                }
            }
            runRefs[key] = run.id
            for (message, receivedAt) in replay {
                _ = monitor.ingest(message, receivedAt: receivedAt)
                if message.kind == .tick, let watches {
                    watches.record(RunWatch(monitor: monitor, deviceSerial: key.serial, runRef: run.id), addPoint: true)
                }
            }
            let active = try await store.activeAlarms(runRef: run.id)
            monitor.reconcile(with: active.compactMap(StoredAlarmState.init))
            lastMessageAt[key] = messages.last?.receivedAt
            logger.notice("watching run \(key.runID) again from \(messages.count) stored message(s)", metadata: metadata())
            return monitor.isOpen ? .watching(monitor) : .closed
        } catch {
            logger.error("cannot restore the watcher of run \(key.runID): \(error)", metadata: metadata())
            return .failed
        }
    }

    /// The run's newest watch on the board (and for the stream), after a message was stored.
    private func recordWatch(_ monitor: RunMonitor?, key: RunKey, movedOn: Bool) async -> RunWatch? {
        guard let monitor else { return nil }
        if runRefs[key] == nil { runRefs[key] = try? await store.run(deviceSerial: key.serial, runID: key.runID)?.id }
        let watch = RunWatch(monitor: monitor, deviceSerial: key.serial, runRef: runRefs[key])
        watches?.record(watch, addPoint: movedOn)
        return watch
    }

    // MARK: Operator actions, in the pipeline's turn

    /// A preset change for one of this device's open runs (RunControl): checked against the run's
    /// watcher, recorded with its audit entry, then applied. Nil when this pipeline does not watch
    /// the run. Serialized with the device's messages, so no message is judged by lines the store
    /// does not hold, and no change is recorded but not applied.
    func changePresets(
        deviceSerial: String, runID: String, runRef: Int64, changes: [RunPreset: Double], mayRaiseLines: Bool, reason: String,
        by user: String
    ) async throws -> RunWatch? {
        guard deviceSerial == serialNumber || monitors.keys.contains(where: { $0.serial == deviceSerial }) else { return nil }
        let key = RunKey(serial: deviceSerial, runID: runID)
        return try await exclusively {
            if monitors[key] == nil, case .watching(let restored) = await restoreMonitor(key, now: DaemonClock.monotonic) {
                monitors[key] = restored
            }
            guard var monitor = monitors[key] else { return nil }
            let raised = monitor.raisedLines(changes)
            if !mayRaiseLines, !raised.isEmpty { throw RaisesLines(presets: raised) }
            try monitor.changePresets(changes)  // on a copy: refused as a whole, nothing recorded
            _ = try await store.recordPresetChange(
                runRef: runRef, changes: Dictionary(uniqueKeysWithValues: changes.map { ($0.key.rawValue, $0.value) }), reason: reason,
                by: user, atUnixMilliseconds: DaemonClock.wallMilliseconds)
            presetChanges[key] = monitor.presetChanges
            monitors[key] = monitor
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

    /// An operator's acknowledgement of one of this pipeline's run alarms, in turn with the device's
    /// messages: `record` writes it (with its audit entry), then the watcher learns of it. A latched
    /// alarm (device, data quality) ends with its acknowledgement, so the next one is a new alarm with
    /// its own row, stream event and banner. Nil when this pipeline does not watch the run.
    func acknowledge(
        deviceSerial: String, runID: String, code: String, record: @Sendable () async throws -> AlarmRow
    ) async throws -> AlarmRow? {
        let key = RunKey(serial: deviceSerial, runID: runID)
        // Decided in the turn: at start the open runs may still be being restored.
        return try await exclusively {
            guard deviceSerial == serialNumber || monitors.keys.contains(where: { $0.serial == deviceSerial }) else { return nil }
            if monitors[key] == nil, case .watching(let restored) = await restoreMonitor(key, now: DaemonClock.monotonic) {
                monitors[key] = restored
            }
            guard monitors[key] != nil else { return nil }
            // Alarms the store has not taken yet go first: the acknowledgement must find its alarm.
            _ = await flushPending(key)
            let row = try await record()
            guard var monitor = monitors[key], let user = row.acknowledgedBy else { return row }
            let now = DaemonClock.monotonic
            // The first transition is the acknowledgement the store already holds; what follows
            // (a latched alarm's end) is written here.
            let after = Array(monitor.acknowledge(code: AlarmCode(rawValue: code), by: user, now: now).dropFirst())
            monitors[key] = monitor
            if !after.isEmpty { await recordWithoutMessage(after, key: key) }
            return row
        }
    }

    /// Whether this pipeline watches the run now (it may have restored it after a restart).
    func isWatching(deviceSerial: String, runID: String) -> Bool {
        monitors[RunKey(serial: deviceSerial, runID: runID)] != nil
    }

    /// The store's id of each alarm code's newest alarm in the run (for the stream).
    private func alarmIDs(_ key: RunKey) async -> [String: Int64] {
        var ids: [String: Int64] = [:]
        do {
            let ref: Int64?
            if let known = runRefs[key] { ref = known } else { ref = try await store.run(deviceSerial: key.serial, runID: key.runID)?.id }
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

    private func bringPresetsUpToDate(_ monitor: inout RunMonitor, key: RunKey) {
        let wanted = presetChanges[key] ?? [:]
        guard monitor.presetChanges != wanted else { return }
        do {
            try monitor.setPresetChanges(wanted)
        } catch {
            logger.error("run \(key.runID): preset changes no longer apply (\(error))", metadata: metadata())
        }
    }

    // MARK: The clock: staleness, link, timeouts

    /// Stale telemetry and the open-run timeout: called on the device loop's tick, also while the link is down.
    func checkStaleness(now: Duration) async {
        await exclusively {
            if restorePending { await restoreOpenRunsInTurn(now: now) }
            for key in pendingAlarmChanges.keys { _ = await flushPending(key) }
            await evaluateAll(now: now) { $0.checkStaleness(now: now) }
            await closeSilentRuns(now: now)
        }
    }

    func linkChanged(up: Bool, detail: String, now: Duration) async {
        do {
            try await store.recordEvent(
                kind: up ? "link_up" : "link_down", deviceSerial: serialNumber, detail: "\(deviceName): \(detail)",
                atUnixMilliseconds: DaemonClock.wallMilliseconds)
            storeWrote()
        } catch {
            _ = storeFailed(error, doing: "recording the link change")
        }
        await exclusively { await evaluateAll(now: now) { $0.linkChanged(up: up, now: now) } }
    }

    /// Runs whose RUN_END never came: closed after `openRunTimeout` without any message, with their
    /// alarms cleared for that reason and an event in the run's record.
    private func closeSilentRuns(now: Duration) async {
        for (key, var monitor) in monitors {
            guard let last = lastMessageAt[key], now - last >= openRunTimeout else { continue }
            // Its alarms still waiting for the store first, or the close would leave them active.
            guard await flushPending(key) else { continue }
            let reason = "no message for \(AlarmJournal.number(openRunTimeout.seconds / 60)) min: closed by timeout without RUN_END"
            let transitions = monitor.close(reason: reason, now: now)
            do {
                guard let ref = try await runReference(key) else { continue }
                try await store.closeRunAbandoned(
                    runRef: ref, reason: reason, alarms: transitions.compactMap(AlarmChange.init),
                    atUnixMilliseconds: DaemonClock.wallMilliseconds)
                storeWrote()
            } catch {
                _ = storeFailed(error, doing: "closing run \(key.runID) by timeout")
                continue
            }
            logger.warning("run \(key.runID): \(reason)", metadata: metadata())
            AlarmJournal.log(transitions, runID: key.runID, serial: key.serial, logger: logger)
            publish(transitions.compactMap(AlarmChange.init), key: key, alarmIDs: await alarmIDs(key))
            forget(key)
            runRefs[key] = nil
        }
    }

    private func runReference(_ key: RunKey) async throws -> Int64? {
        if let known = runRefs[key] { return known }
        let ref = try await store.run(deviceSerial: key.serial, runID: key.runID)?.id
        runRefs[key] = ref
        return ref
    }

    private func evaluateAll(now: Duration, _ step: (inout RunMonitor) -> [AlarmTransition]) async {
        for (key, monitor) in monitors {
            var next = monitor
            let transitions = step(&next)
            // The watcher moves on whether or not the store can take it: an alarm is shown (journal,
            // stream) when it happens, and written as soon as the store takes writes again.
            monitors[key] = next
            guard !transitions.isEmpty else { continue }
            await recordWithoutMessage(transitions, key: key)
        }
    }

    /// Alarm changes that no message carries: written (after any still pending), logged and streamed.
    private func recordWithoutMessage(_ transitions: [AlarmTransition], key: RunKey) async {
        AlarmJournal.log(transitions, runID: key.runID, serial: key.serial, logger: logger)
        let changes = transitions.compactMap(AlarmChange.init)
        guard !changes.isEmpty else { return }
        let wall = DaemonClock.wallMilliseconds
        pendingAlarmChanges[key, default: []].append((changes, wall))
        let written = await flushPending(key)
        publish(changes, key: key, alarmIDs: written ? await alarmIDs(key) : [:], at: wall)
    }

    private func publish(_ changes: [AlarmChange], key: RunKey, alarmIDs: [String: Int64], at wall: Int64 = DaemonClock.wallMilliseconds) {
        guard let feed, !changes.isEmpty else { return }
        LiveEvents.publishAlarms(
            feed, device: deviceName, deviceSerial: key.serial, runID: key.runID, alarms: changes, alarmIDs: alarmIDs,
            at: Date(timeIntervalSince1970: Double(wall) / 1000))
    }

    /// Writes the run's pending alarm changes in order; false while the store refuses them.
    private func flushPending(_ key: RunKey) async -> Bool {
        while let next = pendingAlarmChanges[key]?.first {
            do {
                try await store.recordAlarmChanges(
                    deviceSerial: key.serial, runID: key.runID, changes: next.changes, atUnixMilliseconds: next.atUnixMilliseconds)
                storeWrote()
            } catch let error as RecordStoreError where error.isAlarmDisagreement {
                // Written before a crash, or the run is closed: nothing to keep waiting for.
                logger.error("run \(key.runID): alarm changes refused by the store (\(error)); left out", metadata: metadata())
            } catch {
                return storeFailed(error, doing: "writing alarm changes of run \(key.runID)")
            }
            pendingAlarmChanges[key]?.removeFirst()
            if pendingAlarmChanges[key]?.isEmpty == true { pendingAlarmChanges[key] = nil }
        }
        return true
    }

    private func storeWrote() {
        health.storeWrote(at: DaemonClock.monotonic)
    }

    /// A store that refuses writes (disk full, read-only, I/O, locked) is the daemon's STORE_WRITE_FAILED
    /// alarm, told once per episode (StoreFailureReporter), each refused write a debug line. A refusal
    /// of what was asked (an inconsistent alarm step) is not a failing store: an error line, naming it.
    private func storeFailed(_ error: any Error, doing what: String) -> Bool {
        if Self.isStoreFailure(error) {
            health.storeFailed(RecordStore.storageFailure(error).description, now: DaemonClock.monotonic, wallMilliseconds: DaemonClock.wallMilliseconds)
            logger.debug("store write failed while \(what), left for later: \(error)", metadata: metadata())
        } else {
            logger.error("the store refused \(what): \(error)", metadata: metadata())
        }
        return false
    }

    static func isStoreFailure(_ error: any Error) -> Bool {
        guard let error = error as? RecordStoreError else { return true }
        if case .storageFull = error { return true }
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
}

/// Alarm transitions in the journal, with structured fields; live runs and export files alike.
enum AlarmJournal {
    /// 12 significant digits: a configured 1.8 that went through SI and back prints as 1.8.
    static func number(_ x: Double) -> String { String(format: "%.12g", x) }

    static func log(_ transitions: [AlarmTransition], runID: String, serial: String, logger: Logger) {
        for transition in transitions {
            var metadata: Logger.Metadata = ["device_serial": "\(serial)", "run_id": "\(runID)"]
            metadata["alarm_code"] = "\(transition.code.rawValue)"
            metadata["alarm_level"] = "\(transition.level.rawValue)"
            metadata["alarm_transition"] = "\(transition.kind.name)"
            // Numbers as configured and measured, without binary noise (1.8, not 1.7999999999999998).
            if let value = transition.value { metadata["alarm_value"] = "\(AlarmJournal.number(value))" }
            if let limit = transition.limit { metadata["alarm_limit"] = "\(AlarmJournal.number(limit))" }
            if !transition.unit.isEmpty { metadata["alarm_unit"] = "\(transition.unit)" }
            if let minutes = transition.runTimeMinutes { metadata["run_time_min"] = "\(AlarmJournal.number(minutes))" }
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

extension StoredAlarmState {
    /// The store's view of an active alarm, for a rebuilt watcher to agree with.
    init?(_ row: AlarmRow) {
        guard let level = AlarmLevel(rawValue: row.level) else { return nil }
        self.init(
            code: AlarmCode(rawValue: row.code), level: level, acknowledgedBy: row.state == .acknowledged ? row.acknowledgedBy : nil,
            value: row.value, limit: row.limit, unit: row.unit ?? "", message: row.message ?? "", runTimeMinutes: row.raisedRunTimeMinutes)
    }
}

extension RecordStoreError {
    /// The store refused alarm changes because it holds other alarms than the watcher believes.
    var isAlarmDisagreement: Bool {
        switch self {
        case .alarmAlreadyActive, .noActiveAlarm: true
        default: false
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
