#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Blocking-free helpers on raw descriptors. They are called from a thread
/// that owns the descriptor (the simulator's loop, a link's reader thread),
/// never from the Swift concurrency pool.
public enum Descriptor {
    public static func setNonBlocking(_ fd: Int32) throws(SystemError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw SystemError("fcntl(O_NONBLOCK)", "fd \(fd)")
        }
    }

    public static func setCloseOnExec(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }

    public enum ReadResult: Equatable, Sendable {
        case bytes(Int)
        /// Nothing to read right now.
        case wouldBlock
        /// The other side is gone: EOF on a socket, EIO on a pty whose peer closed.
        case closed
    }

    /// One non-blocking read into `buffer`.
    public static func read(_ fd: Int32, into buffer: inout [UInt8]) throws(SystemError) -> ReadResult {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EIO, ECONNRESET, EPIPE, ENOTCONN, ETIMEDOUT, EHOSTUNREACH: return .closed
            default: throw SystemError("read", "fd \(fd)")
            }
        }
    }

    public enum WriteResult: Equatable, Sendable {
        case written(Int)
        case wouldBlock
        case closed
    }

    /// One non-blocking write; may write only part of `bytes`.
    public static func write(_ fd: Int32, _ bytes: ArraySlice<UInt8>) throws(SystemError) -> WriteResult {
        while true {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n >= 0 { return .written(n) }
            if errno == ENOTSOCK {
                let m = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if m >= 0 { return .written(m) }
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EIO, ECONNRESET, EPIPE, ENOTCONN: return .closed
            default: throw SystemError("write", "fd \(fd)")
            }
        }
    }

    /// Writes everything, waiting with poll() while the kernel buffer is full.
    /// Returns false if the peer went away.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], timeoutMilliseconds: Int32 = 5_000) throws(SystemError) -> Bool {
        var offset = 0
        while offset < bytes.count {
            switch try write(fd, bytes[offset...]) {
            case .written(let n): offset += n
            case .closed: return false
            case .wouldBlock:
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let r = poll(&p, 1, timeoutMilliseconds)
                if r == 0 { return false }
                if r < 0 && errno != EINTR { throw SystemError("poll", "fd \(fd)") }
            }
        }
        return true
    }
}
