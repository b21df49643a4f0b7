import Foundation
import Quantities
import SeparatorProtocol
import SimulatorKit

enum Fixtures {
    /// …/Tests/SimulatorKitTests/Support.swift → …/simulator/scenarios
    static let scenariosDirectory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("simulator/scenarios")

    static let scenarioNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: scenariosDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
    }()

    static let normalScenarioNames = scenarioNames.filter { $0.hasPrefix("normal-") }

    static func path(_ name: String) -> String { scenariosDirectory.appendingPathComponent("\(name).toml").path }

    static func load(_ name: String) throws -> Scenario { try ScenarioLoader.load(path: path(name)) }

    static func text(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    static func run(_ scenario: Scenario, seed: UInt64 = 42) -> [EngineOutput] {
        var engine = RunEngine(scenario: scenario, runID: "RUN-TEST-0001", seed: seed)
        let outputs = engine.advance(to: Seconds.hours(13))
        precondition(engine.isFinished)
        return outputs
    }
}

extension EngineOutput {
    var message: SeparatorMessage? { if case .message(let m) = self { m } else { nil } }
    var wireFault: WireFault? { if case .wireFault(let f) = self { f } else { nil } }
}

/// One TICK or RUN_END, its numbers in wire units.
struct Sample {
    var kind: MessageKind
    var timestamp: DeviceTimestamp
    var values: [ParameterCode: Double]
    subscript(_ code: ParameterCode) -> Double { values[code] ?? .nan }
}

func samples(_ outputs: [EngineOutput]) -> [Sample] {
    outputs.compactMap(\.message).filter { $0.kind == .tick || $0.kind == .runEnd }.map { m in
        var values: [ParameterCode: Double] = [:]
        for r in m.results { if let n = r.value.number { values[r.code] = n } }
        return Sample(kind: m.kind, timestamp: m.timestamp, values: values)
    }
}

func runStart(_ outputs: [EngineOutput]) -> SeparatorMessage? { outputs.first?.message }

/// Recomputed inlet:AC over windows of `windowTicks` samples (ΔINLET/ΔAC),
/// with the RUN_TIME (min) at the window's end; windows without AC are skipped.
func windowRatios(_ s: [Sample], windowTicks: Int) -> [(minute: Double, ratio: Double)] {
    guard s.count > windowTicks else { return [] }
    return (windowTicks..<s.count).compactMap { i in
        let dInlet = s[i][.inletVolume] - s[i - windowTicks][.inletVolume]
        let dAC = s[i][.acVolume] - s[i - windowTicks][.acVolume]
        guard dInlet > 0 else { return nil }
        return (s[i][.runTime], dAC > 0 ? dInlet / dAC : .infinity)
    }
}
