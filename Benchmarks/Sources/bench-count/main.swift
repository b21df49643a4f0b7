import BenchSupport
#if canImport(Glibc)
import Glibc
#endif

// Runs decode passes for valgrind (scripts/bench/counts.py). The script runs it with 1 and with
// 2 passes and takes the difference, so that start-up, building the stream and one-time costs
// (lazy globals, first allocations) cancel out and what is left is one warm pass, exactly.
//   bench-count framing|decode <passes>
let arguments = CommandLine.arguments
guard arguments.count == 3, ["framing", "decode"].contains(arguments[1]), let passes = Int(arguments[2]), passes > 0 else {
    print("usage: bench-count framing|decode <passes>")
    exit(2)
}
do {
    // One copy of the captures' messages (no repetition): the counts are per pass, and
    // valgrind runs them about fifty times slower than the hardware.
    let stream = try DecodeStream.build(targetSize: 1)
    var total = 0
    for _ in 0..<passes {
        total &+= arguments[1] == "decode" ? DecodePass.decode(stream) : DecodePass.framing(stream)
    }
    print("\(arguments[1]) bytes=\(stream.bytes.count) messages=\(stream.messageCount) passes=\(passes) result=\(total)")
} catch {
    print("bench-count: \(error)")
    exit(1)
}
