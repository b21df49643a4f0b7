import Foundation
import Ingest
import LiveState
import Logging
import NIOPosix
import ServiceLifecycle

/// Watches a directory the separator exports finished runs into, and hands each complete file to
/// the device's ingest pipeline (which decodes, stores and judges it like live messages). Each file
/// is ingested once (the store keys files by content hash, runs by device and run id). Temporary
/// names (leading dot, `.part`, `.tmp`) are ignored: the device renames a file when it is complete.
/// A malformed file is kept in the store's quarantine and moved into `rejected/` with the reason
/// written beside it. File I/O runs on NIO's thread pool, never on the cooperative pool.
final class ExportDirectoryService: Service, Sendable {
    let name: String
    let directory: String
    let pipeline: IngestPipeline
    let isExportFile: @Sendable (String) -> Bool
    let health: HealthBoard
    let logger: Logger
    let pollInterval: Duration

    init(
        name: String, directory: String, pipeline: IngestPipeline, isExportFile: @escaping @Sendable (String) -> Bool,
        health: HealthBoard, logger: Logger, pollInterval: Duration = .seconds(1)
    ) {
        self.name = name
        self.directory = directory
        self.pipeline = pipeline
        self.isExportFile = isExportFile
        self.health = health
        var logger = logger
        logger[metadataKey: "device"] = "\(name)"
        self.logger = logger
        self.pollInterval = pollInterval
        health.register(name, link: "export \(directory)")
    }

    struct FileKey: Hashable, Sendable {
        var name: String
        var size: Int
        var modified: Double
    }

    func run() async throws {
        var seen: Set<FileKey> = []
        var reportedMissing = false
        while !Task.isCancelledOrShuttingDown {
            health.loopProgressed(name, at: DaemonClock.monotonic)
            // Alarms of files the store refused before are retried on the clock's turn.
            await pipeline.checkStaleness(now: DaemonClock.monotonic)
            do {
                let candidates = try await NIOThreadPool.singleton.runIfActive { [directory, isExportFile] in
                    try Self.listCandidates(directory, isExportFile: isExportFile)
                }
                health.update(name) {
                    $0.state = .up
                    $0.lastError = nil
                }
                reportedMissing = false
                for file in candidates where !seen.contains(file) {
                    if await ingest(file) { seen.insert(file) }
                }
            } catch {
                health.update(name) {
                    $0.state = .down
                    $0.lastError = "\(error)"
                }
                if !reportedMissing { logger.warning("cannot read export directory \(directory): \(error)") }
                reportedMissing = true
            }
            // Ends at once on shutdown: the fleet stops every device together.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.pollInterval) }
        }
    }

    static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".part") || name.hasSuffix(".tmp") || name.hasSuffix("~")
    }

    static func listCandidates(_ directory: String, isExportFile: (String) -> Bool) throws -> [FileKey] {
        let manager = FileManager.default
        return try manager.contentsOfDirectory(atPath: directory).sorted().compactMap { name in
            guard !isTemporary(name), isExportFile(name) else { return nil }
            let attributes = try? manager.attributesOfItem(atPath: directory + "/" + name)
            guard attributes?[.type] as? FileAttributeType == .typeRegular else { return nil }
            return FileKey(
                name: name, size: (attributes?[.size] as? Int) ?? 0,
                modified: (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        }
    }

    /// Whether the file is dealt with (ingested, known, or moved aside).
    private func ingest(_ file: FileKey) async -> Bool {
        let path = directory + "/" + file.name
        let bytes: [UInt8]
        do {
            bytes = try await NIOThreadPool.singleton.runIfActive { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
        } catch {
            logger.warning("cannot read export file \(path): \(error)")
            return false
        }
        switch await pipeline.ingest(.exportFile(ExportFile(path: path, bytes: bytes, modifiedAtUnixSeconds: file.modified))) {
        case .handled: return true
        case .retry, .incomplete: return false
        case .malformed(let reason):
            await moveAside(file.name, path: path, reason: reason)
            return true
        }
    }

    private func moveAside(_ name: String, path: String, reason: String) async {
        let rejected = directory + "/rejected"
        let wall = DaemonClock.wallMilliseconds
        do {
            try await NIOThreadPool.singleton.runIfActive {
                let manager = FileManager.default
                try manager.createDirectory(atPath: rejected, withIntermediateDirectories: true)
                var target = rejected + "/" + name
                if manager.fileExists(atPath: target) { target += ".\(wall)" }
                try manager.moveItem(atPath: path, toPath: target)
                try Data("\(reason)\n".utf8).write(to: URL(fileURLWithPath: target + ".reason.txt"))
            }
        } catch {
            logger.error("cannot move the malformed export file \(name) aside: \(error)")
        }
    }
}
