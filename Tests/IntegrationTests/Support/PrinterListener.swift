import Foundation
import Glibc

/// Where a raw (port 9100) label printer would be: a real TCP listener on 127.0.0.1 that keeps
/// every byte of every connection, in order.
final class PrinterListener: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var received: [[UInt8]] = []
    private var thread: Thread?

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fd = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [weak self] in
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 { return }
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(client, &chunk, chunk.count)
                    if n <= 0 { break }
                    bytes.append(contentsOf: chunk[0..<n])
                }
                close(client)
                guard let self else { return }
                self.lock.withLock { self.received.append(bytes) }
            }
        }
        self.thread = thread
        thread.start()
    }

    var connections: [[UInt8]] { lock.withLock { received } }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
