import RecordStore
import Testing

/// What the daemon must record for each scenario: which alarm steps, at which
/// simulated minute of run time (RUN_TIME), and that they are cleared. The
/// minutes are those of docs/simulator-scenarios.md as the limits of
/// docs/limits-implementation.md give them.
enum AlarmExpectations {
    struct Step: CustomStringConvertible {
        var code: String
        var kind: AlarmChange.Kind
        var level: String
        /// RUN_TIME minute; nil where it depends on how far behind the device the daemon is.
        var minute: Double?
        var description: String { "\(code) \(kind.rawValue) \(level)" + (minute.map { " at min \($0)" } ?? "") }
    }

    static let tolerance = 0.5

    /// Scenarios not listed must record no alarm at all.
    static let expected: [String: [Step]] = [
        "fault-ratio-drift.toml": [
            Step(code: "AC_RATIO", kind: .raised, level: "warning", minute: 25.6),
            Step(code: "AC_RATIO_AGREEMENT", kind: .raised, level: "alarm", minute: 27.2),
            Step(code: "AC_RATIO", kind: .escalated, level: "alarm", minute: 30.3),
        ],
        "fault-stall-pump.toml": [
            Step(code: "AC_RATIO", kind: .raised, level: "warning", minute: 30.1),
            Step(code: "AC_RATIO", kind: .escalated, level: "alarm", minute: 30.2),
            Step(code: "AC_RATIO_AGREEMENT", kind: .raised, level: "alarm", minute: 30.2),
        ],
        "overrun.toml": [
            Step(code: "COLLECT_VOL", kind: .raised, level: "warning", minute: 88.3),
            Step(code: "RUN_TIME", kind: .raised, level: "warning", minute: 90),
            Step(code: "WB_PROCESSED", kind: .raised, level: "warning", minute: 102.25),
            Step(code: "RUN_TIME", kind: .escalated, level: "alarm", minute: 120),
            Step(code: "COLLECT_VOL", kind: .escalated, level: "alarm", minute: 125),
            Step(code: "WB_PROCESSED", kind: .escalated, level: "alarm", minute: 127.4),
        ],
        "fault-clock-jump.toml": [
            Step(code: "DATA_CLOCK_JUMP", kind: .raised, level: "alarm", minute: 20),
        ],
        "alarm-pause-resume.toml": [
            Step(code: "DEVICE_ACCESS_PRESS_LOW", kind: .raised, level: "warning", minute: 25),
            // At elapsed minute 45, after a 3.5 min pause: RUN_TIME 41.5.
            Step(code: "DEVICE_AIR_IN_RETURN", kind: .raised, level: "alarm", minute: 41.5),
        ],
    ]

    /// Over TCP a pulled cable drops the connection, which the daemon sees:
    /// the link-down alarm is raised and cleared when the link is back. Over a
    /// pty (or RS-232) a pull is only silence, too short here to go stale. The
    /// run time at which the daemon notices depends on how far behind the
    /// fast simulator it is, so no minute is asked for.
    static let expectedOverTCP: [String: [Step]] = [
        "fault-cable-pull.toml": [Step(code: "LINK_DOWN", kind: .raised, level: "alarm", minute: nil)]
    ]

    /// Checks the run's alarms in the store against the expectation.
    static func check(store: RecordStore, runRef: Int64, scenario: String, overTCP: Bool = false) async throws {
        let expected = (overTCP ? expectedOverTCP[scenario] : nil) ?? Self.expected[scenario]
        let alarms = try await store.alarms(runRef: runRef)
        var steps: [(alarm: AlarmRow, event: AlarmEventRow)] = []
        for alarm in alarms {
            for event in try await store.alarmEvents(alarmRef: alarm.id) { steps.append((alarm, event)) }
        }
        let seen = steps.map { "\($0.alarm.code) \($0.event.kind.rawValue) \($0.event.level) at \($0.event.runTimeMinutes ?? -1)" }
        guard let expected else {
            #expect(alarms.isEmpty, "\(scenario): expected no alarm, the store has \(seen)")
            return
        }
        for step in expected {
            let match = steps.contains { pair in
                pair.alarm.code == step.code && pair.event.kind == step.kind && pair.event.level == step.level
                    && step.minute.map { abs((pair.event.runTimeMinutes ?? -100) - $0) <= tolerance } ?? true
            }
            #expect(match, "\(scenario): no \(step.description); the store has \(seen)")
        }
        // Every alarm of a finished run is cleared (by its condition or by the run's end).
        for alarm in alarms {
            #expect(alarm.state == .cleared, "\(scenario): \(alarm.code) left \(alarm.state.rawValue) after the run ended")
        }
    }
}
