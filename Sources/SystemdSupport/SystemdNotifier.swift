import CSystemd
import Glibc
import Logging
import Synchronization

/// The service manager's notification socket (sd_notify(3)): readiness,
/// status line, watchdog keep-alives, and the start of a clean shutdown.
///
/// Without `NOTIFY_SOCKET` (run by hand, in tests, not `Type=notify`) every
/// call is a no-op, so the daemon calls it unconditionally.
///
/// No call ever blocks. libsystemd's sd_notify has no non-blocking mode: it
/// sends on a blocking socket, so once the manager stops reading and the
/// socket's queue (net.unix.max_dgram_qlen datagrams) is full, it waits until
/// there is room, and a daemon waiting there ignores SIGTERM. The datagrams go
/// out on a socket of our own instead, with MSG_DONTWAIT (libsystemd stays for
/// the journal and sd_watchdog_enabled). A datagram that finds the
/// queue full is dropped and counted; the state it carried (READY=1,
/// STOPPING=1, the latest STATUS=) is kept and sent again once the queue has
/// room. WATCHDOG=1 is not kept: a late keep-alive proves nothing.
public struct SystemdNotifier: Sendable {
    /// The socket systemd listens on, from `NOTIFY_SOCKET`; nil when not under systemd.
    public let socketPath: String?
    private let channel: NotifyChannel?

    /// Whether notifications go anywhere.
    public var isActive: Bool { socketPath != nil }

    /// `logger` hears when notifications start being dropped and when they get through again
    /// (once per episode, not per datagram).
    public init(environment: [String: String], logger: Logger = Logger(label: "apheresisd.notify")) {
        let path = environment["NOTIFY_SOCKET"]
        self.socketPath = (path?.isEmpty ?? true) ? nil : path
        self.channel = socketPath.map { NotifyChannel(socket: $0, logger: logger) }
    }

    /// Tells systemd start-up is complete: `READY=1` plus a status line.
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        send(NotifyMessage(ready: true, status: status))
    }

    /// Replaces the one-line status `systemctl status` shows.
    @discardableResult
    public func status(_ text: String) -> Bool {
        send(NotifyMessage(status: text))
    }

    /// A keep-alive; must arrive within `WatchdogSec=` or systemd restarts the service.
    @discardableResult
    public func watchdog() -> Bool {
        send(NotifyMessage(watchdog: true))
    }

    /// Tells systemd the shutdown has begun (so a slow stop is not a hang).
    @discardableResult
    public func stopping(status: String? = nil) -> Bool {
        send(NotifyMessage(stopping: true, status: status))
    }

    /// Sends what a full queue held back (READY, STOPPING, the latest STATUS), if anything
    /// is and there is room now. True when nothing is left held back.
    @discardableResult
    public func resendHeldBack() -> Bool {
        channel?.resendHeldBack() ?? true
    }

    /// Datagrams dropped since start because the queue was full or nobody listened.
    public var droppedCount: Int { channel?.droppedCount ?? 0 }

    /// The watchdog timeout systemd enforces (`WATCHDOG_USEC`, for this
    /// process per `WATCHDOG_PID`); nil when the watchdog is off.
    public var watchdogInterval: Duration? {
        var microseconds: UInt64 = 0
        // 0: leave WATCHDOG_* in the environment so later calls see them too.
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(clamping: microseconds))
    }

    /// How often to send `WATCHDOG=1`: half the timeout, as sd_watchdog_enabled(3) advises.
    public var watchdogPingInterval: Duration? {
        watchdogInterval.map { $0 / 2 }
    }

    /// The status text on one line: the protocol is newline-separated assignments,
    /// so an embedded newline would start a bogus assignment.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0 == "\n" || $0 == "\r\n" || $0 == "\r" || $0 == "\0" ? " " : $0 })
    }

    static func message(_ head: String?, status: String?) -> String {
        var lines: [String] = []
        if let head { lines.append(head) }
        if let status { lines.append("STATUS=" + oneLine(status)) }
        return lines.joined(separator: "\n")
    }

    private func send(_ notification: NotifyMessage) -> Bool {
        guard let channel else { return false }
        return channel.send(notification)
    }
}

/// One datagram's assignments. Kept as fields, not text, so that held-back
/// state can be merged with what comes next.
struct NotifyMessage: Sendable, Equatable {
    var ready = false
    var stopping = false
    var watchdog = false
    var status: String?

    /// The datagram: assignments in a fixed order, one per line.
    var text: String {
        var heads: [String] = []
        if ready { heads.append("READY=1") }
        if stopping { heads.append("STOPPING=1") }
        if watchdog { heads.append("WATCHDOG=1") }
        return SystemdNotifier.message(heads.isEmpty ? nil : heads.joined(separator: "\n"), status: status)
    }

    /// What is worth sending again later: the state, not the keep-alive.
    var lasting: NotifyMessage? {
        let kept = NotifyMessage(ready: ready, stopping: stopping, status: status)
        return kept.text.isEmpty ? nil : kept
    }

