import ApheresisCore
import Foundation
import Quantities
import RecordStore
import Synchronization

/// What the daemon's watcher makes of an open run: the presets it holds the run against, the values
/// it recomputed, and its predictions (docs/api.md, "watch"). Numbers in the unit their key names,
/// converted here from the core's SI types, never rounded.
public struct RunWatch: Sendable, Encodable {
    public struct Presets: Sendable, Encodable {
        var profile: String
        /// AC_RATIO_SET, or the profile's `ac_ratio_set_default` while the run is watched without RUN_START.
        var ratioSet: Double?
        /// True when `ratioSet` is the profile's assumption (RUN_START missing), not the device's setting.
        var ratioSetAssumed: Bool
        var ratioWarnDeviation: Double
        var ratioAlarmDeviation: Double
        var acInfusionRateWarnMlPerMinPerL: Double
        var acInfusionRateAlarmMlPerMinPerL: Double
        var citrateLoadWarnMgPerKgPerMin: Double
        var citrateLoadAlarmMgPerKgPerMin: Double
        var collectTargetMl: Double?
        var collectMaxMl: Double?
        var wholeBloodTargetMl: Double?
        var bloodVolumesTarget: Double?
        var targetRunTimeMinutes: Double?
        /// Keys changed for this run (POST /api/v1/runs/{id}/presets).
        var overridden: [String]

        /// The value the run is held against now, in the key's unit.
        func value(of preset: RunPreset) -> Double? {
            switch preset {
            case .ratioWarnDeviation: ratioWarnDeviation
            case .ratioAlarmDeviation: ratioAlarmDeviation
            case .acInfusionRateWarn: acInfusionRateWarnMlPerMinPerL
            case .acInfusionRateAlarm: acInfusionRateAlarmMlPerMinPerL
            case .citrateLoadWarn: citrateLoadWarnMgPerKgPerMin
            case .citrateLoadAlarm: citrateLoadAlarmMgPerKgPerMin
            case .collectTarget: collectTargetMl
            case .collectMaximum: collectMaxMl
            }
        }
    }

    public struct Derived: Sendable, Encodable {
        var windowRatio: Double?
        var runRatio: Double?
        var deviceRatio: Double?
        var acPumpDeliveringNothing: Bool
        var acInfusionRateMlPerMinPerL: Double?
        var citrateLoadRateMgPerKgPerMin: Double?
        var citrateLoadTotalMgPerKg: Double?
        var collectedMl: Double?
        var collectedFractionOfTbv: Double?
        var wholeBloodProcessedMl: Double?
        var bloodVolumesProcessed: Double?
        var paused: Bool
        var rinsingBack: Bool
    }

    public struct Target: Sendable, Encodable {
        var target: Double
        var current: Double
        var remainingMinutes: Double
        var projectedRunTimeMinutes: Double
        var reached: Bool
    }

    public struct Forecast: Sendable, Encodable {
        var collect: Target?
        var wholeBlood: Target?
        var bloodVolumes: Target?
        var expectedCd3YieldCells: Double?
    }

    /// One point of the run's history, for the charts.
    public struct Point: Sendable, Encodable {
        var runTimeMinutes: Double
        /// When the daemon received the sample (wall clock, ISO 8601 with milliseconds): the charts'
        /// time axis. Null for a point of a run the watcher has no receive time for.
        var receivedAt: String?
        var windowRatio: Double?
        var acInfusionRateMlPerMinPerL: Double?
        var citrateLoadRateMgPerKgPerMin: Double?
        var collectedMl: Double?
    }

    public var runRef: Int64?
    public var runId: String
    public var deviceSerial: String
    public var runTimeMinutes: Double?
    public var presets: Presets
    public var derived: Derived
    public var predictions: Forecast
    /// Each active alarm's quantity as the watcher computes it now, by alarm code, in the alarm's
    /// unit (shown beside the value at the raise).
    public var valuesNow: [String: Double]
    /// Limits the watcher cannot judge now, by alarm code, with the reason (RUN_START missing, no
    /// TBV or weight, ...). Empty when every limit is judged.
    public var notJudged: [String: String]
    /// How much of the run's telemetry arrived (TICKs against the run time, the message sequence).
    public var completeness: CompletenessJSON
    /// Only where asked for (the run's watch and the snapshot); a live sample carries its own point.
    public var series: [Point]?

