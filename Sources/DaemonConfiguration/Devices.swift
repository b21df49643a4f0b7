import SeparatorProtocol
import TOMLKit

/// `[[device]]` blocks.
struct DeviceReader {
    let checker: Checker
    let configurationDirectory: String

    static let commonKeys = ["name", "transport", "dialect", "reconnect_initial_ms", "reconnect_max_s", "silence_timeout_s"]
    static let transportKeys: [(transport: String, keys: [String])] = [
        ("serial", ["path", "usb_serial", "usb_vid_pid", "baud"]),
        ("pty", ["path"]),
        ("tcp", ["host", "port"]),
        ("export", ["directory"]),
        ("simulator", ["scenario", "speed", "seed"]),
    ]
    static var transports: [String] { transportKeys.map(\.transport) }
    static var allKeys: [String] {
        var keys = commonKeys
        for (_, k) in transportKeys { keys += k.filter { !keys.contains($0) } }
        return keys
    }

    /// The speeds termios offers between 1200 and 115200 baud.
    static let bauds = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]
    static let namePattern = "lower-case letters, digits and -, starting with a letter or digit, at most 32 characters"

    func read(_ value: TOMLValue?) -> [DeviceConfiguration] {
        var devices: [DeviceConfiguration] = []
        var names: [String: Int] = [:]  // name → device number that has it
        var endpoints: [String: (device: Int, name: String?)] = [:]
        for (index, table) in arrayOfTables(value, name: "device", checker: checker) {
            let path = "device[\(index)]"
            let (device, endpoint, name) = readDevice(table, path: path)
            if let name {
                if let first = names[name] {
                    checker.report(
                        .duplicateName, path + ".name",
                        "the name \"\(name)\" is already used by device[\(first)]\(lineNote("device[\(first)].name")); each device needs its own name")
                } else {
                    names[name] = index
                }
            }
            if let endpoint {
                if let first = endpoints[endpoint.identity] {
                    let firstName = first.name.map { " (\"\($0)\")" } ?? ""
                    checker.report(
                        .sharedEndpoint, path + "." + endpoint.key,
                        "\(endpoint.what) is already used by device[\(first.device)]\(firstName)\(lineNote("device[\(first.device)]")); two links cannot share one \(endpoint.noun)")
                } else {
                    endpoints[endpoint.identity] = (index, name)
                }
            }
            if let device { devices.append(device) }
        }
        return devices
    }

    private func lineNote(_ path: String) -> String {
        checker.locator.position(of: path).map { " on line \($0.line)" } ?? ""
    }

    static func validName(_ name: String) -> Bool {
        guard (1...32).contains(name.count), let first = name.unicodeScalars.first, first != "-" else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }

    /// What a device connects to, to find two devices on the same one.
    struct Endpoint {
        var identity: String
        var key: String
        var what: String
        var noun: String
    }

    /// The device when it is sound; its endpoint and (valid) name either way, for the cross-device checks.
    private func readDevice(_ table: TOMLTable, path: String) -> (DeviceConfiguration?, Endpoint?, String?) {
        let before = checker.problems.count
        let unknown = checker.unknownKeys(in: table, at: path, known: Self.allKeys, what: "a [[device]]")

        var name = checker.text(table, "name", at: path)
        if let n = name, !Self.validName(n) {
            checker.report(.invalidValue, path + ".name", "\"\(n)\" is not a usable device name: use \(Self.namePattern)")
            name = nil
        } else if name == nil, table["name"] == nil {
            checker.report(.missingKey, path + ".name", "the device has no name; add name = \"optia-1\" (or similar)")
        }

        var transport: String?
        if let t = checker.text(table, "transport", at: path) {
            if Self.transports.contains(t) {
                transport = t
            } else {
                var message = "unknown transport \"\(t)\"; use one of \(Self.transports.joined(separator: ", "))"
                if let near = Checker.nearest(to: t, among: Self.transports) { message += " (did you mean \(near)?)" }
                checker.report(.unknownTransport, path + ".transport", message)
            }
        } else if table["transport"] == nil {
            checker.report(
                .missingKey, path + ".transport",
                "the device has no transport; add transport = one of \(Self.transports.map { "\"\($0)\"" }.joined(separator: ", "))")
        }

        // Settings of another transport are mistakes (a baud on a TCP bridge does nothing).
        if let transport {
            let mine = Self.transportKeys.first { $0.transport == transport }!.keys
            for key in table.keys where !unknown.contains(key) && !Self.commonKeys.contains(key) && !mine.contains(key) {
                let owners = Self.transportKeys.filter { $0.keys.contains(key) }.map(\.transport)
                checker.report(
                    .inapplicableKey, path + "." + key,
                    "\(key) applies only to \(owners.joined(separator: " and ")) devices; this device's transport is \(transport)")
            }
        }

        // What the separator speaks (SeparatorDialect.all); the first dialect when not said.
        var dialect = SeparatorDialect.standard.name
        if let d = checker.text(table, "dialect", at: path) {
            if SeparatorDialect.named(d) != nil {
                dialect = d
            } else {
                let names = SeparatorDialect.all.map(\.name)
                var message = "unknown dialect \"\(d)\"; this build speaks \(names.map { "\"\($0)\"" }.joined(separator: ", "))"
                if let near = Checker.nearest(to: d, among: names) { message += " (did you mean \(near)?)" }
                checker.report(.invalidValue, path + ".dialect", message)
            }
        }

        // Reconnection and staleness, for every transport.
        var reconnectInitialMs = 200
        if let v = checker.integer(table, "reconnect_initial_ms", at: path),
            checker.within(Double(v), 10...60_000, unit: "ms", at: path + ".reconnect_initial_ms")
        {
            reconnectInitialMs = v
        }
        var reconnectMaxS = 30.0
        if let v = checker.number(table, "reconnect_max_s", at: path),
            checker.within(v, 1...3600, unit: "s", at: path + ".reconnect_max_s")
        {
            reconnectMaxS = v
        }
        if Double(reconnectInitialMs) > reconnectMaxS * 1000 {
            let key = table["reconnect_max_s"] != nil ? "reconnect_max_s" : "reconnect_initial_ms"
            checker.report(
                .ordering, path + "." + key,
                "the first reconnection wait (\(reconnectInitialMs) ms) is longer than the longest one (\(format(reconnectMaxS)) s)")
        }
        var silenceS = 60.0
        if let v = checker.number(table, "silence_timeout_s", at: path),
            checker.within(v, 1...3600, unit: "s", at: path + ".silence_timeout_s")
        {
            silenceS = v
        }

        var result: DeviceConfiguration.Transport?
        var endpoint: Endpoint?
        switch transport {
        case "serial": (result, endpoint) = serial(table, path)
        case "pty": (result, endpoint) = pty(table, path)
        case "tcp": (result, endpoint) = tcp(table, path)
        case "export": (result, endpoint) = export(table, path)
        case "simulator": result = simulator(table, path)
        default: break
        }

        guard checker.problems.count == before, let name, let result else { return (nil, endpoint, name) }
        return (
            DeviceConfiguration(
                name: name, transport: result, dialect: dialect, reconnectInitial: .milliseconds(reconnectInitialMs),
                reconnectMax: .seconds(reconnectMaxS), silenceTimeout: .seconds(silenceS)),
            endpoint, name
        )
    }

    private func absolutePath(_ table: TOMLTable, _ key: String, _ path: String, example: String) -> String? {
        guard let s = checker.text(table, key, at: path) else { return nil }
        guard s.hasPrefix("/") else {
            checker.report(.invalidValue, path + "." + key, "\"\(s)\" must be a full path starting with /, such as \(example)")
            return nil
        }
        return s
    }

    private func serial(_ table: TOMLTable, _ path: String) -> (DeviceConfiguration.Transport?, Endpoint?) {
        let devicePath = absolutePath(table, "path", path, example: "/dev/optia-1OPT00417 or /dev/serial/by-id/…")
        var usbSerial: String?
        if let s = checker.text(table, "usb_serial", at: path) {
            if s.isEmpty { checker.report(.invalidValue, path + ".usb_serial", "must not be empty") } else { usbSerial = s }
        }
        var vidPid: USBDeviceID?
        if let s = checker.text(table, "usb_vid_pid", at: path) {
            if let id = USBDeviceID(s) {
                vidPid = id
            } else {
                checker.report(
                    .invalidValue, path + ".usb_vid_pid",
                    "\"\(s)\" is not a USB vendor:product pair; write four hex digits each, as lsusb shows them, such as \"0403:6001\"")
            }
        }
        let hasPath = table["path"] != nil
        let hasUSB = table["usb_serial"] != nil || table["usb_vid_pid"] != nil
        if !hasPath && !hasUSB {
            checker.report(
                .missingKey, path + ".path",
                "a serial device needs path (such as /dev/optia-1OPT00417), or usb_serial and/or usb_vid_pid to find its USB adapter")
        } else if hasPath && hasUSB {
            checker.report(
                .conflict, path + "." + (table["usb_serial"] != nil ? "usb_serial" : "usb_vid_pid"),
                "give either path or usb_serial/usb_vid_pid, not both: with both it is unclear which adapter is meant")
        }
        var baud = DeviceConfiguration.defaultBaud
        if let b = checker.integer(table, "baud", at: path) {
            if Self.bauds.contains(b) {
                baud = b
            } else if b < Self.bauds.first! || b > Self.bauds.last! {
                checker.report(.outOfRange, path + ".baud", "\(b) is not a serial speed this interface allows (1200 to 115200)")
            } else {
                checker.report(
                    .outOfRange, path + ".baud",
                    "\(b) is not a standard serial speed; use one of \(Self.bauds.map(String.init).joined(separator: ", ")) (the separator's setting)")
            }
        }
        var endpoint: Endpoint?
        if let devicePath {
            endpoint = Endpoint(identity: "path:" + devicePath, key: "path", what: devicePath, noun: "port")
        } else if let usbSerial {
            endpoint = Endpoint(
                identity: "usb-serial:" + usbSerial, key: "usb_serial", what: "the USB adapter with serial number \(usbSerial)",
                noun: "adapter")
        } else if let vidPid {
            endpoint = Endpoint(
                identity: "usb-id:\(vidPid)", key: "usb_vid_pid",
                what: "the USB adapter \(vidPid) (no usb_serial to tell two of them apart)", noun: "adapter")
        }
        return (.serial(path: devicePath, usbSerial: usbSerial, usbVIDPID: vidPid, baud: baud), endpoint)
    }

    private func pty(_ table: TOMLTable, _ path: String) -> (DeviceConfiguration.Transport?, Endpoint?) {
        if table["path"] == nil {
            checker.report(.missingKey, path + ".path", "a pty device needs path, the pseudo-terminal to open (such as /dev/pts/3)")
            return (nil, nil)
        }
        guard let p = absolutePath(table, "path", path, example: "/dev/pts/3") else { return (nil, nil) }
        return (.pty(path: p), Endpoint(identity: "path:" + p, key: "path", what: p, noun: "port"))
    }

    private func tcp(_ table: TOMLTable, _ path: String) -> (DeviceConfiguration.Transport?, Endpoint?) {
        var host: String?
        if let h = checker.text(table, "host", at: path) {
            if h.isEmpty || h.contains(where: { $0 == " " || $0 == "/" }) {
                checker.report(.invalidValue, path + ".host", "\"\(h)\" is not a host name or IP address")
            } else {
                host = h
            }
        } else if table["host"] == nil {
            checker.report(.missingKey, path + ".host", "a tcp device needs host, the address of the serial-to-network bridge")
        }
        var port: Int?
        if let p = checker.integer(table, "port", at: path) {
            if checker.within(Double(p), 1...65535, unit: "", at: path + ".port") { port = p }
        } else if table["port"] == nil {
            checker.report(.missingKey, path + ".port", "a tcp device needs port, the bridge's TCP port (such as 4001)")
        }
        guard let host, let port else { return (nil, nil) }
        return (
            .tcp(host: host, port: port),
            Endpoint(identity: "tcp:\(host.lowercased()):\(port)", key: "port", what: "\(host) port \(port)", noun: "port")
        )
    }

    private func export(_ table: TOMLTable, _ path: String) -> (DeviceConfiguration.Transport?, Endpoint?) {
        if table["directory"] == nil {
            checker.report(.missingKey, path + ".directory", "an export device needs directory, where the export files arrive")
            return (nil, nil)
        }
        guard var d = absolutePath(table, "directory", path, example: "/srv/optia-export") else { return (nil, nil) }
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        return (.export(directory: d), Endpoint(identity: "dir:" + d, key: "directory", what: "the directory \(d)", noun: "directory"))
    }

    private func simulator(_ table: TOMLTable, _ path: String) -> DeviceConfiguration.Transport? {
        var scenario: String?
        if let s = checker.text(table, "scenario", at: path) {
            if s.isEmpty { checker.report(.invalidValue, path + ".scenario", "must name a scenario file") } else {
                scenario = PathText.join(configurationDirectory, s)
            }
        } else if table["scenario"] == nil {
            checker.report(.missingKey, path + ".scenario", "a simulator device needs scenario, the optia-sim scenario file to play")
        }
        var speed = DeviceConfiguration.defaultSimulatorSpeed
        if let v = checker.number(table, "speed", at: path), checker.within(v, 0.1...1000, unit: "x", at: path + ".speed") {
            speed = v
        }
        var seed = DeviceConfiguration.defaultSimulatorSeed
        if let v = checker.integer(table, "seed", at: path) {
            if v < 0 {
                checker.report(.outOfRange, path + ".seed", "\(v) is negative; the seed is a whole number from 0 up")
            } else {
                seed = UInt64(v)
            }
        }
        return scenario.map { .simulator(scenario: $0, speed: speed, seed: seed) }
    }
}
