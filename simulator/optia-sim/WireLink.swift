import DeviceLinks

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The device end of one transport: a byte pipe the loop polls. Writes are
/// buffered and drained when the descriptor is writable, so a host that stops
/// reading never blocks the simulated device.
protocol WireLink: AnyObject {
    /// Descriptors to poll and for what.
    var pollDescriptors: [pollfd] { get }
    /// Whether a host is attached (always true for a pty or serial line,
    /// whose far end cannot be observed).
    var isConnected: Bool { get }
    /// Handles readiness; returns bytes received and whether the connection changed.
    func service(_ ready: [pollfd]) throws -> LinkActivity
    func write(_ bytes: [UInt8])
    /// Simulates pulling the cable: a TCP device drops the connection and
    /// stops listening; a serial line just goes quiet (the loop discards bytes).
    func pullCable()
    func reconnectCable() throws
    func close()
}

struct LinkActivity {
    var received: [UInt8] = []
    var connected = false
    var disconnected = false
}

/// Output buffering shared by the descriptor-backed links.
final class OutputBuffer {
    private var pending: [UInt8] = []
    var isEmpty: Bool { pending.isEmpty }

    func append(_ bytes: [UInt8]) { pending += bytes }
    func clear() { pending.removeAll() }

    /// Writes what the kernel takes now. Returns false when the peer is gone.
    func drain(to fd: Int32) throws -> Bool {
        while !pending.isEmpty {
            switch try Descriptor.write(fd, pending[...]) {
            case .written(let n): pending.removeFirst(n)
            case .wouldBlock: return true
            case .closed: return false
            }
        }
        return true
    }
}

/// A pseudo-terminal or a real serial line: one descriptor, always "connected".
final class TerminalLink: WireLink {
    private var fd: Int32
    private let keeper: Int32?
    private let output = OutputBuffer()
    private var readBuffer = [UInt8](repeating: 0, count: 4096)

    init(fd: Int32, keeper: Int32?) {
        self.fd = fd
        self.keeper = keeper
    }

    var pollDescriptors: [pollfd] {
        [pollfd(fd: fd, events: Int16(POLLIN) | (output.isEmpty ? 0 : Int16(POLLOUT)), revents: 0)]
    }
    var isConnected: Bool { true }

    func service(_ ready: [pollfd]) throws -> LinkActivity {
        var activity = LinkActivity()
        guard let p = ready.first else { return activity }
        if p.revents & Int16(POLLIN) != 0 {
            while case .bytes(let n) = try Descriptor.read(fd, into: &readBuffer) {
                activity.received += readBuffer[0..<n]
            }
        }
        if p.revents & Int16(POLLOUT) != 0 {
            if try !output.drain(to: fd) { output.clear() }
        }
        return activity
    }

    func write(_ bytes: [UInt8]) {
        output.append(bytes)
        if (try? output.drain(to: fd)) == false { output.clear() }
    }

    func pullCable() { output.clear() }
    func reconnectCable() throws {}

    func close() {
        Glibc.close(fd)
        if let keeper { Glibc.close(keeper) }
    }
}

/// The device listens on TCP; one host at a time (a new connection replaces
/// an old one, which after a host restart is usually half-dead).
final class TCPLink: WireLink {
    private let host: String
    let port: UInt16
    private var listener: Int32?
    private var connection: Int32?
    private let output = OutputBuffer()
    private var readBuffer = [UInt8](repeating: 0, count: 4096)

    init(host: String, port: UInt16) throws {
        self.host = host
        let (fd, bound) = try TCPSocket.listen(host: host, port: port)
        listener = fd
        self.port = bound
    }

    var pollDescriptors: [pollfd] {
        var list: [pollfd] = []
        if let listener { list.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0)) }
        if let connection {
            list.append(pollfd(fd: connection, events: Int16(POLLIN) | (output.isEmpty ? 0 : Int16(POLLOUT)), revents: 0))
        }
        return list
    }
    var isConnected: Bool { connection != nil }

    func service(_ ready: [pollfd]) throws -> LinkActivity {
        var activity = LinkActivity()
        for p in ready where p.revents != 0 {
            if p.fd == listener {
                while let fd = try TCPSocket.accept(p.fd) {
                    if connection != nil { dropConnection(); activity.disconnected = true }
                    connection = fd
                    activity.connected = true
                }
            } else if p.fd == connection {
                if p.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    readLoop: while true {
                        switch try Descriptor.read(p.fd, into: &readBuffer) {
                        case .bytes(let n): activity.received += readBuffer[0..<n]
                        case .wouldBlock: break readLoop
                        case .closed:
                            dropConnection()
                            activity.disconnected = true
                            break readLoop
                        }
                    }
                }
                if let fd = connection, p.revents & Int16(POLLOUT) != 0 {
                    if try !output.drain(to: fd) {
                        dropConnection()
                        activity.disconnected = true
                    }
                }
            }
        }
        return activity
    }

    func write(_ bytes: [UInt8]) {
        guard let fd = connection else { return }
        output.append(bytes)
        if (try? output.drain(to: fd)) == false { dropConnection() }
    }

    private func dropConnection() {
        if let fd = connection { Glibc.close(fd) }
        connection = nil
        output.clear()
    }

    func pullCable() {
        dropConnection()
        if let fd = listener { Glibc.close(fd) }
        listener = nil
    }

    func reconnectCable() throws {
        guard listener == nil else { return }
        listener = try TCPSocket.listen(host: host, port: port).fd
    }

    func close() {
        dropConnection()
        if let fd = listener { Glibc.close(fd) }
        listener = nil
    }
}