    public init(monitor: RunMonitor, deviceSerial: String, runRef: Int64?) {
        let start = monitor.start
        let profile = monitor.profile
        let tbv = start.totalBloodVolume
        self.runRef = runRef
        self.runId = start.runID
        self.deviceSerial = deviceSerial
        var now: [String: Double] = [:]
        for alarm in monitor.activeAlarms {
            if let value = monitor.currentValue(of: alarm.code) { now[alarm.code.rawValue] = value }
        }
        self.valuesNow = now
        self.notJudged = Dictionary(uniqueKeysWithValues: monitor.unjudged.map { ($0.key.rawValue, $0.value) })
        self.completeness = CompletenessJSON(monitor.completeness)
        let d = monitor.latestDerived
        self.runTimeMinutes = d.runTime?.minutes
        self.presets = Presets(
            profile: profile.name, ratioSet: monitor.ratioSet, ratioSetAssumed: monitor.isRatioSetAssumed, ratioWarnDeviation: profile.ratioWarnDeviation,
            ratioAlarmDeviation: profile.ratioAlarmDeviation,
            acInfusionRateWarnMlPerMinPerL: profile.acInfusionRateWarn.millilitresPerMinutePerLitre,
            acInfusionRateAlarmMlPerMinPerL: profile.acInfusionRateAlarm.millilitresPerMinutePerLitre,
            citrateLoadWarnMgPerKgPerMin: profile.citrateLoadWarn.milligramsPerKilogramPerMinute,
            citrateLoadAlarmMgPerKgPerMin: profile.citrateLoadAlarm.milligramsPerKilogramPerMinute,
            collectTargetMl: RunPreset.collectTarget.read(profile, totalBloodVolume: tbv),
            collectMaxMl: RunPreset.collectMaximum.read(profile, totalBloodVolume: tbv),
            wholeBloodTargetMl: start.targetWholeBloodVolume?.millilitres, bloodVolumesTarget: start.targetBloodVolumesProcessed,
            targetRunTimeMinutes: start.targetRunTime?.minutes,
            overridden: monitor.presetChanges.keys.sorted().map(\.rawValue))
        self.derived = Derived(
            windowRatio: d.windowRatio, runRatio: d.runRatio, deviceRatio: d.deviceRatio,
            acPumpDeliveringNothing: d.acPumpDeliveringNothing,
            acInfusionRateMlPerMinPerL: d.acInfusionRate?.millilitresPerMinutePerLitre,
            citrateLoadRateMgPerKgPerMin: d.citrateLoadRate?.milligramsPerKilogramPerMinute,
            citrateLoadTotalMgPerKg: d.citrateLoadTotal?.milligramsPerKilogram, collectedMl: d.collectedVolume?.millilitres,
            collectedFractionOfTbv: d.collectedFractionOfTBV, wholeBloodProcessedMl: d.wholeBloodProcessed?.millilitres,
            bloodVolumesProcessed: d.bloodVolumesProcessed, paused: d.isPaused, rinsingBack: d.isRinsingBack)
        let p = monitor.latestPredictions
        func target(_ t: TargetPrediction?) -> Target? {
            t.map {
                Target(
                    target: $0.target, current: $0.current, remainingMinutes: $0.remaining.minutes,
                    projectedRunTimeMinutes: $0.projectedRunTime.minutes, reached: $0.reached)
            }
        }
        self.predictions = Forecast(
            collect: target(p.collectTarget), wholeBlood: target(p.wholeBloodTarget), bloodVolumes: target(p.bloodVolumesTarget),
            expectedCd3YieldCells: p.expectedCD3Yield)
    }

    var point: Point? {
        runTimeMinutes.map {
            Point(
                runTimeMinutes: $0, windowRatio: derived.windowRatio, acInfusionRateMlPerMinPerL: derived.acInfusionRateMlPerMinPerL,
                citrateLoadRateMgPerKgPerMin: derived.citrateLoadRateMgPerKgPerMin, collectedMl: derived.collectedMl)
        }
    }
}

