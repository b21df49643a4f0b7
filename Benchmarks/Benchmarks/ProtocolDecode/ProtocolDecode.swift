import Benchmark
import BenchSupport
#if canImport(Glibc)
import Glibc
#endif

// One iteration is one pass over the whole stream (about 1 MB), so MB/s is the stream size
// over the wall clock of an iteration; `make bench` prints it beside the astm anchor.
// Names without spaces: package-benchmark writes threshold files with spaces replaced but
// looks them up with the spaces kept.
let benchmarks: @Sendable () -> Void = {
    let stream: DecodeStream
    do {
        stream = try DecodeStream.load()
    } catch {
        fatalError("decode stream: \(error)")
    }

    // Hardware counters are missing in many VMs, this machine kind's too (no PMU: no `cpu`
    // event source on x86); asking for them there yields zeros, so instructions are measured
    // here only where they exist. scripts/bench/counts.py counts them with valgrind everywhere.
    var metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount]
    if access("/sys/bus/event_source/devices/cpu", F_OK) == 0 { metrics.append(.instructions) }

    Benchmark.defaultConfiguration = .init(
        metrics: metrics,
        timeUnits: .microseconds,
        warmupIterations: 3,
        maxDuration: .seconds(3),
        maxIterations: 1_000,
        // What `make bench-check` allows against Benchmarks/Thresholds (p90, percent). Allocations
        // in a pass are deterministic, so any growth past this is a change in the code.
        thresholds: [
            .mallocCountTotal: .init(relative: [.p90: 2.0]),
            .mallocBytesCount: .init(relative: [.p90: 5.0]),
        ]
    )

    Benchmark("E1381-framing") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(DecodePass.framing(stream))
        }
    }

    Benchmark("E1381+E1394-decode") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(DecodePass.decode(stream))
        }
    }
}
