import Foundation
import Glibc
import Testing

@testable import SystemdSupport

/// A notification socket that nobody reads fills up after net.unix.max_dgram_qlen
/// datagrams; from then on every notification must return at once (dropped and
/// counted), and the state it carried must reach systemd once there is room.
/// The notifier reads NOTIFY_SOCKET from the dictionary it is given, so these
/// tests leave the process environment alone.
@Suite struct NotifyBackpressure {
    @Test func aFullQueueNeverBlocksAndTheLatestStatusFollowsOnceItDrains() throws {
        let listener = try NotifyListener()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.path])
        let counts = try #require(
            runsToCompletion {
                var accepted = 0
                while notifier.watchdog() {
                    accepted += 1
                    if accepted > 100_000 { break }
                }
                let afterFull = [notifier.status("first"), notifier.status("second"), notifier.watchdog()]
                return (accepted, afterFull)
            }, "a notification blocked on the full socket")
        #expect(counts.0 > 0 && counts.0 <= 100_000, "accepted \(counts.0) before the queue was full")
        #expect(counts.1 == [false, false, false])
        #expect(notifier.droppedCount == 4)  // the one that found the queue full, then three more

        #expect(listener.drainAll() == counts.0)
        #expect(notifier.resendHeldBack())
        #expect(listener.receive() == "STATUS=second")
        #expect(listener.isEmpty())
        // Nothing held back any more: nothing sent again.
        #expect(notifier.resendHeldBack())
        #expect(listener.isEmpty())
    }

    @Test func readyHeldBackGoesOutWithTheNextNotification() throws {
        let listener = try NotifyListener()
        let filled = try fillQueue(listener.path)
        #expect(filled > 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.path])
        #expect(!notifier.ready(status: "starting"))
        #expect(!notifier.status("2 devices, 0 runs open"))
        #expect(listener.drainAll() == filled)
        // The keep-alive carries what was held back: one datagram, in the order given.
        #expect(notifier.watchdog())
        #expect(listener.receive() == "READY=1\nWATCHDOG=1\nSTATUS=2 devices, 0 runs open")
        #expect(listener.isEmpty())
        #expect(notifier.stopping())
        #expect(listener.receive() == "STOPPING=1")
    }

    @Test func abstractNamespaceAddress() throws {
        let name = "apheresisd-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try bindDatagram(Array(name.utf8), abstract: true)
        defer { close(fd) }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        #expect(notifier.ready(status: "up"))
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(n > 0)
        #expect(String(decoding: buffer[0..<max(n, 0)], as: UTF8.self) == "READY=1\nSTATUS=up")
    }

    @Test func nobodyListeningOrAnUnusableAddressIsDroppedNotWaitedFor() throws {
        let missing = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/tmp/apheresisd-no-such-socket-\(getpid())"])
        #expect(missing.isActive)
        #expect(!missing.ready())
        #expect(!missing.watchdog())
        #expect(missing.droppedCount == 2)

        for text in ["relative/notify", "@", "vsock:2:1234", "/" + String(repeating: "x", count: 200)] {
            let unusable = SystemdNotifier(environment: ["NOTIFY_SOCKET": text])
            #expect(!unusable.status("x"), "\(text)")
            #expect(!unusable.resendHeldBack(), "\(text): the status stays held back")
        }
    }

    @Test func heldBackStateMerges() {
        let held = NotifyMessage(ready: true, status: "old")
        let merged = held.merged(with: NotifyMessage(watchdog: true, status: "new"))
        #expect(merged == NotifyMessage(ready: true, watchdog: true, status: "new"))
        #expect(merged.lasting == NotifyMessage(ready: true, status: "new"))
        #expect(NotifyMessage(watchdog: true).lasting == nil)
        #expect(held.merged(with: NotifyMessage(stopping: true)).text == "READY=1\nSTOPPING=1\nSTATUS=old")
    }

    @Test func addresses() throws {
        #expect(NotifyAddress("/run/systemd/notify")?.isAbstract == false)
        #expect(NotifyAddress("@/org/freedesktop/systemd1/notify/123")?.isAbstract == true)
        #expect(NotifyAddress("") == nil)
        #expect(NotifyAddress("@") == nil)
        #expect(NotifyAddress("run/notify") == nil)
        #expect(NotifyAddress("/" + String(repeating: "x", count: 106)) != nil)
        #expect(NotifyAddress("/" + String(repeating: "x", count: 107)) == nil)  // 109 bytes with the NUL: more than sun_path holds
    }
}

/// Runs `body` on a thread of its own and returns its result, or nil if it has not
/// finished after 30 s (a blocked send would otherwise hang the whole test run).
private func runsToCompletion<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T? {
    let done = DispatchSemaphore(value: 0)
    let result = ResultBox<T>()
    Thread {
        result.set(body())
        done.signal()
    }.start()
    guard done.wait(timeout: .now() + 30) == .success else { return nil }
    return result.get()
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T?
    func set(_ v: T) { lock.withLock { value = v } }
    func get() -> T? { lock.withLock { value } }
}

/// Sends from a socket of the test's own until the listener's queue is full; returns how many fitted.
private func fillQueue(_ path: String) throws -> Int {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
    var sent = 0
    let filler = Array("X_FILLER=1".utf8)
    while sent < 100_000 {
        let n = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, filler, filler.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if n < 0 {
            guard errno == EAGAIN else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            return sent
        }
        sent += 1
    }
    return sent
}

/// A bound datagram socket at `name` (a path, or an abstract name without the leading NUL).
private func bindDatagram(_ name: [UInt8], abstract: Bool) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let path = abstract ? [0] + name : name + [0]
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
    let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else {
        close(fd)
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    return fd
}

extension NotifyListener {
    /// Reads every queued datagram without waiting; returns how many there were.
    func drainAll() -> Int {
        var count = 0
        while !isEmpty(), receive() != nil { count += 1 }
        return count
    }
}
