import Foundation

/// Every event of the live stream, one type each (docs/api.md, "live stream"). The case names the
/// event; its payload is the event's JSON object.
public enum StreamEvent: Sendable, Encodable {
    case runStart(Run)
    case sample(Sample)
    case alarm(Alarm)
    case runEnd(Run)
    case presets(Presets)
    case link(Link)
    case store(Store)

    /// The SSE event name.
    public var name: String {
        switch self {
        case .runStart: "run_start"
        case .sample: "sample"
        case .alarm: "alarm"
        case .runEnd: "run_end"
        case .presets: "presets"
        case .link: "link"
        case .store: "store"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .runStart(let p), .runEnd(let p): try p.encode(to: encoder)
        case .sample(let p): try p.encode(to: encoder)
        case .alarm(let p): try p.encode(to: encoder)
        case .presets(let p): try p.encode(to: encoder)
        case .link(let p): try p.encode(to: encoder)
        case .store(let p): try p.encode(to: encoder)
        }
    }

    public struct Value: Sendable, Encodable {
        public var value: Double
        public var unit: String
        public init(value: Double, unit: String) {
            self.value = value
            self.unit = unit
        }
    }

    /// A stored TICK or RUN_END.
    public struct Sample: Sendable, Encodable {
        public var device: String
        public var deviceSerial: String
        public var runId: String
        public var kind: String
        public var deviceTime: String
        public var receivedAt: Date
        public var runTimeMinutes: Double?
        public var values: [String: Value]
        public var qualityFlags: [String]
        /// The watcher's view after this sample (no series: the sample is the next point).
        public var watch: RunWatch?
        public init(
            device: String, deviceSerial: String, runId: String, kind: String, deviceTime: String, receivedAt: Date,
            runTimeMinutes: Double?, values: [String: Value], qualityFlags: [String], watch: RunWatch?
        ) {
            self.device = device
            self.deviceSerial = deviceSerial
            self.runId = runId
            self.kind = kind
            self.deviceTime = deviceTime
            self.receivedAt = receivedAt
            self.runTimeMinutes = runTimeMinutes
            self.values = values
            self.qualityFlags = qualityFlags
            self.watch = watch
        }
    }

    /// A run's preset change, with the watch it made.
    public struct Presets: Sendable, Encodable {
        public var device: String
        public var deviceSerial: String
        public var runId: String
        public var changedBy: String
        public var reason: String
        public var watch: RunWatch
        public var at: Date
        public init(device: String, deviceSerial: String, runId: String, changedBy: String, reason: String, watch: RunWatch, at: Date) {
            self.device = device
            self.deviceSerial = deviceSerial
            self.runId = runId
            self.changedBy = changedBy
            self.reason = reason
            self.watch = watch
            self.at = at
        }
    }

    /// A run's start or end.
    public struct Run: Sendable, Encodable {
        public var device: String
        public var deviceSerial: String
        public var runId: String
        public var procedure: String
        public var patientId: String?
        public var at: Date
        public init(device: String, deviceSerial: String, runId: String, procedure: String, patientId: String?, at: Date) {
            self.device = device
            self.deviceSerial = deviceSerial
            self.runId = runId
            self.procedure = procedure
            self.patientId = patientId
            self.at = at
        }
    }

    /// One step of an alarm: raised, escalated, deescalated, acknowledged, cleared.
    public struct Alarm: Sendable, Encodable {
        /// The store's id (acknowledge by it); nil only if the store could not write it yet.
        public var alarmId: Int64?
        /// The configured link; nil for an acknowledgement of a device no link names now.
        public var device: String?
        public var deviceSerial: String
        public var runId: String?
        public var change: String
        public var code: String
        public var level: String
        public var value: Double?
        public var limit: Double?
        public var unit: String?
        public var message: String?
        /// Who acknowledged (change "acknowledged").
        public var by: String?
        public var runTimeMinutes: Double?
        public var at: Date
        public init(
            alarmId: Int64?, device: String?, deviceSerial: String, runId: String?, change: String, code: String, level: String,
            value: Double? = nil, limit: Double? = nil, unit: String? = nil, message: String? = nil, by: String? = nil,
            runTimeMinutes: Double? = nil, at: Date
        ) {
            self.alarmId = alarmId
            self.device = device
            self.deviceSerial = deviceSerial
            self.runId = runId
            self.change = change
            self.code = code
            self.level = level
            self.value = value
            self.limit = limit
            self.unit = unit
            self.message = message
            self.by = by
            self.runTimeMinutes = runTimeMinutes
            self.at = at
        }
    }

    /// A link's state changed (connecting, up, stale, down, reconnecting).
    public struct Link: Sendable, Encodable {
        public var device: String
        public var linkState: String
        public var at: Date
        public init(device: String, linkState: String, at: Date) {
            self.device = device
            self.linkState = linkState
            self.at = at
        }
    }

    /// The daemon's store alarm starting ("failing") or ending ("ok").
    public struct Store: Sendable, Encodable {
        public var state: String
        public var code = StoreAlarm.code
        public var message: String
        public var since: Date
        public var failedWrites: Int
        public var at: Date
        public init(state: String, message: String, since: Date, failedWrites: Int, at: Date) {
            self.state = state
            self.message = message
            self.since = since
            self.failedWrites = failedWrites
            self.at = at
        }
    }
}
