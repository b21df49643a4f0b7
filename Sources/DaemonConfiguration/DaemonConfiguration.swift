import ApheresisCore
import Quantities
import SeparatorProtocol
import TextFormats
import WorkflowSettings

/// The daemon's configuration: one TOML file (docs/configuration.md),
/// checked as a whole before anything starts.
public struct DaemonConfiguration: Sendable, Equatable {
    /// Where the database lives; systemd's `StateDirectory=` unless the file says otherwise.
    public var stateDirectory: String
    /// The SQLite file, resolved against `stateDirectory` when relative.
    public var databasePath: String
    public var logLevel: LogLevel
    public var devices: [DeviceConfiguration]
    /// In the order the file gives them: the first that applies to a run wins.
    public var profiles: [LimitProfile]
    /// `[product]` and `[labels]`: product practice, identification and label stock.
    public var product: ProductSettings
    /// `[api]`: where the HTTP API listens.
    public var api: APISettings
    /// Free space the store keeps on its volume; writes of device data are refused below it.
    public var storeReserveBytes: UInt64
    /// An open run without any message for this long is closed by the daemon (its RUN_END lost).
    public var openRunTimeout: Duration
    /// `[audit]`: the audit key's file and the anchor file.
    public var audit: AuditSettings = AuditSettings()
    /// `[hl7]`: the hospital's interface engines (docs/hl7.md); none by default.
    public var hl7: HL7Settings = HL7Settings()
    /// `[central]`: the central PostgreSQL database (docs/central.md); nil: this store stands alone.
    public var central: CentralSettings?

    public static let defaultStoreReserveBytes: UInt64 = 16 * 1_048_576
    public static let defaultOpenRunTimeout: Duration = .seconds(12 * 3600)

    public init(
        stateDirectory: String, databasePath: String, logLevel: LogLevel = .info,
        devices: [DeviceConfiguration], profiles: [LimitProfile] = DaemonConfiguration.defaultProfiles,
        product: ProductSettings = .unconfigured, api: APISettings = APISettings(),
        storeReserveBytes: UInt64 = DaemonConfiguration.defaultStoreReserveBytes,
        openRunTimeout: Duration = DaemonConfiguration.defaultOpenRunTimeout, audit: AuditSettings = AuditSettings(),
        hl7: HL7Settings = HL7Settings(), central: CentralSettings? = nil
    ) {
        self.hl7 = hl7
        self.central = central
        self.audit = audit
        self.storeReserveBytes = storeReserveBytes
        self.openRunTimeout = openRunTimeout
        self.product = product
        self.api = api
        self.stateDirectory = stateDirectory
        self.databasePath = databasePath
        self.logLevel = logLevel
        self.devices = devices
        self.profiles = profiles
    }

    /// The only format this build reads (`format = 1`).
    public static let supportedFormat = 1
    public static let defaultDatabaseName = "apheresisd.sqlite"
    public static let defaultStateDirectoryName = "apheresisd-state"
    /// Profiles when the file has none.
    public static let defaultProfiles: [LimitProfile] = [.pediatricCMNC, .standard]

    /// The configuration without a file: state under `workingDirectory`, one
    /// simulated separator (optia-sim over a pty) playing `simulatorScenario`
    /// at 60x, the default profiles.
    public static func demo(workingDirectory: String, simulatorScenario: String) -> DaemonConfiguration {
        let state = PathText.join(workingDirectory, defaultStateDirectoryName)
        return DaemonConfiguration(
            stateDirectory: state,
            databasePath: PathText.join(state, defaultDatabaseName),
            logLevel: .info,
            devices: [
                DeviceConfiguration(
                    name: "optia-sim", transport: .simulator(scenario: simulatorScenario, speed: 60, seed: 1))
            ],
            profiles: defaultProfiles, product: .demo)
    }
}

/// swift-log's level names (this module does not link swift-log:
/// `Logger.Level(rawValue: config.logLevel.rawValue)` maps it).
public enum LogLevel: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// One separator link.
public struct DeviceConfiguration: Sendable, Equatable {
    /// Unique, `[a-z0-9-]`: appears in logs, journal fields, metrics and the store.
    public var name: String
    public var transport: Transport
    /// The name of what the separator speaks (`SeparatorDialect.named`), checked when read.
    public var dialect: String
    /// First wait after a lost link; doubled on each failure up to `reconnectMax`.
    public var reconnectInitial: Duration
    public var reconnectMax: Duration
    /// No byte for this long: the link is stale and is reopened.
    public var silenceTimeout: Duration

    public static let defaultReconnectInitial: Duration = .milliseconds(200)
    public static let defaultReconnectMax: Duration = .seconds(30)
    public static let defaultSilenceTimeout: Duration = .seconds(60)
    public static let defaultBaud = 9600
    public static let defaultSimulatorSpeed = 60.0
    public static let defaultSimulatorSeed: UInt64 = 1

    public init(
        name: String, transport: Transport, dialect: String = SeparatorDialect.standard.name,
        reconnectInitial: Duration = DeviceConfiguration.defaultReconnectInitial,
        reconnectMax: Duration = DeviceConfiguration.defaultReconnectMax,
        silenceTimeout: Duration = DeviceConfiguration.defaultSilenceTimeout
    ) {
        self.name = name
        self.transport = transport
        self.dialect = dialect
        self.reconnectInitial = reconnectInitial
        self.reconnectMax = reconnectMax
        self.silenceTimeout = silenceTimeout
    }

    public enum Transport: Sendable, Equatable {
        /// A USB serial adapter: by path (udev symlink, /dev/serial/by-id/...),
        /// or found by the adapter's USB serial number and/or vendor:product.
        case serial(path: String?, usbSerial: String?, usbVIDPID: USBDeviceID?, baud: Int)
        /// A pseudo-terminal someone else holds the other end of.
        case pty(path: String)
        /// A serial-to-Ethernet bridge.
        case tcp(host: String, port: Int)
        /// A directory the separator (or its export tool) drops files into.
        case export(directory: String)
        /// optia-sim, run by the daemon as a child over a pty.
        case simulator(scenario: String, speed: Double, seed: UInt64)

        /// The `transport = "…"` word.
        public var keyword: String {
            switch self {
            case .serial: "serial"
            case .pty: "pty"
            case .tcp: "tcp"
            case .export: "export"
            case .simulator: "simulator"
            }
        }
    }
}

/// A USB vendor and product ID (`usb_vid_pid = "0403:6001"`); a struct rather
/// than a tuple so that the transport stays Equatable.
public struct USBDeviceID: Sendable, Hashable, CustomStringConvertible {
    public var vendorID: UInt16
    public var productID: UInt16
    public init(vendorID: UInt16, productID: UInt16) {
        self.vendorID = vendorID
        self.productID = productID
    }

    /// Parses `vvvv:pppp`, four hex digits each.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let vendor = Hex.value(parts[0], width: 4, as: UInt16.self),
            let product = Hex.value(parts[1], width: 4, as: UInt16.self)
        else { return nil }
        self.init(vendorID: vendor, productID: product)
    }

    /// `vvvv:pppp` in lower case, as lsusb shows it.
    public var description: String { Hex.digits(vendorID, width: 4) + ":" + Hex.digits(productID, width: 4) }
}

enum PathText {
    static func join(_ directory: String, _ name: String) -> String {
        if name.hasPrefix("/") { return name }
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
