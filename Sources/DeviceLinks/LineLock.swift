import TextFormats

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One reader per line. Two processes reading one tty each take some of the bytes: a message can
/// then be acknowledged by a reader that never stores it, and the separator forgets it. So every
/// line the daemon opens is locked with `flock(LOCK_EX | LOCK_NB)` on its open descriptor; a line
/// already held is refused, naming the path and, as gpsd does, the holder found in /proc/locks.
/// (flock binds every cooperating reader, root included; TIOCEXCL, which libserialport also sets
/// on serial ports, does not bind root.)
public enum LineLock {
    /// Locks `fd` (opened on `path`) for this process, or throws naming who holds it.
    public static func acquire(_ fd: Int32, path: String) throws(LinkError) {
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
        let code = errno
        guard code == EWOULDBLOCK else {
            throw LinkError("\(path): cannot lock the line for this reader: \(SystemError("flock", path, code: code).description)")
        }
        let who = holder(of: fd).map { "process \($0.pid) (\($0.command))" } ?? "another process"
        throw LinkError(
            "\(path) is already read by \(who): one reader per line, or messages would be acknowledged by a reader that does not store them; stop the other reader or configure another line")
    }

    /// The process holding a flock on the file `fd` is open on, from /proc/locks.
    public static func holder(of fd: Int32) -> (pid: Int32, command: String)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        // /proc/locks names the file as MAJOR:MINOR:INODE, major and minor in hex.
        // glibc's dev_t layout (its major()/minor() are macros Swift cannot call).
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))
        let minor = (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))
        let device = Hex.digits(major, width: 2) + ":" + Hex.digits(minor, width: 2) + ":" + String(st.st_ino)
        guard let text = readText("/proc/locks") else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // "1: FLOCK  ADVISORY  WRITE 18381 00:1a:3 0 EOF"
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == device, let pid = Int32(fields[4]) else { continue }
            let command = readText("/proc/\(pid)/comm")?.split(separator: "\n").first.map(String.init) ?? "?"
            return (pid, command)
        }
        return nil
    }

    private static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
