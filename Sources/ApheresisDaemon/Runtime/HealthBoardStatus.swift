import Monitor

/// The health board as the API's live status: link states with the age of the last sign of life.
struct HealthBoardStatus: LiveStatus {
    let health: HealthBoard

    func devices() -> [DeviceStatus] {
        let now = DaemonClock.monotonic
        return health.snapshot.devices.values.sorted { $0.name < $1.name }.map { d in
            DeviceStatus(
                name: d.name, link: d.link, linkState: d.state.rawValue, serialNumber: d.serialNumber,
                lastActivityAgeSeconds: d.lastProgress.map { Self.seconds(now - $0) }, reconnects: d.reconnects,
                lastError: d.lastError, messagesStored: d.messagesStored, duplicates: d.duplicates, quarantined: d.quarantined,
                framesRejected: d.framesRejected)
        }
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }
}
