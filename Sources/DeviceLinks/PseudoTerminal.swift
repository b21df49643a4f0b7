#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CPosix

/// Pseudo-terminals through plain POSIX calls: libserialport 0.1.1 cannot
/// open them (it looks ports up under /sys/class/tty and treats a failed
/// TIOCMGET as fatal).
public enum PseudoTerminal {
    public struct Pair: Sendable {
        /// The device side (the simulator writes here).
        public var master: Int32
        /// The path a host opens, e.g. /dev/pts/3.
        public var path: String
        /// A descriptor on the host side that the device side keeps open, so
        /// the master never sees a hang-up while no host is attached and the
        /// raw settings below survive the host closing and reopening.
        public var keeper: Int32
    }

    /// A new pair, in raw mode (no echo, no line editing, 8 bits).
    public static func create() throws(SystemError) -> Pair {
        let master = cposix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard master >= 0 else { throw SystemError("posix_openpt", "/dev/ptmx") }
        guard cposix_grantpt(master) == 0, cposix_unlockpt(master) == 0 else {
            let error = SystemError("grantpt/unlockpt", "/dev/ptmx")
            close(master)
            throw error
        }
        var name = [CChar](repeating: 0, count: 128)
        guard cposix_ptsname_r(master, &name, name.count) == 0 else {
            let error = SystemError("ptsname_r", "/dev/ptmx")
            close(master)
            throw error
        }
        let path = String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let keeper: Int32
        do {
            // The device's own hold on the host side is not a reader: unlocked.
            keeper = try openRaw(path: path, baud: nil)
        } catch {
            close(master)
            throw error
        }
        return Pair(master: master, path: path, keeper: keeper)
    }

    /// Opens a terminal device (a pty's host side, or a tty that libserialport
    /// will not take) non-blocking and in raw mode, as the line's one reader
    /// (`LineLock`): refused, naming the holder, when another reader has it.
    public static func openTerminal(path: String, baud: Int?) throws -> Int32 {
        let fd = try openRaw(path: path, baud: baud)
        do {
            try LineLock.acquire(fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    static func openRaw(path: String, baud: Int?) throws(SystemError) -> Int32 {
        let fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path) }
        var attributes = termios()
        guard tcgetattr(fd, &attributes) == 0 else {
            let error = SystemError("tcgetattr", path)
            close(fd)
            throw error
        }
        cfmakeraw(&attributes)
        attributes.c_cflag |= tcflag_t(CLOCAL | CREAD)
        if let baud, let speed = speedConstant(baud) {
            cfsetispeed(&attributes, speed)
            cfsetospeed(&attributes, speed)
        }
        guard tcsetattr(fd, TCSANOW, &attributes) == 0 else {
            let error = SystemError("tcsetattr", path)
            close(fd)
            throw error
        }
        return fd
    }

    static func speedConstant(_ baud: Int) -> speed_t? {
        switch baud {
        case 1200: speed_t(B1200)
        case 2400: speed_t(B2400)
        case 4800: speed_t(B4800)
        case 9600: speed_t(B9600)
        case 19200: speed_t(B19200)
        case 38400: speed_t(B38400)
        case 57600: speed_t(B57600)
        case 115200: speed_t(B115200)
        default: nil
        }
    }

    /// Points `link` at `target` atomically (a temporary link renamed over it),
    /// so a host that reopens `link` never finds it missing.
    public static func replaceSymlink(_ link: String, pointingTo target: String) throws(SystemError) {
        let temporary = link + ".tmp-\(getpid())"
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw SystemError("symlink", temporary) }
        guard rename(temporary, link) == 0 else {
            let error = SystemError("rename", "\(temporary) -> \(link)")
            unlink(temporary)
            throw error
        }
    }
}