/// The newest watch of every run the daemon watches, with each run's history of points, in memory.
/// Written by the message pipelines after each stored message, read by the API. Bounded: a run keeps
/// its newest `seriesLimit` points, only the newest `runLimit` runs are kept, and of those only the
/// newest `closedLimit` closed ones (a workstation that has run for days keeps its open runs, not
/// the history of every run it saw: the store has that).
public final class RunWatchBoard: Sendable {
    /// At a 5 s TICK, 2,880 points are four hours of run time.
    public static let seriesLimit = 2880
    public static let runLimit = 64
    public static let closedLimit = 8

    private struct Entry {
        var watch: RunWatch
        var series: [RunWatch.Point]
        var updated: Int
        var closed = false
        /// Monotonic time the newest sample arrived live (never set by a restore's replay).
        var sampleReceivedAt: Duration?
    }

    private let entries = Mutex<(byKey: [String: Entry], counter: Int)>(([:], 0))
    /// Monotonic raise time of each active alarm this daemon raised, by alarm id: an alarm's age
    /// must not jump with the wall clock. Alarms raised before this process started are not here.
    private let alarmsRaisedAt = Mutex<[Int64: Duration]>([:])
    static let alarmLimit = 4096

    public init() {}

    static func key(_ serial: String, _ runID: String) -> String { serial + "\u{0}" + runID }

    /// A wall-clock time in milliseconds as ISO 8601 UTC with milliseconds ("2026-11-25T04:40:12.345Z").
    static func timestamp(_ wallMilliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(wallMilliseconds) / 1000)
            .formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Records the run's newest watch; `addPoint` for a message that moved the run on (a TICK).
    /// `sampleReceivedAt`: the monotonic time a sample arrived from the separator now (nil for
    /// messages replayed from the store, which arrived before this daemon started).
    /// `receivedAtWallMilliseconds`: the wall-clock time the sample was received (live or stored),
    /// kept with the point for the charts' time axis.
    public func record(
        _ watch: RunWatch, addPoint: Bool, sampleReceivedAt: Duration? = nil, receivedAtWallMilliseconds: Int64? = nil
    ) {
        let key = Self.key(watch.deviceSerial, watch.runId)
        entries.withLock { state in
            state.counter += 1
            var entry = state.byKey[key] ?? Entry(watch: watch, series: [], updated: 0)
            entry.watch = watch
            entry.updated = state.counter
            if let sampleReceivedAt { entry.sampleReceivedAt = sampleReceivedAt }
            if addPoint, var point = watch.point {
                point.receivedAt = receivedAtWallMilliseconds.map(Self.timestamp)
                if let last = entry.series.last, last.runTimeMinutes >= point.runTimeMinutes {
                    // A resent or replayed sample: replace rather than draw the line backwards.
                    entry.series.removeAll { $0.runTimeMinutes >= point.runTimeMinutes }
                }
                entry.series.append(point)
                if entry.series.count > Self.seriesLimit { entry.series.removeFirst(entry.series.count - Self.seriesLimit) }
            }
            state.byKey[key] = entry
            if state.byKey.count > Self.runLimit, let oldest = state.byKey.min(by: { $0.value.updated < $1.value.updated })?.key {
                state.byKey[oldest] = nil
            }
        }
    }

    /// The run ended (RUN_END, or closed by the open-run timeout): its watch stays for a while,
    /// among the newest `closedLimit` closed runs.
    public func closed(deviceSerial: String, runID: String) {
        entries.withLock { state in
            let key = Self.key(deviceSerial, runID)
            guard state.byKey[key] != nil else { return }
            state.byKey[key]?.closed = true
            let closed = state.byKey.filter { $0.value.closed }.sorted { $0.value.updated > $1.value.updated }
            for (old, _) in closed.dropFirst(Self.closedLimit) { state.byKey[old] = nil }
        }
    }

    /// How many runs the board holds (open and recently closed).
    public var count: Int { entries.withLock { $0.byKey.count } }

    /// An alarm row was raised now (monotonic `at`).
    public func alarmRaised(id: Int64, at: Duration) {
        alarmsRaisedAt.withLock { all in
            all[id] = at
            // Alarms that never clear (a run abandoned mid-alarm) must not pile up: the oldest go.
            if all.count > Self.alarmLimit, let oldest = all.min(by: { $0.value < $1.value })?.key { all[oldest] = nil }
        }
    }

