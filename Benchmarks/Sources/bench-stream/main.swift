import BenchSupport
#if canImport(Glibc)
import Glibc
#endif

// Writes the decode stream (from the simulator's captures) where the benchmarks and the
// astm anchor read it; prints its path and size for the report.
let path = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : DecodeStream.defaultPath
do {
    let stream = try DecodeStream.build()
    try writeFile(path, stream.bytes)
    print("\(path) \(stream.bytes.count) bytes \(stream.messageCount) messages")
} catch {
    print("bench-stream: \(error)")
    exit(1)
}
