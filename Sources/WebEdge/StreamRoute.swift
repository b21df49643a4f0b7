import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import LiveState

/// `GET /api/v1/stream`: Server-Sent Events. First a `snapshot` (devices, open runs with their newest
/// sample and its age, active alarms), so a client that connects mid-run is complete at once; then
/// `sample`, `alarm`, `link`, `run_start` and `run_end` as they happen. A client that falls
/// `LiveFeed.bufferLimit` events behind gets a last `dropped` event and is disconnected.
struct StreamRoute: Sendable {
    let units: UnitRoutes
    let feed: LiveFeed

    struct Snapshot: Encodable {
        var apiVersion = APIVersion.current
        var devices: [DeviceStatus]
        var openRuns: [UnitRoutes.RunJSON]
        var activeAlarms: [UnitRoutes.AlarmJSON]
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("api/v1/stream") { _, _ in await units.guarded { try await stream() } }
        // HEAD answers the stream's headers without joining the feed (a GET's body never read
        // would leave a subscriber behind).
        router.head("api/v1/stream") { _, _ in Response(status: .ok, headers: Self.headers) }
    }

    static let headers: HTTPFields = [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store"]

    func stream() async throws -> Response {
        // Join first: an event between the snapshot and the first wait is then sent, not lost.
        let (id, events) = feed.join()
        let snapshot: String
        do {
            var open: [UnitRoutes.RunJSON] = []
            for run in try await units.store.runs() where run.state == .open {
                open.append(try await units.runJSON(run, withLatest: true, productID: nil))
            }
            let body = Snapshot(
                devices: units.live.devices(), openRuns: open, activeAlarms: try await units.alarmList(units.store.activeAlarms(), withDaemonAlarms: true))
            snapshot = String(decoding: try APIEncoding.encoder.encode(body), as: UTF8.self)
        } catch {
            _ = feed.leave(id)
            throw error
        }
        let feed = self.feed
        return Response(
            status: .ok,
            headers: Self.headers,
            body: ResponseBody { writer in
                defer { _ = feed.leave(id) }
                try await writer.write(ByteBuffer(string: "retry: 2000\nevent: snapshot\ndata: \(snapshot)\n\n"))
                for await event in events {
                    try await writer.write(ByteBuffer(string: "event: \(event.name)\ndata: \(event.json)\n\n"))
                }
                if feed.leave(id) {
                    let reason = #"{"reason":"this client fell more than \#(LiveFeed.bufferLimit) events behind; reconnect for a fresh snapshot"}"#
                    try? await writer.write(ByteBuffer(string: "event: dropped\ndata: \(reason)\n\n"))
                }
                try await writer.finish(nil)
            })
    }
}
