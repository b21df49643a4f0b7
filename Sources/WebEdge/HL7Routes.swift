import Foundation
import Hummingbird
import LiveState
import RecordStore

/// `GET /api/v1/hl7`: each hospital-interface destination's connection (the daemon's sender) and
/// queue (the store's outbox), and the messages set aside (docs/api.md, docs/hl7.md).
struct HL7Routes: Sendable {
    let store: RecordStore
    let board: HL7LinkBoard
    let monotonicNow: @Sendable () -> Duration
    let wallNow: @Sendable () -> Int64

    struct DestinationJSON: Encodable {
        var name: String
        var address: String
        /// False when the destination is no longer configured: what it has pending waits, unsent.
        var configured: Bool
        var feeds: [String]
        /// connecting, up, down; "not_running" when configured in the store but no sender runs for it.
        var linkState: String
        var linkStateAgeSeconds: Double?
        var lastError: String?
        var connects: Int
        var answers: [String: Int]
        var unanswered: Int
        var pending: Int
        var oldestPendingAgeSeconds: Double?
        var delivered: Int
        var setAside: Int
        var lastDeliveredAt: Date?
    }

    struct SetAsideJSON: Encodable {
        var id: Int64
        var destination: String
        var controlId: String
        var messageType: String
        var subject: String
        var ackCode: String?
        var reason: String?
        var attempts: Int
        var setAsideAt: Date?
    }

    struct StatusJSON: Encodable {
        var destinations: [DestinationJSON]
        var setAside: [SetAsideJSON]
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("api/v1/hl7") { _, _ in await self.status() }
    }

    func status() async -> Response {
        let queues: [HL7DestinationStatus]
        let setAside: [HL7OutboxEntry]
        do {
            queues = try await store.hl7Status()
            setAside = try await store.hl7Entries(state: .setAside, limit: 100)
        } catch {
            return InternalFailure.reply(error, status: .serviceUnavailable, what: "the record store could not be read")
        }
        let links = Dictionary(uniqueKeysWithValues: board.destinations.map { ($0.name, $0) })
        let now = monotonicNow()
        let wall = wallNow()
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        let destinations = queues.map { q in
            let link = links[q.name]
            return DestinationJSON(
                name: q.name, address: q.address, configured: q.active, feeds: q.feeds,
                linkState: link?.state.rawValue ?? "not_running", linkStateAgeSeconds: link.map { seconds(now - $0.since) },
                lastError: link?.lastError ?? q.lastError, connects: link?.connects ?? 0, answers: link?.answers ?? [:],
                unanswered: link?.unanswered ?? 0, pending: q.pending,
                // Stored wall times (written by this or another process): an age by the wall clock.
                oldestPendingAgeSeconds: q.oldestPendingAtUnixMilliseconds.map { max(0, Double(wall - $0) / 1000) },
                delivered: q.delivered, setAside: q.setAside,
                lastDeliveredAt: q.lastDeliveredAtUnixMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        }
        let aside = setAside.map { e in
            SetAsideJSON(
                id: e.id, destination: e.destination, controlId: e.controlID, messageType: e.messageType, subject: e.subject,
                ackCode: e.ackCode, reason: e.ackText, attempts: e.attempts,
                setAsideAt: e.finishedAtUnixMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
        }
        return Reply.json(StatusJSON(destinations: destinations, setAside: aside))
    }
}
