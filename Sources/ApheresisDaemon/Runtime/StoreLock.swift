import DeviceLinks

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One daemon per store. SQLite lets two processes write one file, so a second daemon on the same
/// state directory would interleave runs, answer the same simulator's pty and give out alarm ids
/// twice. The daemon therefore holds `flock(LOCK_EX)` on `<store>.lock` for its whole life; the
/// kernel drops it when the process ends, kill -9 included, so there is never a stale lock to clear.
/// apheresisctl does not take it: it shares the store with a running daemon by design.
final class StoreLock: Sendable {
    let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    static func path(forStore databasePath: String) -> String { databasePath + ".lock" }

    /// Takes the lock or refuses the start naming the holder (exit 69: the other daemon may be
    /// stopping, so systemd's Restart= may try again).
    static func acquire(forStore databasePath: String) throws(DaemonStartRefused) -> StoreLock {
        let path = path(forStore: databasePath)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw DaemonStartRefused(
                message: "cannot open the store's lock file \(path): \(String(cString: strerror(errno)))",
                exitCode: DaemonStartRefused.storeUnavailableExitCode)
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let who = code == EWOULDBLOCK ? LineLock.holder(of: fd).map { "process \($0.pid) (\($0.command))" } : nil
            close(fd)
            let reason =
                code == EWOULDBLOCK
                ? "another apheresisd, \(who ?? "a process that has since ended or is in another PID namespace"), is using the store \(databasePath)"
                : "cannot lock the store's lock file \(path): \(String(cString: strerror(code)))"
            throw DaemonStartRefused(
                message: reason
                    + "; one daemon per state directory (two would interleave their writes): stop the other one, or give this one its own [daemon] state_directory",
                exitCode: DaemonStartRefused.storeUnavailableExitCode)
        }
        // The holder's PID in the file, for people; the lock itself is the flock, not the content.
        let text = Array("\(getpid())\n".utf8)
        if ftruncate(fd, 0) == 0 {
            _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        return StoreLock(path: path, fd: fd)
    }

    deinit { close(fd) }
}
