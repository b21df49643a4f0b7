import DaemonConfiguration
import HL7
import HospitalLink
import LiveState
import Logging
import RecordStore
import ServiceLifecycle

/// One `[[hl7.destination]]`'s sender as a service: sends the store's outbox for it until the daemon
/// stops. A message in flight at shutdown stays pending and goes again, with its control id, at the
/// next start.
struct HL7SenderService: Service {
    let sender: HL7DestinationSender

    func run() async throws {
        await cancelWhenGracefulShutdown { await sender.run() }
    }
}

extension HL7Settings {
    /// The routes the store queues for, in the zone the daemon writes HL7 times in.
    func routes(timeZone: String) -> [HL7Route] {
        destinations.map { d in
            HL7Route(
                name: d.name, address: d.address,
                feeds: Set(d.feeds.compactMap { HL7Route.Feed(rawValue: $0.rawValue) }),
                observationIntervalMinutes: Double(d.observationInterval.components.seconds) / 60
                    + Double(d.observationInterval.components.attoseconds) / 6e19,
                endpoints: HL7Endpoints(
                    sendingApplication: d.sendingApplication, sendingFacility: d.sendingFacility,
                    receivingApplication: d.receivingApplication, receivingFacility: d.receivingFacility),
                timeZoneIdentifier: timeZone)
        }
    }

    func senderSettings(_ d: Destination) -> HL7SenderSettings {
        HL7SenderSettings(
            name: d.name, host: d.host, port: d.port, connectTimeout: d.connectTimeout, answerTimeout: d.answerTimeout,
            retryDelay: d.retryDelay, errorAttempts: d.errorAttempts,
            tls: d.tls.map { MLLPTLS(caFile: $0.caFile, certificateFile: $0.certificateFile, keyFile: $0.keyFile, serverName: $0.serverName) })
    }
}
