import ApheresisCore
import Foundation
import Ingest
import LiveState
import Logging
import RecordStore
import SeparatorProtocol
import SimulatorKit

/// A fresh directory per test, removed afterwards; real SQLite files, no mocks.
final class Scratch: Sendable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ingest-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

let scenarioDirectory: String = {
    // Tests/IngestTests/Support.swift -> ../../simulator/scenarios
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/") + "/simulator/scenarios"
}()

/// One message as the link delivers it: its text and the monotonic time it completed.
struct Delivery {
    var message: SeparatorMessage
    var text: [UInt8]
    var at: Duration
}

/// A scenario's whole run from the real simulator engine, numbered from `firstSequence`, each
/// message at its simulated time (the daemon's monotonic clock in these tests).
func scenarioRun(_ name: String, runID: String? = nil, firstSequence: UInt64 = 1, seed: UInt64 = 7) throws -> [Delivery] {
    let scenario = try ScenarioLoader.load(path: scenarioDirectory + "/" + name + ".toml")
    var engine = RunEngine(scenario: scenario, runID: runID ?? "RUN-" + name, seed: seed)
    var deliveries: [Delivery] = []
    var sequence = firstSequence
    while !engine.isFinished, let next = engine.nextEventTime {
        for output in engine.advance(to: next) {
            guard case .message(var message) = output else { continue }
            message.sequenceNumber = sequence
            sequence += 1
            let at = Duration.nanoseconds(Int64((next.value * 1e9).rounded()))
            deliveries.append(Delivery(message: message, text: E1394Encoder.encode(message), at: at))
        }
    }
    return deliveries
}

/// A pipeline over a real store file, with the live state it reports to.
struct Bench {
    let store: RecordStore
    let health = HealthBoard()
    let feed = LiveFeed()
    let watches = RunWatchBoard()
    let pipeline: IngestPipeline

    init(
        store: RecordStore, deviceName: String = "optia-1", dialect: SeparatorDialect = .standard,
        profiles: [LimitProfile] = [.pediatricCMNC, .standard], openRunTimeout: Duration = .seconds(12 * 3600)
    ) {
        self.store = store
        health.register(deviceName, link: "test")
        let logger = Logger(label: "ingest-tests", factory: { _ in SwiftLogNoOpLogHandler() })
        pipeline = IngestPipeline(
            settings: IngestPipeline.Settings(
                deviceName: deviceName, dialect: dialect, profiles: profiles, openRunTimeout: openRunTimeout),
            store: store, outlets: IngestPipeline.Outlets(health: health, feed: feed, watches: watches), logger: logger)
    }

    static func open(_ scratch: Scratch, name: String = "store.sqlite", reserveBytes: UInt64? = nil) async throws -> RecordStore {
        var options = RecordStore.Options()
        if let reserveBytes { options.reserveBytes = reserveBytes }
        return try await RecordStore.open(path: scratch.file(name), options: options)
    }
}
