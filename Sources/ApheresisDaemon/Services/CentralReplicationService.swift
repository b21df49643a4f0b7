import CentralStore
import LiveState
import Logging
import RecordStore
import ServiceLifecycle

/// The replicator to the central database as a service: copies the store's replication log until
/// the daemon stops. A batch in flight at shutdown is either committed centrally or not at all;
/// the next start reads the central cursor and goes on from there.
struct CentralReplicationService: Service {
    let replicator: CentralReplicator

    func run() async throws {
        await cancelWhenGracefulShutdown { await replicator.run() }
    }
}

extension HealthBoard {
    /// The links as the central dashboard shows them: the age of the last byte on this machine's
    /// monotonic clock (never the loop's own progress).
    func linkReports(now: Duration) -> [DeviceLinkReport] {
        snapshot.devices.values.sorted { $0.name < $1.name }.map { d in
            DeviceLinkReport(
                name: d.name, link: d.link, state: d.state.rawValue, deviceSerial: d.serialNumber,
                activityAgeMilliseconds: d.lastByteAt.map { Int64((now - $0).seconds * 1000) }, lastError: d.lastError)
        }
    }
}
