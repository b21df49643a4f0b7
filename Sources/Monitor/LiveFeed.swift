import Foundation
import Synchronization

/// Fan-out of what happens, to every live-stream client. Publishing never waits: each client has a
/// bounded buffer, and a client that lets it fill up is dropped (told why, if it is still there)
/// rather than allowed to slow the daemon.
public final class LiveFeed: Sendable {
    public struct Event: Sendable {
        public var name: String
        /// The event's JSON, encoded once for every client.
        public var json: String
    }

    /// Events a client may fall behind by before it is dropped.
    public static let bufferLimit = 512

    private struct Client {
        var continuation: AsyncStream<Event>.Continuation
        var dropped = false
    }

    private let clients = Mutex<[Int: Client]>([:])
    private let nextID = Atomic<Int>(0)

    public init() {}

    /// The API's own encoding (snake_case, ISO 8601, unrounded): a stream event reads like a reply.
    static var encoder: JSONEncoder { Reply.encoder }

    public func publish<Payload: Encodable>(_ name: String, _ payload: Payload) {
        guard let data = try? Self.encoder.encode(payload) else { return }
        let event = Event(name: name, json: String(decoding: data, as: UTF8.self))
        clients.withLock { clients in
            for (id, client) in clients where !client.dropped {
                if case .dropped = client.continuation.yield(event) {
                    clients[id]?.dropped = true
                    client.continuation.finish()
                }
            }
        }
    }

    /// A new client's stream. Call `leave` when its connection ends.
    func join() -> (id: Int, events: AsyncStream<Event>) {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(Self.bufferLimit))
        clients.withLock { $0[id] = Client(continuation: continuation) }
        return (id, stream)
    }

    /// Forgets the client; true when it had been dropped for falling behind.
    func leave(_ id: Int) -> Bool {
        clients.withLock { $0.removeValue(forKey: id)?.dropped ?? false }
    }

    /// Ends every stream (the daemon is stopping).
    func finishAll() {
        clients.withLock { clients in
            for client in clients.values { client.continuation.finish() }
        }
    }

    var clientCount: Int { clients.withLock { $0.count } }
}
