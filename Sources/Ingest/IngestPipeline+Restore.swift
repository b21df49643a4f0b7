import ApheresisCore
import LiveState
import RecordStore
import SeparatorProtocol

extension IngestPipeline {
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
    public func restoreOpenRuns(now: Duration) async {
        await exclusively { await restoreOpenRunsInTurn(now: now) }
    }

    func restoreOpenRunsInTurn(now: Duration) async {
        do {
            var serials = try await store.serials(linkName: deviceName)
            if serials.isEmpty, settings.adoptUnnamedDevices {
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
                        outlets.watches?.record(RunWatch(monitor: monitor, deviceSerial: key.serial, runRef: runRefs[key]), addPoint: false)
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
    /// Only the run's own rows are read.
    func restoreMonitor(_ key: RunKey, now: Duration) async -> Restored {
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
                    let decoded = try settings.dialect.decodeMessage(m.raw)
                    messages.append((decoded, now - .milliseconds(max(0, wallNow - m.receivedAtUnixMilliseconds))))
                } catch {
                    // Stored messages decoded once; one that no longer does is left out, and said.
                    logger.error("run \(key.runID): stored message \(m.id) does not decode any more (\(error)); left out of the replay")
                }
            }
            guard let first = messages.first else { return .unknown }
            var monitor: RunMonitor
            var replay = messages[...]
            let profiles = settings.profiles
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
                if message.kind == .tick, let watches = outlets.watches {
                    // The point keeps the stored receive time (wall clock) for the charts' time axis.
                    let ago = now - receivedAt
                    let agoMilliseconds = ago.components.seconds * 1000 + ago.components.attoseconds / 1_000_000_000_000_000
                    watches.record(
                        RunWatch(monitor: monitor, deviceSerial: key.serial, runRef: run.id), addPoint: true,
                        receivedAtWallMilliseconds: wallNow - agoMilliseconds)
                }
            }
            let active = try await store.activeAlarms(runRef: run.id)
            monitor.reconcile(with: active.compactMap(StoredAlarmState.init))
            learnAlarmRefs(active, key: key)
            lastMessageAt[key] = messages.last?.receivedAt
            logger.notice("watching run \(key.runID) again from \(messages.count) stored message(s)", metadata: metadata())
            return monitor.isOpen ? .watching(monitor) : .closed
        } catch {
            logger.error("cannot restore the watcher of run \(key.runID): \(error)", metadata: metadata())
            return .failed
        }
    }
}