    /// `later` sent after `self`: flags accumulate, the newer status wins.
    func merged(with later: NotifyMessage) -> NotifyMessage {
        NotifyMessage(
            ready: ready || later.ready, stopping: stopping || later.stopping, watchdog: watchdog || later.watchdog,
            status: later.status ?? status)
    }
}

/// Our own AF_UNIX datagram socket to the address in `NOTIFY_SOCKET`: non-blocking,
/// close-on-exec (the simulator child must not inherit it), never waiting.
final class NotifyChannel: Sendable {
    enum Outcome: Equatable {
        case sent
        /// The queue is full (EAGAIN): the reader is slow or gone.
        case full
        /// Any other failure (no such socket, refused, address unusable), with errno.
        case failed(Int32)
    }

    private struct State {
        var held: NotifyMessage?
        var dropped = 0
        /// Dropping since the last datagram that got through: the episode that is logged once.
        var dropping = false
    }

    private let descriptor: Int32
    private let address: NotifyAddress?
    private let logger: Logger
    private let state: Mutex<State>

    init(socket path: String, logger: Logger) {
        self.logger = logger
        address = NotifyAddress(path)
        if address == nil {
            logger.warning("NOTIFY_SOCKET=\(path): not an absolute path or @abstract name; systemd will hear nothing")
            descriptor = -1
        } else {
            descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if descriptor < 0 {
                logger.warning("cannot open a socket for systemd notifications: \(String(cString: strerror(errno)))")
            }
        }
        // Unusable from the start: said once above, not again with every drop.
        state = Mutex(State(dropping: descriptor < 0))
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    var droppedCount: Int { state.withLock { $0.dropped } }

    func send(_ notification: NotifyMessage) -> Bool {
        var report: Report?
        let sent = state.withLock { state -> Bool in
            // What was held back rides in this datagram: one send, and the newer status wins.
            let combined = state.held.map { $0.merged(with: notification) } ?? notification
            let outcome = transmit(combined.text)
            report = account(outcome, unsent: combined, in: &state)
            return outcome == .sent
        }
        report?.log(to: logger)
        return sent
    }

    func resendHeldBack() -> Bool {
        var report: Report?
        let clear = state.withLock { state -> Bool in
            guard let held = state.held else { return true }
            let outcome = transmit(held.text)
            report = account(outcome, unsent: held, in: &state)
            return outcome == .sent
        }
        report?.log(to: logger)
        return clear
    }

    /// Updates the held-back state and the count; returns what to log (outside the lock:
    /// a log handler may write to the journal).
    private func account(_ outcome: Outcome, unsent: NotifyMessage, in state: inout State) -> Report? {
        switch outcome {
        case .sent:
            state.held = nil
            guard state.dropping else { return nil }
            state.dropping = false
            return .recovered(dropped: state.dropped)
        case .full, .failed:
            state.held = unsent.lasting
            state.dropped += 1
            guard !state.dropping else { return nil }
            state.dropping = true
            if case .failed(let code) = outcome { return .failing(code) }
            return .full
        }
    }

    private enum Report {
        case full
        case failing(Int32)
        case recovered(dropped: Int)

        func log(to logger: Logger) {
            switch self {
            case .full:
                logger.warning(
                    "systemd notifications: the notification socket is full (nobody reads it); dropping them, keeping READY/STOPPING/STATUS to resend when it drains")
            case .failing(let code):
                logger.warning("systemd notifications: cannot send (\(String(cString: strerror(code)))); dropping them until one gets through")
            case .recovered(let dropped):
                logger.notice("systemd notifications get through again (\(dropped) dropped since start)")
            }
        }
    }

    /// One sendto(2) that never waits: the socket is non-blocking and MSG_DONTWAIT says so
    /// again; MSG_NOSIGNAL because a vanished reader must not raise SIGPIPE.
    private func transmit(_ text: String) -> Outcome {
        guard descriptor >= 0, let address else { return .failed(EBADF) }
        var bytes = Array(text.utf8)
        while true {
            let n = bytes.withUnsafeMutableBytes { buffer in
                address.withSockaddr { sockaddr, length in
                    sendto(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), sockaddr, length)
                }
            }
            if n >= 0 { return .sent }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK, ENOBUFS: return .full
            default: return .failed(errno)
            }
        }
    }
}

/// `NOTIFY_SOCKET` as a socket address: an absolute path, or `@name` in the abstract
/// namespace (a leading NUL byte and no terminator, the length saying where it ends).
struct NotifyAddress: Sendable {
    private let pathBytes: [UInt8]

    init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@"), bytes.count >= 2 else {
            return nil
        }
        if first == UInt8(ascii: "@") {
            pathBytes = [0] + bytes.dropFirst()
        } else {
            pathBytes = bytes + [0]
        }
        guard pathBytes.count <= MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
    }

    var isAbstract: Bool { pathBytes.first == 0 }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? MemoryLayout<sa_family_t>.size
        let length = socklen_t(pathOffset + pathBytes.count)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