    /// The alarm row cleared: its age is no longer shown.
    public func alarmEnded(id: Int64) {
        _ = alarmsRaisedAt.withLock { $0.removeValue(forKey: id) }
    }

    /// How long ago this daemon raised the alarm, on the monotonic clock; nil for an alarm it did not
    /// raise (the caller falls back on the stored wall time).
    public func alarmAge(id: Int64, now: Duration = DaemonClock.monotonic) -> Duration? {
        alarmsRaisedAt.withLock { $0[id].map { now - $0 } }
    }

    /// How long ago the run's newest sample arrived, on the monotonic clock; nil when none arrived
    /// live since this daemon started (the caller falls back on the stored wall time).
    public func sampleAge(deviceSerial: String, runID: String, now: Duration = DaemonClock.monotonic) -> Duration? {
        entries.withLock { state in
            state.byKey[Self.key(deviceSerial, runID)]?.sampleReceivedAt.map { now - $0 }
        }
    }

    /// The run's watch with its history, or nil when the daemon is not (or no longer) watching it.
    public func watch(deviceSerial: String, runID: String) -> RunWatch? {
        entries.withLock { state in
            guard let entry = state.byKey[Self.key(deviceSerial, runID)] else { return nil }
            var watch = entry.watch
            watch.series = entry.series
            return watch
        }
    }
}

/// Changes to a watched run, carried out by the daemon's pipeline that watches it (so that they are
/// ordered with the run's messages).
public protocol RunControl: Sendable {
    /// Acknowledges an alarm of a run in the turn of the pipeline that watches it: `record` writes
    /// the acknowledgement, then the run's watcher learns of it (a latched alarm ends with it, so its
    /// next occurrence is a new alarm). Runs no pipeline watches are acknowledged by `record` alone.
    func acknowledge(
        deviceSerial: String, runID: String?, code: String, record: @escaping @Sendable () async throws -> AlarmRow
    ) async throws -> AlarmRow

    /// Applies the change to the run's watcher and records it; nil when no pipeline watches the run.
    /// Throws `RaisesLines` when the change raises a line and `mayRaiseLines` is false: judged
    /// against the run's lines at the moment the change is applied, in turn with other changes.
    func changePresets(
        deviceSerial: String, runID: String, runRef: Int64, changes: [RunPreset: Double], mayRaiseLines: Bool, reason: String,
        by user: String
    ) async throws -> RunWatch?
}

/// A preset change that would raise warning or alarm lines, by a user who may not.
public struct RaisesLines: Error, Sendable {
    public var presets: [RunPreset]
    public init(presets: [RunPreset]) { self.presets = presets }
}

/// For an API without a daemon around it.
public struct NoRunControl: RunControl {
    public init() {}
    public func changePresets(
        deviceSerial: String, runID: String, runRef: Int64, changes: [RunPreset: Double], mayRaiseLines: Bool, reason: String,
        by user: String
    ) async throws -> RunWatch? { nil }
    public func acknowledge(
        deviceSerial: String, runID: String?, code: String, record: @escaping @Sendable () async throws -> AlarmRow
    ) async throws -> AlarmRow { try await record() }
}

/// Telemetry completeness as the API shows it on a run's watch, a run and a product.
public struct CompletenessJSON: Sendable, Encodable, Hashable {
    /// TICKs received over TICKs expected from the run time, 0-100 (not rounded).
    var percentOfExpectedTicks: Double
    var ticksReceived: Int
    var ticksExpected: Int
    var ticksMissing: Int
    var messagesMissing: Int
    var tickIntervalS: Double?
    var complete: Bool
    var summary: String

    public init(_ c: TelemetryCompleteness) {
        percentOfExpectedTicks = c.fraction * 100
        ticksReceived = c.ticksReceived
        ticksExpected = c.ticksExpected
        ticksMissing = c.ticksMissing
        messagesMissing = c.messagesMissing
        tickIntervalS = c.tickInterval?.value
        complete = c.isComplete
        summary = c.summary
    }
}
