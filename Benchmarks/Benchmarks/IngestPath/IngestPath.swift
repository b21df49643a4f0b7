import ApheresisCore
import Benchmark
import Foundation
import Ingest
import LiveState
import Logging
import RecordStore
import SeparatorProtocol
import SimulatorKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The ingest path in process, as the daemon runs it: decode, judge, commit (one fsynced SQLite
// transaction per message, the store's own settings), publish. The store is a real file in
// $TMPDIR, the same disk as StoreAnchor's raw commits, so the two figures are comparable.

/// The six-hour benchmark run (Benchmarks/scenarios/six-hour-run.toml) from the real simulator
/// engine: 4,322 messages, numbered from `firstSequence`, at their simulated times.
struct Deliveries: Sendable {
    var texts: [[UInt8]]
    var times: [Duration]
    var messages: [SeparatorMessage]

    static func sixHourRun(runID: String = "RUN-BENCH", firstSequence: UInt64 = 1) throws -> Deliveries {
        let path = scenarioPath("six-hour-run.toml")
        let scenario = try ScenarioLoader.load(path: path)
        var engine = RunEngine(scenario: scenario, runID: runID, seed: 1)
        var d = Deliveries(texts: [], times: [], messages: [])
        var sequence = firstSequence
        while !engine.isFinished, let next = engine.nextEventTime {
            for output in engine.advance(to: next) {
                guard case .message(var message) = output else { continue }
                message.sequenceNumber = sequence
                sequence += 1
                d.messages.append(message)
                d.texts.append(E1394Encoder.encode(message))
                d.times.append(.nanoseconds(Int64((next.value * 1e9).rounded())))
            }
        }
        return d
    }

    static func scenarioPath(_ name: String) -> String {
        // Benchmarks/Benchmarks/IngestPath/IngestPath.swift -> Benchmarks/scenarios
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/") + "/scenarios/" + name
    }
}

/// A pipeline over a new store file, with the daemon's live state (no stream client unless asked).
struct Rig: Sendable {
    let directory: String
    let store: RecordStore
    let pipeline: IngestPipeline
    let feed: LiveFeed
    let health: HealthBoard

    static func make() async throws -> Rig {
        let directory = NSTemporaryDirectory() + "apheresisd-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let store = try await RecordStore.open(path: directory + "/store.sqlite")
        let health = HealthBoard()
        health.register("optia-1", link: "benchmark")
        let feed = LiveFeed()
        let pipeline = IngestPipeline(
            settings: IngestPipeline.Settings(deviceName: "optia-1", profiles: [.pediatricCMNC, .standard]),
            store: store, outlets: IngestPipeline.Outlets(health: health, feed: feed, watches: RunWatchBoard()),
            logger: Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() }))
        return Rig(directory: directory, store: store, pipeline: pipeline, feed: feed, health: health)
    }

    func remove() async {
        try? await store.close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// What a benchmark's setup prepared for its iterations: the run and a warm pipeline.
struct Prepared: Sendable {
    var run: Deliveries
    var rig: Rig
    /// The next delivery to send (the one-message benchmark walks through the run across iterations).
    var next: Int
}

let prepared = Mutex<Prepared?>(nil)

/// The run and a pipeline over a new store that has already stored the run's first `warm` messages,
/// so an iteration measures the steady state, not opening a store or starting a run.
func prepare(warm: Int) async throws {
    let run = try Deliveries.sixHourRun()
    let rig = try await Rig.make()
    for i in 0..<warm { _ = await rig.pipeline.ingest(.message(text: run.texts[i], receivedAt: run.times[i])) }
    prepared.withLock { $0 = Prepared(run: run, rig: rig, next: warm) }
}

func tearDown() async {
    let rig = prepared.withLock { p -> Rig? in
        defer { p = nil }
        return p?.rig
    }
    await rig?.remove()
}

let benchmarks: @Sendable () -> Void = {
    var metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
    if access("/sys/bus/event_source/devices/cpu", F_OK) == 0 { metrics.append(.instructions) }
    Benchmark.defaultConfiguration = .init(
        metrics: metrics, timeUnits: .microseconds, warmupIterations: 0, maxDuration: .seconds(10), maxIterations: 2_000,
        // Allocations per message are deterministic enough to hold the path to them; time is not.
        thresholds: [.mallocCountTotal: .init(relative: [.p50: 10.0], absolute: [.p50: 200])]
    )

    // One iteration is one message (a TICK of a run under way): messages per second, one fsynced commit each.
    Benchmark(
        "Ingest-one-message-fsynced-commit", configuration: .init(maxIterations: 2_000),
        closure: { benchmark in
            guard let p = prepared.withLock({ $0 }) else { return }
            var index = p.next
            for _ in benchmark.scaledIterations {
                // Past the run's end the walk stops short of RUN_END, re-sending the last TICK (a duplicate).
                let i = min(index, p.run.texts.count - 2)
                blackHole(await p.rig.pipeline.ingest(.message(text: p.run.texts[i], receivedAt: p.run.times[i])))
                index += 1
            }
            prepared.withLock { $0?.next = index }
        },
        setup: { try await prepare(warm: 20) }, teardown: { await tearDown() })

    // One iteration is the whole six-hour run into a new store (goal: under 2 s).
    Benchmark(
        "Ingest-six-hour-run-4322-messages",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal], timeUnits: .milliseconds, maxDuration: .seconds(60), maxIterations: 3)
    ) { benchmark in
        let run = try Deliveries.sixHourRun()
        for _ in benchmark.scaledIterations {
            let rig = try await Rig.make()
            benchmark.startMeasurement()
            for i in run.texts.indices {
                blackHole(await rig.pipeline.ingest(.message(text: run.texts[i], receivedAt: run.times[i])))
            }
            benchmark.stopMeasurement()
            await rig.remove()
        }
    }

    // One iteration is one breach: a separator ALARM message in, until its alarm event is out on the
    // stream with its store id (a client connected). Between iterations the alarm is acknowledged,
    // which ends it (latched), so the next message raises a new one.
    Benchmark(
        "Breach-to-alarm-event", configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxIterations: 1_000),
        closure: { benchmark in
            guard let p = prepared.withLock({ $0 }) else { return }
            let rig = p.rig
            let base = p.run.messages[p.next - 1]
            let (client, events) = rig.feed.join()
            var iterator = events.makeAsyncIterator()
            // Numbers after the whole run's: no sequence gap is judged between breaches after the first.
            let sequence = UInt64(p.run.texts.count + p.next)
            let alarm = SeparatorMessage(
                sequenceNumber: sequence, device: base.device, timestamp: base.timestamp, kind: .alarm, order: base.order,
                comments: [CommentRecord(sequence: 1, code: "AIR_IN_RETURN", text: "Air detected in return line", severity: .alarm)])
            let text = E1394Encoder.encode(alarm)
            let at = p.run.times[p.next - 1] + .seconds(1)
            benchmark.startMeasurement()
            _ = await rig.pipeline.ingest(.message(text: text, receivedAt: at))
            // This alarm's raise: not the end of the previous one at its acknowledgement, nor another code.
            while let event = await iterator.next(),
                !(event.name == "alarm" && event.json.contains(#""change":"raised""#) && event.json.contains("DEVICE_AIR_IN_RETURN"))
            {}
            benchmark.stopMeasurement()
            _ = rig.feed.leave(client)
            prepared.withLock { $0?.next += 1 }
            let store = rig.store
            if let row = try? await store.activeAlarms().first(where: { $0.code == "DEVICE_AIR_IN_RETURN" }) {
                _ = try? await rig.pipeline.acknowledge(deviceSerial: base.device.serialNumber, runID: base.order.runID, code: row.code) {
                    try await store.acknowledgeAlarm(id: row.id, by: "bench", atUnixMilliseconds: DaemonClock.wallMilliseconds)!
                }
            }
        },
        setup: { try await prepare(warm: 20) }, teardown: { await tearDown() })
}
