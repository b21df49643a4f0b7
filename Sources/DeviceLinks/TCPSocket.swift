#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CPosix

/// IPv4 TCP sockets on numeric addresses. The device listens, the host connects
/// (separator-interface.md, section 1).
public enum TCPSocket {
    /// A non-blocking listening socket on host:port (port 0: any free port).
    /// Returns the descriptor and the port actually bound.
    public static func listen(host: String = "127.0.0.1", port: UInt16) throws(SystemError) -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", "tcp \(host):\(port)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = try socketAddress(host: host, port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let error = SystemError("bind", "tcp \(host):\(port)")
            close(fd)
            throw error
        }
        guard Glibc.listen(fd, 4) == 0 else {
            let error = SystemError("listen", "tcp \(host):\(port)")
            close(fd)
            throw error
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        do {
            try Descriptor.setNonBlocking(fd)
        } catch {
            close(fd)
            throw error
        }
        return (fd, UInt16(bigEndian: actual.sin_port))
    }

    /// Accepts one pending connection, or nil when none is waiting.
    public static func accept(_ listener: Int32) throws(SystemError) -> Int32? {
        let fd = cposix_accept4(listener, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
        if fd >= 0 {
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return fd
        }
        if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED { return nil }
        throw SystemError("accept", "listener fd \(listener)")
    }

    /// A blocking connect with a timeout, returning a non-blocking descriptor.
    public static func connect(host: String, port: UInt16, timeoutMilliseconds: Int32 = 2_000) throws(SystemError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", "tcp \(host):\(port)") }
        var address: sockaddr_in
        do {
            address = try socketAddress(host: host, port: port)
        } catch {
            close(fd)
            throw error
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result != 0 {
            guard errno == EINPROGRESS else {
                let error = SystemError("connect", "tcp \(host):\(port)")
                close(fd)
                throw error
            }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&p, 1, timeoutMilliseconds)
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            guard ready == 1, soError == 0 else {
                let error = SystemError("connect", "tcp \(host):\(port)", code: ready == 0 ? ETIMEDOUT : soError)
                close(fd)
                throw error
            }
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    static func socketAddress(host: String, port: UInt16) throws(SystemError) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            throw SystemError("inet_pton", host, code: EINVAL)
        }
        return address
    }
}
