/// The health board as the API's live status: link states with the age of the last byte from the separator.
public struct HealthBoardStatus: LiveStatus {
    let health: HealthBoard
    let storePath: String

    public init(health: HealthBoard, storePath: String) {
        self.health = health
        self.storePath = storePath
    }

    public func devices() -> [DeviceStatus] {
        let now = DaemonClock.monotonic
        return health.snapshot.devices.values.sorted { $0.name < $1.name }.map { d in
            DeviceStatus(
                name: d.name, link: d.link, linkState: d.state.rawValue, serialNumber: d.serialNumber,
                lastActivityAgeSeconds: d.lastByteAt.map { (now - $0).seconds }, reconnects: d.reconnects,
                lastError: d.lastError, messagesStored: d.messagesStored, duplicates: d.duplicates, quarantined: d.quarantined,
                framesRejected: d.framesRejected)
        }
    }

    public func storeFailure() -> StoreFailureStatus? {
        guard let failure = health.snapshot.storeFailure else { return nil }
        return StoreFailureStatus(
            message: StoreAlarm.message(failure.description, path: storePath), sinceUnixMilliseconds: failure.sinceUnixMilliseconds,
            age: DaemonClock.monotonic - failure.since, failedWrites: failure.failedWrites)
    }
}
