import Synchronization
import Testing

@testable import WebEdge

@Suite("Sessions end on the monotonic clock")
struct SessionBookTests {
    /// A monotonic clock the test moves; the wall clock is not consulted at all.
    final class Clock: Sendable {
        let now = Mutex(Duration.seconds(1000))
        func advance(_ d: Duration) { now.withLock { $0 += d } }
    }

    @Test func aSessionEndsAfterItsIdleLimitWithoutUse() {
        let clock = Clock()
        let book = SessionBook(idleLimit: .seconds(30 * 60), absoluteLimit: .seconds(12 * 3600), clock: { clock.now.withLock { $0 } })
        let token = book.open(user: "op1", role: "operator")
        clock.advance(.seconds(29 * 60))
        #expect(book.use(token)?.user == "op1")
        clock.advance(.seconds(29 * 60))  // used 29 min ago: still within the idle limit
        #expect(book.use(token) != nil)
        clock.advance(.seconds(30 * 60))
        #expect(book.use(token) == nil)
        #expect(book.use(token) == nil, "an ended session stays ended")
    }

    @Test func aSessionInUseEndsAtItsAbsoluteLimit() {
        let clock = Clock()
        let book = SessionBook(idleLimit: .seconds(30 * 60), absoluteLimit: .seconds(3600), clock: { clock.now.withLock { $0 } })
        let token = book.open(user: "op1", role: "operator")
        for _ in 0..<5 {
            clock.advance(.seconds(10 * 60))
            #expect(book.use(token) != nil)
        }
        clock.advance(.seconds(10 * 60))
        #expect(book.use(token) == nil)
    }

    @Test func theExpiryShownIsTheWallClockNowPlusWhatIsLeft() throws {
        let clock = Clock()
        let book = SessionBook(idleLimit: .seconds(30 * 60), absoluteLimit: .seconds(12 * 3600), clock: { clock.now.withLock { $0 } })
        let token = book.open(user: "op1", role: "operator")
        clock.advance(.seconds(10 * 60))
        let session = try #require(book.use(token))
        // The wall clock may say anything (here an hour behind); the session still has 30 min left.
        #expect(book.expiresAtUnixMilliseconds(of: session, wallNow: 5_000_000) == 5_000_000 + 30 * 60 * 1000)
    }
}
