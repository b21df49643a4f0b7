import ApheresisCore
import ApheresisVersion
import CentralStore
import DaemonConfiguration
import Foundation
import HospitalLink
import Ingest
import LiveState
import Logging
import NIOPosix
import ProductWorkflow
import RecordStore
import SeparatorProtocol
import ServiceLifecycle
import Synchronization
import SystemdSupport
import WebEdge

/// The daemon: opens the store, then runs every device's service, the store
/// heartbeat and the systemd notifier in one service group with graceful
/// shutdown on SIGTERM and SIGINT.
public struct Daemon: Sendable {
    let configuration: DaemonConfiguration
    let environment: [String: String]
    let logger: Logger

    public init(configuration: DaemonConfiguration, environment: [String: String], logger: Logger) {
        self.configuration = configuration
        self.environment = environment
        self.logger = logger
    }

    public func run() async throws {
        let stateDirectory = configuration.stateDirectory
        let databasePath = configuration.databasePath
        // Before anything starts: a store held by another daemon, then a taken API port, refuse the
        // start (DaemonStartRefused). The lock first, so that a second daemon with the same
        // configuration is told about the store rather than about the port.
        let storeLock = try await NIOThreadPool.singleton.runIfActive {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
            return try StoreLock.acquire(forStore: databasePath)
        }
        defer { withExtendedLifetime(storeLock) {} }
        try await APIPreflight.check(configuration.api.listen, group: MultiThreadedEventLoopGroup.singleton)
        // The audit key: the systemd credential, else [audit] key_file, else one made beside the store (demo).
        let auditKey = AuditKeySource.resolve(
            keyFileOption: nil, configuredKeyFile: configuration.audit.keyFile, environment: environment)
        if case .generated = auditKey {
            logger.warning("audit key: generated beside the store (demo); production delivers it as the systemd credential audit-key")
        }
        let store: RecordStore
        do {
            store = try await RecordStore.open(
                path: configuration.databasePath, options: RecordStore.Options(reserveBytes: configuration.storeReserveBytes),
                audit: AuditOptions(
                    key: auditKey, anchorPath: configuration.audit.anchorFile, logger: logger,
                    setAppendOnlyAttribute: configuration.audit.appendOnlyAttribute))
        } catch let error as AuditKeyError {
            // A missing, unsafe or wrong key is configuration: exit 78, which systemd does not restart into.
            throw DaemonStartRefused(message: "\(error)", exitCode: DaemonStartRefused.configurationExitCode)
        } catch let error as AuditAnchorError {
            // An anchor file that cannot be made where configured (ProtectSystem=strict without
            // ReadWritePaths=), or a store whose trail was tampered with (its anchor file gone, its
            // audit_chain not signed by the key or reset): restarting cannot help; someone must look.
            throw DaemonStartRefused(message: "\(error)", exitCode: DaemonStartRefused.configurationExitCode)
        }
        logger.notice("store open: \(configuration.databasePath); audit: \(auditKey), anchor \(store.auditAnchorPath)")
        let health = HealthBoard()
        let metrics = DaemonMetrics()
        let feed = LiveFeed()
        StoreFailureReporter(store: store, feed: feed, logger: logger).watch(health)
        await OpenRunSweep.closeSilentRuns(store: store, timeout: configuration.openRunTimeout, logger: logger)
        health.observeLinkChanges { device, state in
            feed.publish(.link(StreamEvent.Link(device: device, linkState: state.rawValue, at: Date())))
        }
        let watches = RunWatchBoard()
        let hl7Board = HL7LinkBoard()
        let hl7Zone = configuration.hl7.timeZone ?? configuration.product.timeZone ?? TimeZone.current.identifier
        do {
            try await store.registerHL7Routes(configuration.hl7.routes(timeZone: hl7Zone), atUnixMilliseconds: DaemonClock.wallMilliseconds)
            for destination in configuration.hl7.destinations {
                logger.notice(
                    "hl7: \(destination.name) at \(destination.address), feeds \(destination.feeds.map(\.rawValue).joined(separator: ", ")), times in \(hl7Zone)")
            }
        } catch {
            // The store keeps the destinations of the last start; they are queued for until this succeeds.
            logger.error("hl7: cannot record the configured destinations in the store (\(error)); the ones recorded before stay in use")
        }
        // The central database: rows are logged for it from now on (the first time, every row the
        // store holds), whether or not it is reachable; a site name the store does not replicate
        // under, or a password that cannot be read, is configuration (exit 78).
        let centralBoard = CentralReplicationBoard()
        var centralReplicator: CentralReplicator?
        if let central = configuration.central {
            do {
                let logged = try await store.enableReplicationLog(site: central.site, atUnixMilliseconds: DaemonClock.wallMilliseconds)
                if logged > 0 { logger.notice("central: replication log on; \(logged) stored rows queued for the central database") }
            } catch let error as ReplicationSetupError {
                throw DaemonStartRefused(message: "\(error)", exitCode: DaemonStartRefused.configurationExitCode)
            }
            let password: String?
            do { password = try central.password(environment: environment) } catch {
                throw DaemonStartRefused(message: "\(error)", exitCode: DaemonStartRefused.configurationExitCode)
            }
            let endpoint = central.endpoint(password: password)
            logger.notice("central: site \(central.site) replicates to \(endpoint.description) (TLS: \(central.tls.rawValue))")
            let healthForLinks = health
            centralReplicator = CentralReplicator(
                store: store,
                settings: ReplicatorSettings(
                    endpoint: endpoint, site: central.site, retryDelay: central.retryDelay, reportInterval: central.reportInterval,
                    dinBlockSize: central.dinBlockSize,
                    dinFacilities: configuration.product.facilityIdentificationNumber.map { [$0] } ?? [],
                    daemonVersion: ApheresisVersion.string),
                links: { healthForLinks.linkReports(now: DaemonClock.monotonic) }, board: centralBoard,
                clock: { DaemonClock.monotonic }, wallMilliseconds: { DaemonClock.wallMilliseconds }, logger: logger)
        }
        let control = PipelineDirectory()
        let notifier = SystemdNotifier(environment: environment)
        let group = MultiThreadedEventLoopGroup.singleton

        var services: [any Service] = []
        let wireDevices = configuration.devices.filter {
            if case .export = $0.transport { return false }
            return true
        }
        let outlets = IngestPipeline.Outlets(health: health, feed: feed, watches: watches, commits: metrics)
        for device in configuration.devices {
            let settings = DeviceService.Settings(
                reconnectInitial: device.reconnectInitial, reconnectMax: device.reconnectMax,
                silenceTimeout: device.silenceTimeout)
            // Checked when a configuration file is read; a configuration built otherwise is refused
            // here rather than read with another family's rules.
            guard let dialect = SeparatorDialect.named(device.dialect) else {
                throw DaemonStartRefused(
                    message: "device \(device.name): unknown dialect \"\(device.dialect)\"; this build speaks "
                        + SeparatorDialect.all.map { "\"\($0.name)\"" }.joined(separator: ", "),
                    exitCode: DaemonStartRefused.configurationExitCode)
            }
            let pipeline = IngestPipeline(
                settings: IngestPipeline.Settings(
                    deviceName: device.name, dialect: dialect, profiles: configuration.profiles,
                    openRunTimeout: configuration.openRunTimeout, adoptUnnamedDevices: wireDevices.count == 1),
                store: store, outlets: outlets, logger: logger)
            control.add(pipeline)
            func wireDevice(_ source: any LinkSource) -> DeviceService {
                DeviceService(
                    name: device.name, source: source, pipeline: pipeline, group: group, health: health, settings: settings,
                    logger: logger)
            }
            switch device.transport {
            case .serial(let path, let usbSerial, let usbID, let baud):
                let selector: SerialLinkSource.Selector =
                    if let path { .path(path) } else if let usbSerial { .usbSerialNumber(usbSerial) } else {
                        .usbVendorProduct(vendor: usbID?.vendorID ?? 0, product: usbID?.productID ?? 0)
                    }
                services.append(wireDevice(SerialLinkSource(selector: selector, baud: baud)))
            case .pty(let path):
                services.append(wireDevice(TerminalLinkSource(path: path)))
            case .tcp(let host, let port):
                services.append(wireDevice(TCPLinkSource(host: host, port: port)))
            case .export(let directory):
                services.append(
                    ExportDirectoryService(
                        name: device.name, directory: directory, pipeline: pipeline, isExportFile: { dialect.isExportFile($0) },
                        health: health, logger: logger))
            case .simulator(let scenario, let speed, let seed):
                let link = "\(stateDirectory)/\(device.name).pty"
                let reported = ReportedTerminal()
                services.append(
                    SimulatorChildService(
                        executable: SimulatorChildService.locateExecutable(environment: environment), scenario: scenario,
                        speed: speed, seed: seed, linkPath: link, statePath: "\(stateDirectory)/\(device.name).sim-state",
                        reported: reported, logger: logger))
                services.append(wireDevice(SimulatorTerminalLinkSource(reported: reported, linkPath: link)))
            }
        }
        // The devices stop side by side, not one after another (DeviceFleet).
        services = [DeviceFleet(services)]
        let apiAddress: APIAddress?
        switch configuration.api.listen {
        case .off:
            logger.notice("api: off ([api] enabled = false)")
            apiAddress = nil
        case .tcp(let host, let port):
            if !APIAddress.tcp(host: host, port: port).isLocalOnly {
                logger.warning(
                    "api: listening on \(host), beyond this machine: reading is open and passwords travel in clear; put an authenticating TLS proxy in front")
            }
            apiAddress = .tcp(host: host, port: port)
        case .unixSocket(let path):
            // A socket left by a daemon that was killed would make the bind fail; only a socket is removed.
            try await NIOThreadPool.singleton.runIfActive {
                var st = stat()
                if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
            }
            apiAddress = .unixSocket(path: path)
        }
        if let apiAddress {
            services.append(
                APIServer(
                    address: apiAddress, workflow: ProductWorkflow(store: store, settings: configuration.product),
                    live: HealthBoardStatus(health: health, storePath: configuration.databasePath), metrics: metrics, feed: feed, watches: watches, control: control,
                    hl7: hl7Board, central: centralBoard, logger: logger))
        }
        // The hospital interface: the store queues for the configured destinations (in the transaction
        // of what each message reports); one sender per destination sends its queue.
        for destination in configuration.hl7.destinations {
            services.append(
                HL7SenderService(
                    sender: HL7DestinationSender(
                        settings: configuration.hl7.senderSettings(destination), store: store, board: hl7Board, logger: logger,
                        now: { DaemonClock.monotonic }, wallMilliseconds: { DaemonClock.wallMilliseconds })))
        }
        if let centralReplicator { services.append(CentralReplicationService(replicator: centralReplicator)) }
        let cadence = SystemdService.cadence(watchdog: notifier.watchdogInterval)
        services.append(StoreHeartbeatService(store: store, health: health, interval: cadence.tick, logger: logger))
        services.append(WallClockWatchService(store: store, logger: logger))
        // Last: ServiceGroup stops services in reverse order, so systemd hears STOPPING first.
        services.append(SystemdService(notifier: notifier, health: health, logger: logger))

        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await serviceGroup.run()
        try await store.close()
        logger.notice("stopped")
    }
}

