import Foundation
import Synchronization
import Testing

@testable import LiveState

/// Counts how often it is encoded: the feed must not encode for nobody.
struct CountedPayload: Encodable {
    static let encodings = Atomic<Int>(0)
    var n: Int
    func encode(to encoder: any Encoder) throws {
        Self.encodings.add(1, ordering: .relaxed)
        var c = encoder.singleValueContainer()
        try c.encode(n)
    }
}

@Suite("Stream events: one type each, encoded only for a listener")
struct StreamEventTests {
    @Test func nothingIsEncodedWhileNoClientListens() async {
        let feed = LiveFeed()
        let before = CountedPayload.encodings.load(ordering: .relaxed)
        for n in 0..<100 { feed.publish("sample", CountedPayload(n: n)) }
        #expect(CountedPayload.encodings.load(ordering: .relaxed) == before)

        let (id, events) = feed.join()
        feed.publish("sample", CountedPayload(n: 7))
        #expect(CountedPayload.encodings.load(ordering: .relaxed) == before + 1)
        _ = feed.leave(id)
        feed.publish("sample", CountedPayload(n: 8))
        #expect(CountedPayload.encodings.load(ordering: .relaxed) == before + 1)
        feed.finishAll()
        var received: [String] = []
        for await event in events { received.append(event.json) }
        #expect(received == ["7"])
    }

    @Test func eachEventCarriesItsNameAndItsOwnFields() async throws {
        let feed = LiveFeed()
        let (_, events) = feed.join()
        let at = Date(timeIntervalSince1970: 1_795_000_000)
        feed.publish(.link(StreamEvent.Link(device: "optia-1", linkState: "up", at: at)))
        feed.publish(
            .alarm(
                StreamEvent.Alarm(
                    alarmId: 42, device: nil, deviceSerial: "1OPT00417", runId: "RUN-1", change: "acknowledged", code: "AC_RATIO",
                    level: "alarm", by: "nurse", at: at)))
        feed.publish(.store(StreamEvent.Store(state: "failing", message: "full", since: at, failedWrites: 3, at: at)))
        feed.finishAll()
        var received: [LiveFeed.Event] = []
        for await event in events { received.append(event) }
        #expect(received.map(\.name) == ["link", "alarm", "store"])
        #expect(received[0].json == #"{"at":"2026-11-18T11:06:40Z","device":"optia-1","link_state":"up"}"#)
        // An acknowledgement names no link when none is known; absent fields are left out, not null.
        let alarm = try #require(try JSONSerialization.jsonObject(with: Data(received[1].json.utf8)) as? [String: Any])
        #expect(alarm["alarm_id"] as? Int == 42)
        #expect(alarm["by"] as? String == "nurse")
        #expect(alarm["device"] == nil)
        #expect(alarm["value"] == nil)
        let store = try #require(try JSONSerialization.jsonObject(with: Data(received[2].json.utf8)) as? [String: Any])
        #expect(store["code"] as? String == "STORE_WRITE_FAILED")
        #expect(store["failed_writes"] as? Int == 3)
    }
}
