import Foundation

/// What the daemon knows right now and the store does not: the state of each link and how old the
/// last sign of life is. The daemon implements it over its health board.
public protocol LiveStatus: Sendable {
    func devices() -> [DeviceStatus]
    /// The store refusing writes now (full disk, read-only, I/O error); nil while it takes them.
    func storeFailure() -> StoreFailureStatus?
}

extension LiveStatus {
    public func storeFailure() -> StoreFailureStatus? { nil }
}

/// The daemon's own alarm for a store that refuses writes. It has no row in the store (the store
/// is what fails): the API lists it with id 0 among the active alarms, the stream sends `store`
/// events, /metrics has `apheresisd_store_failing`. It clears by itself when writes succeed again.
public enum StoreAlarm {
    public static let code = "STORE_WRITE_FAILED"

    public static func message(_ error: String, path: String) -> String {
        // The failure's own sentence may end in a full stop already.
        let error = error.hasSuffix(".") ? String(error.dropLast()) : error
        return "The record store \(path) refuses writes: \(error). Messages from the separators are not acknowledged, "
            + "so the separators keep them and send them again; free space on the store's volume (or fix its disk) now."
    }
}

public struct StoreFailureStatus: Sendable {
    public var message: String
    public var sinceUnixMilliseconds: Int64
    /// How long the store has refused writes, on the monotonic clock (a wall clock step does not change it).
    public var age: Duration
    public var failedWrites: Int
    public init(message: String, sinceUnixMilliseconds: Int64, age: Duration, failedWrites: Int) {
        self.message = message
        self.sinceUnixMilliseconds = sinceUnixMilliseconds
        self.age = age
        self.failedWrites = failedWrites
    }
}

public struct DeviceStatus: Sendable, Encodable {
    /// The configured name.
    public var name: String
    /// How it is reached (path, host:port, directory).
    public var link: String
    /// connecting, up, stale, down, reconnecting.
    public var linkState: String
    public var serialNumber: String?
    /// Seconds since the last byte from the separator (or export file read); nil before the first.
    /// Never the daemon's own loop: a silent line must look silent.
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
