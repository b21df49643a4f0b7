import ApheresisCore
import Foundation
import Logging
import Monitor
import NIOPosix
import RecordStore
import SeparatorProtocol
import ServiceLifecycle

/// Watches a directory the separator exports finished runs into. Each file is
/// ingested once (the store keys files by content hash, runs by device and run
/// id), through the same store path as live messages, so a run seen live and
/// later as a file stays one run. Temporary names (leading dot, `.part`,
/// `.tmp`) are ignored: the device renames a file when it is complete. A
/// malformed file is moved into `rejected/` with the reason written beside it.
final class ExportDirectoryService: Service, Sendable {
    let name: String
    let directory: String
    let store: RecordStore
    let profiles: [LimitProfile]
    let health: HealthBoard
    let feed: LiveFeed?
    let logger: Logger
    let pollInterval: Duration

    init(
        name: String, directory: String, store: RecordStore, profiles: [LimitProfile], health: HealthBoard, feed: LiveFeed? = nil,
        logger: Logger, pollInterval: Duration = .seconds(1)
    ) {
        self.feed = feed
        self.name = name
        self.directory = directory
        self.store = store
        self.profiles = profiles
        self.health = health
        var logger = logger
        logger[metadataKey: "device"] = "\(name)"
        self.logger = logger
        self.pollInterval = pollInterval
        health.register(name, link: "export \(directory)")
    }

    struct FileKey: Hashable, Sendable {
        var name: String
        var size: Int
        var modified: Double
    }

