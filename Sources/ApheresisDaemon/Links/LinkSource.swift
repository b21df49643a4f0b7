import DaemonConfiguration
import DeviceLinks
import NIOCore
import NIOPosix

/// A byte stream to one separator, whatever carries it. Connecting may fail;
/// the device service retries with capped backoff.
protocol LinkSource: Sendable {
    /// What to call the link in logs and status ("/dev/optia-1", "10.1.2.3:4001").
    var description: String { get }
    func connect(group: EventLoopGroup) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer>
}

/// A terminal device opened with POSIX calls: a pseudo-terminal (the bundled
/// simulator, socat, serial-over-IP bridges), which libserialport cannot open.
struct TerminalLinkSource: LinkSource {
    var path: String
    var description: String { path }

    func connect(group: EventLoopGroup) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        // open(2) and termios calls: off the Swift concurrency pool.
        let fd = try await NIOThreadPool.singleton.runIfActive { [path] in
            try PseudoTerminal.openTerminal(path: path, baud: nil)
        }
        return try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fd) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    }
}

/// A link whose device side does not exist yet (the demo's simulator starting): not a lost cable,
/// so no LINK_DOWN for it; staleness still runs by the clock.
struct LinkNotReady: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// The demo simulator's pseudo-terminal: only the one the running child reported, never what a
/// leftover `--link` symlink points at (that terminal may belong to another program by now).
struct SimulatorTerminalLinkSource: LinkSource {
    var reported: ReportedTerminal
    var linkPath: String
    var description: String { reported.path.map { "\($0) (simulator, \(linkPath))" } ?? "simulator pseudo-terminal (\(linkPath))" }

    func connect(group: EventLoopGroup) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        guard let path = reported.path else { throw LinkNotReady(reason: "the simulator has not reported its pseudo-terminal yet (starting, or between runs)") }
        return try await TerminalLinkSource(path: path).connect(group: group)
    }
}

/// A real serial port through libserialport, found by path (symlinks resolved)
/// or by the USB adapter's serial number or VID:PID.
struct SerialLinkSource: LinkSource {
    enum Selector: Sendable, Equatable {
        case path(String)
        case usbSerialNumber(String)
        case usbVendorProduct(vendor: UInt16, product: UInt16)
    }

    var selector: Selector
    var baud: Int

    var description: String {
        switch selector {
        case .path(let path): "\(path) @\(baud)"
        case .usbSerialNumber(let serial): "usb serial \(serial) @\(baud)"
        case .usbVendorProduct(let vendor, let product): "usb \(USBDeviceID(vendorID: vendor, productID: product)) @\(baud)"
        }
    }

    func connect(group: EventLoopGroup) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        // Enumerating ports reads sysfs, and opening one configures the line:
        // blocking calls, so they run on NIO's thread pool, not the Swift pool.
        let fd = try await NIOThreadPool.singleton.runIfActive { [selector, baud] in
            try Self.open(selector, baud: baud)
        }
        return try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fd) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    }

    private static func open(_ selector: Selector, baud: Int) throws -> Int32 {
        let path: String
        switch selector {
        case .path(let p): path = p
        case .usbSerialNumber(let serial):
            guard let port = SerialPort.enumerate().first(where: { $0.usbSerialNumber == serial }) else {
                throw LinkError("no USB serial adapter with serial number \(serial) is plugged in")
            }
            path = port.path
        case .usbVendorProduct(let vendor, let product):
            let id = USBDeviceID(vendorID: vendor, productID: product)
            let matches = SerialPort.enumerate().filter { $0.usbVendorID == vendor && $0.usbProductID == product }
            guard let port = matches.first else {
                throw LinkError("no USB serial adapter \(id) is plugged in")
            }
            guard matches.count == 1 else {
                throw LinkError("\(matches.count) adapters \(id) are plugged in (\(matches.map(\.path).joined(separator: ", "))): name the device by path or USB serial number")
            }
            path = port.path
        }
        // SerialPort.open hands over a dup() of libserialport's descriptor.
        return try SerialPort.open(path: path, baud: baud)
    }
}

/// TCP: the device (or a serial-to-Ethernet bridge) listens, the daemon connects.
struct TCPLinkSource: LinkSource {
    var host: String
    var port: Int
    var description: String { "\(host):\(port)" }

    static let connectTimeout: TimeAmount = .seconds(5)

    func connect(group: EventLoopGroup) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        do {
            return try await ClientBootstrap(group: group)
                // TCP_NODELAY is an IPPROTO_TCP option: at SOL_SOCKET its number (1) is SO_DEBUG, which
                // needs CAP_NET_ADMIN and made every connect fail with EPERM for the service user.
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .connectTimeout(Self.connectTimeout)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            // The journal and the API say it in plain words, not in NIO's type names.
            throw LinkError(Self.plainConnectFailure(error))
        }
    }

    static func plainConnectFailure(_ error: any Error) -> String {
        func reason(_ error: any Error) -> String {
            if let io = error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
            if case ChannelError.connectTimeout = error { return "no answer within \(connectTimeout.nanoseconds / 1_000_000_000) s" }
            return "\(error)"
        }
        if let failure = error as? NIOConnectionError {
            if failure.dnsAError != nil || failure.dnsAAAAError != nil { return "the host name \(failure.host) cannot be resolved" }
            let reasons = Set(failure.connectionErrors.map { reason($0.error) })
            return reasons.isEmpty ? "no address to connect to" : reasons.sorted().joined(separator: "; ")
        }
        return reason(error)
    }
}
