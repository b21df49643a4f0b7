import ArgumentParser
import DeviceLinks
import SeparatorProtocol
import SimulatorKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Plays a capture's device bytes back through any output at their recorded
/// times, as gpsfake does: the host sees the same byte stream again. The
/// replay does not answer the host; what the host sends is read and dropped.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Play a capture's device bytes back through an output.")

    @Argument(help: "Capture file (optia-sim-capture 1).")
    var capture: String

    @OptionGroup var output: OutputOptions

    @Option(help: "Play this many times faster than recorded.")
    var speed: Double = 1

    func validate() throws {
        guard speed.isFinite, speed > 0 else { throw ValidationError("--speed must be a positive number") }
        if output.exportDir != nil { throw ValidationError("replay plays bytes: use --pty, --serial or --tcp") }
    }

    mutating func run() throws {
        let recording = try Capture.load(path: capture)
        let link = try output.openLink()
        defer { link.close() }
        let start = ContinuousClock.now
        var drain = [pollfd]()
        for chunk in recording.chunks where chunk.direction == .deviceToHost {
            while !link.isConnected {
                drain = link.pollDescriptors
                _ = poll(&drain, nfds_t(drain.count), 100)
                _ = try link.service(drain)
            }
            let due = start + .nanoseconds(Int64(chunk.time / speed * 1e9))
            while ContinuousClock.now < due {
                drain = link.pollDescriptors
                let wait = (due - ContinuousClock.now).secondsValue * 1000
                _ = poll(&drain, nfds_t(drain.count), Int32(max(0, min(100, wait.rounded(.up)))))
                _ = try link.service(drain)
            }
            link.write(chunk.bytes)
        }
        // Let the last bytes drain before the descriptor closes.
        let end = ContinuousClock.now + .milliseconds(200)
        while ContinuousClock.now < end {
            drain = link.pollDescriptors
            _ = poll(&drain, nfds_t(drain.count), 50)
            _ = try link.service(drain)
        }
        emit("done: replayed \(recording.chunks.filter { $0.direction == .deviceToHost }.count) chunk(s)")
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a capture's device bytes as a host would and print one line per message.")

    @Argument(help: "Capture file (optia-sim-capture 1).")
    var capture: String

    mutating func run() throws {
        let recording = try Capture.load(path: capture)
        for line in CaptureDecoder.decode(recording).lines { emit(line) }
    }
}
