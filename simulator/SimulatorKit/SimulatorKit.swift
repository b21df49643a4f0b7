// SimulatorKit: the pure core of the separator simulator.
//
// - `ScenarioLoader` turns a TOML scenario file into a `Scenario`.
// - `TotalBloodVolume` and `PatientProfile` hold the physiology.
// - `RunEngine` advances simulated time and emits the device's messages
//   (and the wire faults the I/O layer must apply) as `EngineOutput`s.
// - `SeededGenerator` makes every random choice reproducible.
//
// Nothing here touches a file descriptor or a clock; the only I/O is
// `ScenarioLoader.load(path:)` reading one scenario file.

/// The `format` line every scenario file must carry.
public let scenarioFormatIdentifier = "optia-sim-scenario/1"
