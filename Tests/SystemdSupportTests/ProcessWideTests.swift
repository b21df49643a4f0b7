import Foundation
import Glibc
import Testing

@testable import SystemdSupport

/// Tests that change the process environment (sd_notify and sd_watchdog_enabled
/// read it, not the dictionary we pass) or start child processes (which copy
/// it): one at a time, so that no test sees another's variables half-written.
@Suite(.serialized)
struct ProcessWideTests {}

/// Sets variables for the duration of `body`, then restores what was there.
func withEnvironment<T>(_ values: [String: String?], _ body: () throws -> T) rethrows -> T {
    var saved: [String: String?] = [:]
    for (key, value) in values {
        saved[key] = getenv(key).map { String(cString: $0) }
        if let value { setenv(key, value, 1) } else { unsetenv(key) }
    }
    defer {
        for (key, value) in saved {
            if let value { setenv(key, value, 1) } else { unsetenv(key) }
        }
    }
    return try body()
}

/// A datagram socket standing in for systemd's notification socket.
final class NotifyListener {
    let path: String
    private let fd: Int32

    init() throws {
        path = "/tmp/apheresisd-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8) + [0])
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        // A missing datagram fails the test after 2 s instead of hanging it.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram, or nil after the timeout.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// Nothing more queued (non-blocking peek).
    func isEmpty() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT) | Int32(MSG_PEEK)) < 0
    }
}

extension ProcessWideTests {
    @Suite struct Notify {
        @Test func sendsTheExactDatagramsInOrder() throws {
            let listener = try NotifyListener()
            withEnvironment(["NOTIFY_SOCKET": listener.path]) {
                let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.path])
                #expect(notifier.isActive)
                #expect(notifier.ready(status: "2 devices, 0 runs open"))
                #expect(notifier.status("optia-1: link up\nrun 42 open"))
                #expect(notifier.watchdog())
                #expect(notifier.stopping(status: "closing the store"))
                #expect(notifier.ready())

                #expect(listener.receive() == "READY=1\nSTATUS=2 devices, 0 runs open")
                #expect(listener.receive() == "STATUS=optia-1: link up run 42 open")
                #expect(listener.receive() == "WATCHDOG=1")
                #expect(listener.receive() == "STOPPING=1\nSTATUS=closing the store")
                #expect(listener.receive() == "READY=1")
                #expect(listener.isEmpty())
            }
        }

        @Test func keepsNotifySocketForLaterCalls() throws {
            let listener = try NotifyListener()
            withEnvironment(["NOTIFY_SOCKET": listener.path]) {
                let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.path])
                notifier.watchdog()
                #expect(getenv("NOTIFY_SOCKET").map { String(cString: $0) } == listener.path)
                notifier.watchdog()
                #expect(listener.receive() == "WATCHDOG=1")
                #expect(listener.receive() == "WATCHDOG=1")
            }
        }

        @Test func withoutNotifySocketNothingIsSent() {
            withEnvironment(["NOTIFY_SOCKET": nil]) {
                let notifier = SystemdNotifier(environment: [:])
                #expect(!notifier.isActive)
                #expect(notifier.socketPath == nil)
                #expect(!notifier.ready(status: "x"))
                #expect(!notifier.watchdog())
                #expect(!notifier.stopping())
            }
            #expect(!SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]).isActive)
        }

        @Test func watchdogIntervalForThisProcess() {
            withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(getpid())]) {
                let notifier = SystemdNotifier(environment: [:])
                #expect(notifier.watchdogInterval == .seconds(30))
                #expect(notifier.watchdogPingInterval == .seconds(15))
                // Still set: asking twice gives the same answer.
                #expect(notifier.watchdogInterval == .seconds(30))
            }
        }

        @Test func watchdogIntervalWithoutPid() {
            withEnvironment(["WATCHDOG_USEC": "500000", "WATCHDOG_PID": nil]) {
                #expect(SystemdNotifier(environment: [:]).watchdogInterval == .milliseconds(500))
            }
        }

        @Test func noWatchdogForAnotherProcessOrWhenUnset() {
            withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(getpid() + 1)]) {
                #expect(SystemdNotifier(environment: [:]).watchdogInterval == nil)
            }
            withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
                #expect(SystemdNotifier(environment: [:]).watchdogInterval == nil)
                #expect(SystemdNotifier(environment: [:]).watchdogPingInterval == nil)
            }
        }
    }
}
