import ApheresisVersion
import ArgumentParser
import DeviceLinks
import Quantities
import SeparatorProtocol
import SimulatorKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@main
struct OptiaSim: ParsableCommand {
    static func main() {
        // A parent that handles SIGTERM itself (apheresisd, through
        // ServiceLifecycle) sets it to ignored, and ignored signals survive
        // exec: restore the defaults so the simulator can be stopped.
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
        Self.main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "optia-sim",
        abstract: "A simulated Spectra Optia-style cell separator speaking separator interface version 1.",
        discussion: """
            The simulator plays a scenario (simulator/scenarios/*.toml) as the device side of \
            ASTM E1381/E1394 over a pseudo-terminal, a serial line or TCP, or writes the \
            finished run as an export file. Unacknowledged messages and the sequence counter \
            live in a state file, so a restart loses nothing and repeats no sequence number.
            """,
        version: ApheresisVersion.string,
        subcommands: [Run.self, Record.self, Replay.self, Decode.self, Monitor.self, Check.self],
        defaultSubcommand: Run.self
    )
}

/// Where the device's bytes go.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Create a pseudo-terminal; its path is printed as 'pty: /dev/pts/N' on the first line.")
    var pty = false

    @Option(help: ArgumentHelp("With --pty: keep a symlink at PATH pointing at the current pseudo-terminal.", valueName: "path"))
    var link: String?

    @Option(help: ArgumentHelp("Use a real serial port through libserialport (8N1, no flow control).", valueName: "device"))
    var serial: String?

    @Option(help: "Baud rate for --serial (1200 to 115200).")
    var baud: Int = 9600

    @Option(help: ArgumentHelp("Listen on 127.0.0.1:PORT (0 picks a free port); printed as 'tcp: 127.0.0.1:N'.", valueName: "port"))
    var tcp: UInt16?

    @Option(help: ArgumentHelp("Write the finished run as a CSV export file into DIR (no wire protocol).", valueName: "dir"))
    var exportDir: String?

    func validate() throws {
        let chosen = [pty, serial != nil, tcp != nil, exportDir != nil].filter { $0 }.count
        guard chosen == 1 else {
            throw ValidationError("choose exactly one output: --pty, --serial DEVICE, --tcp PORT or --export-dir DIR")
        }
        if link != nil && !pty { throw ValidationError("--link goes with --pty") }
        if serial != nil && !SerialPort.allowedBaudRates.contains(baud) {
            throw ValidationError("--baud \(baud) is not one of \(SerialPort.allowedBaudRates.map(String.init).joined(separator: ", "))")
        }
    }

    /// Opens the wire link and prints its address line.
    func openLink() throws -> WireLink {
        if pty {
            let pair = try PseudoTerminal.create()
            if let link { try PseudoTerminal.replaceSymlink(link, pointingTo: pair.path) }
            emit("pty: \(pair.path)")
            return TerminalLink(fd: pair.master, keeper: pair.keeper)
        }
        if let serial {
            let fd = try SerialPort.open(path: serial, baud: baud)
            emit("serial: \(serial) \(baud) 8N1")
            return TerminalLink(fd: fd, keeper: nil)
        }
        if let tcp {
            let link = try TCPLink(host: "127.0.0.1", port: tcp)
            emit("tcp: 127.0.0.1:\(link.port)")
            return link
        }
        throw ValidationError("no wire output chosen")
    }

    var transportName: String {
        if pty { return "pty" }
        if let serial { return "serial \(serial)" }
        if let tcp { return "tcp \(tcp)" }
        return "export"
    }
}

struct RunOptions: ParsableArguments {
    @Argument(help: "Scenario file (TOML, format optia-sim-scenario/1).")
    var scenario: String

    @OptionGroup var output: OutputOptions

    @Option(help: "Run this many times faster than real time (600 turns 4 h into 24 s).")
    var speed: Double = 1

    @Option(help: "Seed for every random choice (faults, noise): the same seed repeats the same run.")
    var seed: UInt64 = 1

    @Option(help: ArgumentHelp("State file: sequence counter and unacknowledged messages (default: optia-sim-SERIAL.state in the current directory).", valueName: "path"))
    var state: String?

    @Flag(help: "fsync the state file on every change (survives power loss, not only a killed process).")
    var fsync = false

    @Option(help: ArgumentHelp("Seconds to wait for each answer from the host (default 15 s divided by --speed, at least 0.5 s).", valueName: "seconds"))
    var answerTimeout: Double?

