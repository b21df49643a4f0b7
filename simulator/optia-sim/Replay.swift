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
/// replay does not react to what the host says (it sends what was recorded),
/// but it paces itself by the host's answers.
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

    @Option(help: ArgumentHelp("Longest wait, in seconds, for the host to answer as the recorded host did.", valueName: "seconds"))
    var answerWait: Double = 2

    mutating func run() throws {
        let recording = try Capture.load(path: capture)
        let link = try output.openLink()
        defer { link.close() }
        // E1381 is a conversation: the recorded device sent each frame only
        // after the recorded host had answered the previous one. Each device
        // chunk therefore waits (besides its recorded time) until the live host
        // has sent as many bytes as the recorded host had by then, or until
        // `answerWait` passes, as when the recorded device timed out.
        var hostBytesRecorded = 0
        var hostBytesSeen = 0
        var chunksSent = 0
        let start = ContinuousClock.now
        func serviceLink(waitMilliseconds: Int32) throws {
            var descriptors = link.pollDescriptors
            _ = poll(&descriptors, nfds_t(descriptors.count), waitMilliseconds)
            hostBytesSeen += try link.service(descriptors).received.count
        }
        for chunk in recording.chunks {
            guard chunk.direction == .deviceToHost else {
                hostBytesRecorded += chunk.bytes.count
                continue
            }
            while !link.isConnected { try serviceLink(waitMilliseconds: 100) }
            let due = start + .nanoseconds(Int64(chunk.time / speed * 1e9))
            let answerDeadline = ContinuousClock.now + .nanoseconds(Int64(answerWait * 1e9))
            while ContinuousClock.now < due || (hostBytesSeen < hostBytesRecorded && ContinuousClock.now < answerDeadline) {
                let untilDue = (due - ContinuousClock.now).secondsValue * 1000
                try serviceLink(waitMilliseconds: Int32(max(1, min(50, untilDue.rounded(.up)))))
            }
            link.write(chunk.bytes)
            chunksSent += 1
        }
        // Let the last answers come and the last bytes drain before closing.
        let end = ContinuousClock.now + .nanoseconds(Int64(answerWait * 1e9))
        while hostBytesSeen < hostBytesRecorded && ContinuousClock.now < end { try serviceLink(waitMilliseconds: 20) }
        emit("done: replayed \(chunksSent) chunk(s)")
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
