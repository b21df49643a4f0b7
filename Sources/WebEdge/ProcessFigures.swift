import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The process's own figures for the standard Prometheus `process_*` metrics, from /proc/self (the
/// names and meanings of the client libraries' process collectors, which swift-prometheus lacks).
struct ProcessFigures: Sendable, Equatable {
    var cpuSeconds: Double
    var residentBytes: Double
    var virtualBytes: Double
    var startTimeSeconds: Double
    var openDescriptors: Double
    var maxDescriptors: Double?
    var threads: Double

    /// Read on a GCD thread: /proc reads are file I/O, kept off the cooperative pool.
    static func read() async -> ProcessFigures? {
        await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .utility).async { continuation.resume(returning: readSynchronously()) }
        }
    }

    static func readSynchronously() -> ProcessFigures? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let bootTime = bootTimeSeconds()
        else { return nil }
        let openDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        let limits = try? String(contentsOfFile: "/proc/self/limits", encoding: .utf8)
        return parse(
            stat: stat, bootTimeSeconds: bootTime, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))),
            pageBytes: Double(sysconf(Int32(_SC_PAGESIZE))), openDescriptors: openDescriptors, limits: limits)
    }

    /// `stat` is /proc/self/stat: the command name may hold spaces and parentheses, so fields are
    /// counted after the last ')' (field 3, the state, comes first; proc(5) numbers them from 1).
    static func parse(
        stat: String, bootTimeSeconds: Double, ticksPerSecond: Double, pageBytes: Double, openDescriptors: Int, limits: String?
    ) -> ProcessFigures? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double? {
            let index = number - 3
            return fields.indices.contains(index) ? Double(fields[index]) : nil
        }
        guard let user = field(14), let system = field(15), let threads = field(20), let start = field(22),
            let virtual = field(23), let residentPages = field(24), ticksPerSecond > 0
        else { return nil }
        return ProcessFigures(
            cpuSeconds: (user + system) / ticksPerSecond, residentBytes: residentPages * pageBytes, virtualBytes: virtual,
            startTimeSeconds: bootTimeSeconds + start / ticksPerSecond, openDescriptors: Double(openDescriptors),
            maxDescriptors: limits.flatMap(maxOpenFiles), threads: threads)
    }

    /// The soft limit in /proc/self/limits' "Max open files" line; nil when unlimited or absent.
    static func maxOpenFiles(_ limits: String) -> Double? {
        for line in limits.split(separator: "\n") where line.hasPrefix("Max open files") {
            let parts = line.dropFirst("Max open files".count).split(separator: " ")
            return parts.first.flatMap { Double($0) }
        }
        return nil
    }

    /// `btime` of /proc/stat: the boot time in seconds since the epoch.
    static func bootTimeSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