    @Flag(name: .shortAndLong, help: "Log every protocol event on stderr.")
    var verbose = false

    @Flag(help: "Stop when the process that started this one is gone (the daemon's demo simulator), instead of holding the terminal as an orphan.")
    var exitWithParent = false

    func validate() throws {
        guard speed.isFinite, speed > 0 else { throw ValidationError("--speed must be a positive number, not \(speed)") }
        if let answerTimeout, !(answerTimeout.isFinite && answerTimeout > 0) {
            throw ValidationError("--answer-timeout must be a positive number of seconds")
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Play a scenario as the device.")

    @OptionGroup var options: RunOptions

    mutating func run() throws {
        try simulate(options, capturePath: nil)
    }
}

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play a scenario and write every byte sent and received, with timestamps, to a capture file.")

    @Option(help: ArgumentHelp("Capture file to write.", valueName: "path"))
    var capture: String

    @OptionGroup var options: RunOptions

    mutating func run() throws {
        try simulate(options, capturePath: capture)
    }
}

func simulate(_ options: RunOptions, capturePath: String?) throws {
    let scenario: Scenario
    do {
        scenario = try ScenarioLoader.load(path: options.scenario)
    } catch {
        throw ValidationError("\(error)")
    }
    let statePath = options.state ?? "optia-sim-\(scenario.device.serialNumber).state"
    let outbox = try Outbox(path: statePath, fsync: options.fsync)
    let log: (String) -> Void = { line in writeLine("optia-sim: \(line)", to: STDERR_FILENO) }
    if options.exitWithParent { exitWhenOrphaned() }

    if let directory = options.output.exportDir {
        try ExportWriter(scenario: scenario, outbox: outbox, seed: options.seed, directory: directory, log: log).run()
        return
    }

    let link = try options.output.openLink()
    defer { link.close() }
    let capture = try capturePath.map {
        try CaptureWriter(path: $0, comments: [
            "scenario \(scenario.name), seed \(options.seed), speed \(options.speed), \(options.output.transportName)",
        ])
    }
    let answerTimeout = options.answerTimeout.map { Duration.nanoseconds(Int64($0 * 1e9)) }
        ?? DeviceLoop.scaled(.seconds(15), speed: options.speed, floor: .milliseconds(500))
    let loop = try DeviceLoop(
        scenario: scenario, outbox: outbox, link: link, capture: capture,
        options: .init(speed: options.speed, answerTimeout: answerTimeout, seed: options.seed, verbose: options.verbose),
        log: log)
    emit("run: \(loop.runID)")
    try loop.run()
    emit("done: \(loop.runID) last-sequence \(outbox.lastSequence)")
}

/// One line on stdout, written at once: tests and scripts read these.
func emit(_ line: String) {
    writeLine(line, to: STDOUT_FILENO)
}

/// Unbuffered, so lines appear in order even if the process is killed next.
func writeLine(_ line: String, to fd: Int32) {
    var bytes = Array((line + "\n").utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        bytes = bytes.dropFirst(n)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate scenario files and summarise them.")

    @Argument(help: "Scenario files.")
    var scenarios: [String]

    mutating func run() throws {
        var failed = false
        for path in scenarios {
            do {
                let scenario = try ScenarioLoader.load(path: path)
                emit("\(path): ok (\(scenario.name))")
            } catch {
                failed = true
                emit("\(error)")
            }
        }
        if failed { throw ExitCode(1) }
    }
}

/// Polls the parent pid on a thread of its own: when the daemon that started this simulator dies
/// (even by SIGKILL, which it cannot pass on), the simulator is re-parented and stops. The state file
/// makes the stop harmless: the next run resends what was not acknowledged. PR_SET_PDEATHSIG is not
/// used because it fires when the spawning *thread* exits, which in a thread pool is any time.
func exitWhenOrphaned() {
    startingParentPid = getppid()
    var thread = pthread_t()
    // Written before pthread_create, which orders it before the thread's reads.
    pthread_create(&thread, nil, { _ in
        while getppid() == startingParentPid { usleep(500_000) }
        writeLine("optia-sim: the process that started it (pid \(startingParentPid)) is gone; stopping", to: STDERR_FILENO)
        exit(0)
    }, nil)
}

nonisolated(unsafe) private var startingParentPid: pid_t = 0
