import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// What went wrong with an outgoing TCP connection, in the words an admin acts on ("connection
/// refused", "timed out after 10 seconds"), not NIO's type names. Shared by the label printer's
/// client and the hospital interface's sender.
public enum ConnectionErrorText {
    public static func reason(_ error: any Error, timeout: Duration?) -> String {
        if let error = error as? ChannelError, case .connectTimeout = error, let timeout {
            return "timed out after \(timeout)"
        }
        if let error = error as? NIOConnectionError {
            // The individual attempts say more than the aggregate (e.g. "Connection refused").
            let attempts = error.connectionErrors.map { ($0.target, describe($0.error)) }
            if attempts.count == 1 { return attempts[0].1 }
            if !attempts.isEmpty {
                return attempts.map { target, why in "\(target.ipAddress ?? "\(target)"): \(why)" }.joined(separator: "; ")
            }
            if let dns = error.dnsAAAAError ?? error.dnsAError { return "cannot resolve the host name: \(dns)" }
        }
        return describe(error)
    }

    /// An errno's text ("Connection refused") rather than NIO's longer IOError description.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        return String(describing: error)
    }
}
