import Foundation
import Synchronization

/// Fan-out of what happens, to every live-stream client. Publishing never waits: each client has a
/// bounded buffer, and a client that lets it fill up is dropped (told why, if it is still there)
/// rather than allowed to slow the daemon. With no client connected nothing is encoded: the ingest
/// path pays for the stream only while someone watches it.
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
    /// Clients joined and not left: read without the lock on every publish.
    private let connected = Atomic<Int>(0)

    public init() {}

    /// Sends the event to every client (docs/api.md, "live stream").
    public func publish(_ event: StreamEvent) {
        publish(event.name, event)
    }

    /// Any payload under any name: the typed events above, and tests of the fan-out itself.
    func publish<Payload: Encodable>(_ name: String, _ payload: Payload) {
        guard connected.load(ordering: .relaxed) > 0 else { return }
        guard let data = try? APIEncoding.encoder.encode(payload) else { return }
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
    public func join() -> (id: Int, events: AsyncStream<Event>) {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingOldest(Self.bufferLimit))
        clients.withLock { $0[id] = Client(continuation: continuation) }
        connected.add(1, ordering: .relaxed)
        return (id, stream)
    }

    /// Forgets the client and ends its stream; true when it had been dropped for falling behind.
    public func leave(_ id: Int) -> Bool {
        let removed = clients.withLock { $0.removeValue(forKey: id) }
        guard let removed else { return false }
        connected.subtract(1, ordering: .relaxed)
        removed.continuation.finish()
        return removed.dropped
    }

    /// Ends every stream (the daemon is stopping).
    public func finishAll() {
        clients.withLock { clients in
            for client in clients.values { client.continuation.finish() }
        }
    }

    public var clientCount: Int { clients.withLock { $0.count } }
}

/// JSON as the API replies and the stream write it: snake_case keys, ISO 8601 times, numbers
/// unrounded in the unit their key names.
public enum APIEncoding {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()
}
