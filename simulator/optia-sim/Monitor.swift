import ArgumentParser
import SimulatorKit

/// A minimal host for trying the simulator by hand: answers E1381, prints one
/// line per message. Not the daemon: it keeps nothing.
struct Monitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Act as a minimal host: answer the device and print each message it sends.")

    @Option(help: ArgumentHelp("Terminal to open (a pty path or its --link symlink, or a serial device).", valueName: "path"))
    var terminal: String?

    @Option(help: ArgumentHelp("Connect to a device listening on 127.0.0.1:PORT.", valueName: "port"))
    var tcp: UInt16?

    func validate() throws {
        guard (terminal != nil) != (tcp != nil) else { throw ValidationError("choose one of --terminal PATH or --tcp PORT") }
    }

    mutating func run() throws {
        let endpoint: HostLoop.Endpoint = if let terminal { .terminal(path: terminal) } else { .tcp(host: "127.0.0.1", port: tcp ?? 4001) }
        let loop = HostLoop(endpoint: endpoint) { outcome in emit(CaptureDecoder.describe(outcome)) }
        loop.run()
    }
}
