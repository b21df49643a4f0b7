import Foundation

/// What the daemon knows right now and the store does not: the state of each link and how old the
/// last sign of life is. The daemon implements it over its health board.
public protocol LiveStatus: Sendable {
    func devices() -> [DeviceStatus]
}

public struct DeviceStatus: Sendable, Encodable {
    /// The configured name.
    public var name: String
    /// How it is reached (path, host:port, directory).
    public var link: String
    /// connecting, up, stale, down, reconnecting.
    public var linkState: String
    public var serialNumber: String?
    /// Seconds since the receive loop last heard from the device or went round; nil before the first.
    public var lastActivityAgeSeconds: Double?
    public var reconnects: Int
    public var lastError: String?
    public var messagesStored: Int
    public var duplicates: Int
    public var quarantined: Int
    public var framesRejected: Int

    public init(
        name: String, link: String, linkState: String, serialNumber: String?, lastActivityAgeSeconds: Double?,
        reconnects: Int, lastError: String?, messagesStored: Int, duplicates: Int, quarantined: Int, framesRejected: Int
    ) {
        self.name = name
        self.link = link
        self.linkState = linkState
        self.serialNumber = serialNumber
        self.lastActivityAgeSeconds = lastActivityAgeSeconds
        self.reconnects = reconnects
        self.lastError = lastError
        self.messagesStored = messagesStored
        self.duplicates = duplicates
        self.quarantined = quarantined
        self.framesRejected = framesRejected
    }
}

/// For an API without a daemon around it (tests of the product endpoints).
public struct NoLiveStatus: LiveStatus {
    public init() {}
    public func devices() -> [DeviceStatus] { [] }
}
