import CSystemd

/// The service manager's notification socket (sd_notify(3)): readiness,
/// status line, watchdog keep-alives, and the start of a clean shutdown.
///
/// Without `NOTIFY_SOCKET` (run by hand, in tests, not `Type=notify`) every
/// call is a no-op, so the daemon calls it unconditionally.
public struct SystemdNotifier: Sendable {
    /// The socket systemd listens on, from `NOTIFY_SOCKET`; nil when not under systemd.
    public let socketPath: String?

    /// Whether notifications go anywhere.
    public var isActive: Bool { socketPath != nil }

    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"]
        self.socketPath = (path?.isEmpty ?? true) ? nil : path
    }

    /// Tells systemd start-up is complete: `READY=1` plus a status line.
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        send(Self.message("READY=1", status: status))
    }

    /// Replaces the one-line status `systemctl status` shows.
    @discardableResult
    public func status(_ text: String) -> Bool {
        send(Self.message(nil, status: text))
    }

    /// A keep-alive; must arrive within `WatchdogSec=` or systemd restarts the service.
    @discardableResult
    public func watchdog() -> Bool {
        send("WATCHDOG=1")
    }

    /// Tells systemd the shutdown has begun (so a slow stop is not a hang).
    @discardableResult
    public func stopping(status: String? = nil) -> Bool {
        send(Self.message("STOPPING=1", status: status))
    }

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

    private func send(_ message: String) -> Bool {
        guard isActive, !message.isEmpty else { return false }
        // sd_notify reads NOTIFY_SOCKET itself; 0 keeps it set for later calls.
        return sd_notify(0, message) > 0
    }
}
