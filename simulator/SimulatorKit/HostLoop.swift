import DeviceLinks
import SeparatorProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The host side of a link on a thread of its own: opens a terminal or
/// connects to a device's TCP port, answers through a `ReferenceHost`, and
/// reopens with capped backoff after EOF, error or hang-up. `optia-sim
/// monitor` and the integration tests use it.
public final class HostLoop: Sendable {
    public enum Endpoint: Sendable, CustomStringConvertible {
        case terminal(path: String)
        case tcp(host: String, port: UInt16)

        public var description: String {
            switch self {
            case .terminal(let path): path
            case .tcp(let host, let port): "\(host):\(port)"
            }
        }
    }

    public struct Snapshot: Sendable {
        public var messages: [SeparatorMessage] = []
        public var duplicates = 0
        public var quarantined: [String] = []
        public var connections = 0
        public var disconnections = 0
    }

    private let endpoint: Endpoint
    private let onOutcome: @Sendable (ReferenceHost.Outcome) -> Void
    private let state = Mutex(Snapshot())
    private let stopRequested = Atomic<Bool>(false)

    public init(endpoint: Endpoint, onOutcome: @escaping @Sendable (ReferenceHost.Outcome) -> Void = { _ in }) {
        self.endpoint = endpoint
        self.onOutcome = onOutcome
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    public func stop() { stopRequested.store(true, ordering: .relaxed) }

    /// Blocks until `stop()`.
    public func run() {
        var host = ReferenceHost()
        let start = ContinuousClock.now
        var backoff = Duration.milliseconds(20)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopRequested.load(ordering: .relaxed) {
            guard let fd = open() else {
                sleep(backoff)
                backoff = min(backoff * 2, .milliseconds(250))
                continue
            }
            backoff = .milliseconds(20)
            state.withLock { $0.connections += 1 }
            connection: while !stopRequested.load(ordering: .relaxed) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                var timeout: Int32 = 50
                if let deadline = host.deadline {
                    let left = (deadline - (ContinuousClock.now - start))
                    timeout = Int32(max(0, min(50, Double(left.components.seconds) * 1000 + Double(left.components.attoseconds) * 1e-15)))
                }
                let ready = poll(&p, 1, timeout)
                let now = ContinuousClock.now - start
                if ready == 0 {
                    if let deadline = host.deadline, now >= deadline {
                        let (answer, outcomes) = host.timeout(now: now)
                        deliver(outcomes, host: host)
                        if !answer.isEmpty, (try? Descriptor.writeAll(fd, answer)) != true { break connection }
                    }
                    continue
                }
                if ready < 0 { if errno == EINTR { continue } else { break connection } }
                var received: [UInt8] = []
                var closed = false
                reading: while true {
                    switch (try? Descriptor.read(fd, into: &buffer)) ?? .closed {
                    case .bytes(let n): received += buffer[0..<n]
                    case .wouldBlock: break reading
                    case .closed:
                        closed = true
                        break reading
                    }
                }
                if !received.isEmpty {
                    let (answer, outcomes) = host.receive(received, now: now)
                    deliver(outcomes, host: host)
                    if !answer.isEmpty, (try? Descriptor.writeAll(fd, answer)) != true { closed = true }
                }
                if closed || p.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && received.isEmpty { break connection }
            }
            Glibc.close(fd)
            state.withLock { $0.disconnections += 1 }
        }
    }

    private func deliver(_ outcomes: [ReferenceHost.Outcome], host: ReferenceHost) {
        guard !outcomes.isEmpty else { return }
        state.withLock { snapshot in
            for outcome in outcomes {
                switch outcome {
                case .stored(let message): snapshot.messages.append(message)
                case .duplicate: snapshot.duplicates += 1
                case .quarantined(_, let reason): snapshot.quarantined.append(reason)
                }
            }
        }
        for outcome in outcomes { onOutcome(outcome) }
    }

    private func open() -> Int32? {
        switch endpoint {
        case .terminal(let path):
            return try? PseudoTerminal.openTerminal(path: path, baud: nil)
        case .tcp(let host, let port):
            guard let fd = try? TCPSocket.connect(host: host, port: port, timeoutMilliseconds: 500) else { return nil }
            return fd
        }
    }

    private func sleep(_ duration: Duration) {
        var none = pollfd()
        _ = poll(&none, 0, Int32(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000))
    }
}