    func run() async throws {
        var seen: Set<FileKey> = []
        var pendingAlarms: [PendingAlarms] = []
        var reportedMissing = false
        while !Task.isCancelledOrShuttingDown {
            health.loopProgressed(name, at: DaemonClock.monotonic)
            do {
                let candidates = try await NIOThreadPool.singleton.runIfActive { [directory] in
                    try Self.listCandidates(directory)
                }
                health.update(name) {
                    $0.state = .up
                    $0.lastError = nil
                }
                reportedMissing = false
                // Alarms of an ingested file that the store could not take yet: before anything new.
                var stillPending: [PendingAlarms] = []
                for pending in pendingAlarms where !(await recordAlarms(pending)) { stillPending.append(pending) }
                pendingAlarms = stillPending
                for file in candidates where !seen.contains(file) {
                    let (handled, alarms) = await ingest(file)
                    if handled { seen.insert(file) }
                    if let alarms, !(await recordAlarms(alarms)) { pendingAlarms.append(alarms) }
                }
            } catch {
                health.update(name) {
                    $0.state = .down
                    $0.lastError = "\(error)"
                }
                if !reportedMissing { logger.warning("cannot read export directory \(directory): \(error)") }
                reportedMissing = true
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix("~")
    }

    static func listCandidates(_ directory: String) throws -> [FileKey] {
        let manager = FileManager.default
        return try manager.contentsOfDirectory(atPath: directory).sorted().compactMap { name in
            guard !isTemporary(name), name.lowercased().hasSuffix(".csv") else { return nil }
            let attributes = try? manager.attributesOfItem(atPath: directory + "/" + name)
            guard attributes?[.type] as? FileAttributeType == .typeRegular else { return nil }
            return FileKey(
                name: name, size: (attributes?[.size] as? Int) ?? 0,
                modified: (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        }
    }

    /// A run known only from its file, whose alarms are still to be recorded.
    struct PendingAlarms: Sendable {
        var export: ExportRun
        var runRef: Int64
    }

    /// Whether the file is dealt with (ingested, known, or moved aside), and the alarms to record for a
    /// run known only from it.
    private func ingest(_ file: FileKey) async -> (handled: Bool, alarms: PendingAlarms?) {
        let path = directory + "/" + file.name
        let bytes: [UInt8]
        do {
            bytes = try await NIOThreadPool.singleton.runIfActive { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
        } catch {
            logger.warning("cannot read export file \(path): \(error)")
            return (false, nil)
        }
        health.update(name) { $0.lastByteAt = DaemonClock.monotonic }
        let hash = Digest.sha256Hex(bytes)
        let wall = DaemonClock.wallMilliseconds
        let export: ExportRun
        do {
            export = try ExportCSV.decode(String(decoding: bytes, as: UTF8.self))
        } catch {
            if case .incomplete = error.reason, Date().timeIntervalSince1970 - file.modified < 30 {
                // No #END yet: a device that writes in place instead of renaming may
                // still be writing. Unchanged for 30 s, it is cut short: rejected.
                logger.debug("export file \(file.name) is not complete yet")
                return (false, nil)
            }
            await reject(file.name, path: path, hash: hash, bytes: bytes, reason: error.description, wall: wall)
            return (true, nil)
        }
        do {
            let outcome = try await store.ingestExport(export, path: path, contentSHA256: hash, atUnixMilliseconds: wall)
            health.storeWrote(at: DaemonClock.monotonic)
            switch outcome {
            case .ingested(let runRef, let newSamples):
                health.update(name) {
                    $0.messagesStored += 1
                    $0.serialNumber = export.device.serialNumber
                }
                logger.notice(
                    "ingested export file \(file.name): run \(export.runID), \(newSamples) new sample(s) of \(export.rows.count)",
                    metadata: ["device_serial": "\(export.device.serialNumber)", "run_id": "\(export.runID)"])
                return (true, newSamples == export.rows.count ? PendingAlarms(export: export, runRef: runRef) : nil)
            case .duplicateFile:
                logger.info("export file \(file.name) was ingested before (same content)")
            }
            return (true, nil)
        } catch {
            if MessagePipeline.isStoreFailure(error) {
                let failure = RecordStore.storageFailure(error).description
                if health.storeFailed(failure, now: DaemonClock.monotonic, wallMilliseconds: DaemonClock.wallMilliseconds) != nil {
                    logger.error("cannot store export file \(file.name): \(failure); will retry")
                }
            } else {
                logger.error("the store refused export file \(file.name): \(error); will retry")
            }
            return (false, nil)
        }
    }

    /// A run known only from its file is watched after the fact: the same watcher as live runs, so
    /// its alarms are in the record, the journal and on the stream too.
    /// True when done (recorded, or nothing to record); false while the store refuses writes.
    private func recordAlarms(_ pending: PendingAlarms) async -> Bool {
        let export = pending.export
        let runRef = pending.runRef
        let messages = export.messages()
        guard let first = messages.first else { return true }
        var monitor: RunMonitor
        var transitions: [AlarmTransition]
        var gaps: [TelemetryGap] = []
        var replayFrom = 0
        if let start = messages.first(where: { $0.kind == .runStart }) {
            monitor = RunMonitor(runStart: start, profile: RunMonitor.profile(for: start, from: profiles), receivedAt: .zero)
            transitions = monitor.initialTransitions
        } else {
            monitor = RunMonitor(midRun: first, profile: RunMonitor.profile(for: first, from: profiles), receivedAt: .zero)
            transitions = monitor.initialTransitions
            let evaluation = monitor.ingest(first, receivedAt: .zero)
            transitions += evaluation.transitions
            gaps += evaluation.gaps
            replayFrom = 1
        }
        for (index, message) in messages.enumerated() where index >= replayFrom && message.kind != .runStart {
            // Receive times are unknown for a file: space them by the message index.
            let evaluation = monitor.ingest(message, receivedAt: .seconds(index))
            transitions += evaluation.transitions
            gaps += evaluation.gaps
        }
        var changes = transitions.compactMap(AlarmChange.init)
        guard !changes.isEmpty || !gaps.isEmpty else { return true }
        let serial = export.device.serialNumber
        let wall = DaemonClock.wallMilliseconds
        do {
            // Gaps of a run seen live were stored as they were found; a retry after a refused write
            // finds them stored and adds nothing.
            if !gaps.isEmpty, try await store.gaps(runRef: runRef).isEmpty {
                try await store.recordGaps(deviceSerial: serial, runID: export.runID, gaps: gaps, atUnixMilliseconds: wall)
                for gap in gaps { logger.warning("data gap in exported run \(export.runID): \(gap.sentence)") }
            }
            guard !changes.isEmpty else {
                health.storeWrote(at: DaemonClock.monotonic)
                return true
            }
            do {
                try await store.recordAlarmChanges(deviceSerial: serial, runID: export.runID, changes: changes, atUnixMilliseconds: wall)
            } catch let error as RecordStoreError where error.isAlarmDisagreement {
                // The run was seen live in part (its RUN_START, say): the alarms the live watch raised
                // stay its own; the file adds the others.
                let live = Set(try await store.alarms(runRef: runRef).map(\.code))
                changes.removeAll { live.contains($0.code) }
                transitions.removeAll { live.contains($0.code.rawValue) }
                logger.notice("exported run \(export.runID): alarms \(live.sorted().joined(separator: ", ")) were raised live; the file adds the others")
                guard !changes.isEmpty else { return true }
                try await store.recordAlarmChanges(deviceSerial: serial, runID: export.runID, changes: changes, atUnixMilliseconds: wall)
            }
            health.storeWrote(at: DaemonClock.monotonic)
        } catch {
            if MessagePipeline.isStoreFailure(error) {
                health.storeFailed(RecordStore.storageFailure(error).description, now: DaemonClock.monotonic, wallMilliseconds: wall)
                return false
            }
            logger.error("cannot record the alarms of exported run \(export.runID): \(error)")
            return true
        }
        AlarmJournal.log(transitions, runID: export.runID, serial: serial, logger: logger)
        if let feed {
            var ids: [String: Int64] = [:]
            for alarm in (try? await store.alarms(runRef: runRef)) ?? [] where alarm.id > ids[alarm.code] ?? 0 { ids[alarm.code] = alarm.id }
            LiveEvents.publishAlarms(
                feed, device: name, deviceSerial: serial, runID: export.runID, alarms: changes, alarmIDs: ids,
                at: Date(timeIntervalSince1970: Double(wall) / 1000))
        }
        return true
    }

    private func reject(_ name: String, path: String, hash: String, bytes: [UInt8], reason: String, wall: Int64) async {
        logger.error("export file \(name) is malformed, moved to rejected/: \(reason)")
        do {
            try await store.recordMalformedExport(path: path, contentSHA256: hash, reason: reason, raw: bytes, atUnixMilliseconds: wall)
        } catch {
            logger.error("cannot record the malformed export file \(name): \(error)")
        }
        let rejected = directory + "/rejected"
        do {
            try await NIOThreadPool.singleton.runIfActive {
                let manager = FileManager.default
                try manager.createDirectory(atPath: rejected, withIntermediateDirectories: true)
                var target = rejected + "/" + name
                if manager.fileExists(atPath: target) { target += ".\(wall)" }
                try manager.moveItem(atPath: path, toPath: target)
                try Data("\(reason)\n".utf8).write(to: URL(fileURLWithPath: target + ".reason.txt"))
            }
        } catch {
            logger.error("cannot move the malformed export file \(name) aside: \(error)")
        }
    }
}

