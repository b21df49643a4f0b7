#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call, with what was attempted and on what.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var subject: String
    public var code: Int32

    public init(_ operation: String, _ subject: String, code: Int32 = errno) {
        self.operation = operation
        self.subject = subject
        self.code = code
    }

    public var description: String {
        "\(operation) \(subject): \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// A device-side or host-side link failed in a way the user must fix.
public struct LinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