/// The RunControl of the API: asks each device's pipeline in turn; the one watching the run acts.
final class PipelineDirectory: RunControl {
    private let pipelines = Mutex<[IngestPipeline]>([])

    func add(_ pipeline: IngestPipeline) {
        pipelines.withLock { $0.append(pipeline) }
    }

    func acknowledge(
        deviceSerial: String, runID: String?, code: String, record: @escaping @Sendable () async throws -> AlarmRow
    ) async throws -> AlarmRow {
        if let runID {
            for pipeline in pipelines.withLock({ $0 }) {
                if let row = try await pipeline.acknowledge(deviceSerial: deviceSerial, runID: runID, code: code, record: record) {
                    return row
                }
            }
        }
        return try await record()
    }

    func changePresets(
        deviceSerial: String, runID: String, runRef: Int64, changes: [RunPreset: Double], mayRaiseLines: Bool, reason: String,
        by user: String
    ) async throws -> RunWatch? {
        // The pipeline that watches the run now first: after a separator moved to another port, the
        // old pipeline still knows its serial number but no longer receives its messages.
        let all = pipelines.withLock { $0 }
        var ordered: [IngestPipeline] = []
        for pipeline in all where await pipeline.isWatching(deviceSerial: deviceSerial, runID: runID) { ordered.append(pipeline) }
        for pipeline in all where !ordered.contains(where: { $0 === pipeline }) { ordered.append(pipeline) }
        for pipeline in ordered {
            if let watch = try await pipeline.changePresets(
                deviceSerial: deviceSerial, runID: runID, runRef: runRef, changes: changes, mayRaiseLines: mayRaiseLines,
                reason: reason, by: user)
            {
                return watch
            }
        }
        return nil
    }
}
