import SeparatorProtocol

/// What reaches the ingest path from a device: a complete message from a wire link, or a complete
/// export file. Both enter through `IngestPipeline.ingest(_:)`.
public enum Arrival: Sendable {
    /// One complete message's text (records H to L), as the link's receiver assembled it, at the
    /// daemon's monotonic time it completed.
    case message(text: [UInt8], receivedAt: Duration)
    /// One export file, read whole.
    case exportFile(ExportFile)
}

/// An export file as read from the directory.
public struct ExportFile: Sendable {
    /// Full path, for the record.
    public var path: String
    public var bytes: [UInt8]
    /// When it was last written (Unix seconds): a file without its end that has not changed for a
    /// while is cut short, not still being written.
    public var modifiedAtUnixSeconds: Double

    public init(path: String, bytes: [UInt8], modifiedAtUnixSeconds: Double) {
        self.path = path
        self.bytes = bytes
        self.modifiedAtUnixSeconds = modifiedAtUnixSeconds
    }

    public var fileName: String { path.split(separator: "/").last.map(String.init) ?? path }
}

/// What became of an arrival.
public enum IngestOutcome: Sendable, Equatable {
    /// Durably handled: stored, already stored (a resend), or kept in quarantine. A message may be
    /// acknowledged now; a file is done.
    case handled
    /// Not handled, to be tried again: the store refused the write, or could not be read. A message
    /// stays unacknowledged, so the separator sends it again.
    case retry
    /// An export file that does not end yet, written recently: probably still being written.
    case incomplete
    /// An export file that cannot be read, kept in the store's quarantine with the reason: move it aside.
    case malformed(reason: String)

    /// Whether the separator may be told the message is stored.
    public var mayAcknowledge: Bool { self == .handled }
}
