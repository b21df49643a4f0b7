import ApheresisCore
import Foundation
import Ingest
import LiveState
import Logging
import RecordStore
import SeparatorProtocol
import SimulatorKit

/// Shared by the in-process tests of the pipeline (IngestTests, CentralStoreTests).
/// A fresh directory per test, removed afterwards; real SQLite files, no mocks.
public final class Scratch: Sendable {
    public let path: String
    public init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ingest-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

public let scenarioDirectory: String = {
    // Tests/Support/PipelineTestSupport/PipelineBench.swift -> ../../../simulator/scenarios
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4)
    return parts.joined(separator: "/") + "/simulator/scenarios"
}()

/// One message as the link delivers it: its text and the monotonic time it completed.
public struct Delivery: Sendable {
    public var message: SeparatorMessage
    public var text: [UInt8]
    public var at: Duration
}

/// A scenario's whole run from the real simulator engine, numbered from `firstSequence`, each
/// message at its simulated time (the daemon's monotonic clock in these tests).
public func scenarioRun(_ name: String, runID: String? = nil, firstSequence: UInt64 = 1, seed: UInt64 = 7) throws -> [Delivery] {
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
public struct Bench: Sendable {
    public let store: RecordStore
    public let health = HealthBoard()
    public let feed = LiveFeed()
    public let watches = RunWatchBoard()
    public let pipeline: IngestPipeline

    public init(
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

    public static func open(_ scratch: Scratch, name: String = "store.sqlite", reserveBytes: UInt64? = nil) async throws -> RecordStore {
        var options = RecordStore.Options()
        if let reserveBytes { options.reserveBytes = reserveBytes }
        return try await RecordStore.open(path: scratch.file(name), options: options)
    }
}

/// A store file read by Debian's sqlite3 command, read-only, as an outsider would: one line per
/// row, '|' between columns.
public func sqlite3(_ path: String, _ sql: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
    process.arguments = ["-readonly", path, sql]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
