import Testing

@testable import LiveState

@Suite("The live feed never waits for a client")
struct LiveFeedTests {
    struct Payload: Encodable { var n: Int }

    @Test func aClientThatKeepsUpGetsEveryEventInOrder() async {
        let feed = LiveFeed()
        let (id, events) = feed.join()
        for n in 0..<100 { feed.publish("sample", Payload(n: n)) }
        feed.finishAll()
        var received: [String] = []
        for await event in events { received.append(event.json) }
        #expect(received == (0..<100).map { #"{"n":\#($0)}"# })
        #expect(feed.leave(id) == false)
    }

    @Test func aClientThatFallsBehindIsDroppedAndTheOthersAreNot() async {
        let feed = LiveFeed()
        let (slow, slowEvents) = feed.join()
        let (fast, fastEvents) = feed.join()
        var fastCount = 0
        var iterator = fastEvents.makeAsyncIterator()
        for n in 0..<(LiveFeed.bufferLimit * 3) {
            feed.publish("sample", Payload(n: n))  // returns at once, whatever the clients do
            if await iterator.next() != nil { fastCount += 1 }
        }
        #expect(fastCount == LiveFeed.bufferLimit * 3)
        #expect(feed.leave(slow) == true, "the client that read nothing was dropped")
        // Its stream ended after what fit in its buffer: a last event can still say why.
        var kept = 0
        for await _ in slowEvents { kept += 1 }
        #expect(kept == LiveFeed.bufferLimit)
        #expect(feed.leave(fast) == false)
        #expect(feed.clientCount == 0)
    }
}
