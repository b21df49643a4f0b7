import Foundation
import TOMLKit
import TextFormats

/// `[hl7]` and its `[[hl7.destination]]` blocks: the hospital's interface engines (docs/hl7.md).
public struct HL7Settings: Sendable, Equatable {
    public enum Feed: String, Sendable, Equatable, CaseIterable {
        case observations, alarms, products
    }

    public struct Destination: Sendable, Equatable {
        public var name: String
        public var host: String
        public var port: Int
        public var feeds: [Feed]
        /// Run time between two PCD-01 observations of a run.
        public var observationInterval: Duration
        public var sendingApplication: String
        public var sendingFacility: String
        public var receivingApplication: String
        public var receivingFacility: String
        public var connectTimeout: Duration
        public var answerTimeout: Duration
        public var retryDelay: Duration
        /// AE answers before a message is set aside.
        public var errorAttempts: Int
        /// TLS to the receiver; nil: plain TCP (a site's own network, or a tunnel).
        public var tls: TLS?

        public var address: String { HostAndPort(host: host, port: port).description }
    }

    /// TLS settings of a destination: the receiver's certificate is verified against `caFile` (else
    /// the system's trust store) and the name it is checked for; a client certificate when the
    /// receiver asks for one.
    public struct TLS: Sendable, Equatable {
        public var caFile: String?
        public var certificateFile: String?
        public var keyFile: String?
        /// The name the receiver's certificate must carry; nil: the address's host.
        public var serverName: String?
    }

    /// Zone of the times the daemon writes (MSH-7, alarm steps, releases); always with the offset.
    /// nil: the machine's zone.
    public var timeZone: String?
    public var destinations: [Destination]

    public init(timeZone: String? = nil, destinations: [Destination] = []) {
        self.timeZone = timeZone
        self.destinations = destinations
    }
}

struct HL7SettingsReader {
    let checker: Checker
    static let keys = ["time_zone", "destination"]
    static let destinationKeys = [
        "name", "address", "feeds", "observation_interval_s", "sending_application", "sending_facility", "receiving_application",
        "receiving_facility", "connect_timeout_s", "ack_timeout_s", "retry_s", "error_attempts", "tls", "tls_ca_file",
        "tls_certificate_file", "tls_key_file", "tls_server_name",
    ]
    static let tlsKeys = ["tls_ca_file", "tls_certificate_file", "tls_key_file", "tls_server_name"]

    func read(_ value: TOMLValue?) -> HL7Settings {
        var settings = HL7Settings()
        guard let value else { return settings }
        guard let table = value.table else {
            checker.wrongType("hl7", expected: "a table: [hl7] and [[hl7.destination]] blocks", found: value)
            return settings
        }
        _ = checker.unknownKeys(in: table, at: "hl7", known: Self.keys, what: "[hl7]")
        if let zone = checker.text(table, "time_zone", at: "hl7") {
            if TimeZone(identifier: zone) == nil {
                checker.report(.invalidValue, "hl7.time_zone", "\"\(zone)\" is not a time zone name; use one such as \"Europe/Berlin\"")
            } else {
                settings.timeZone = zone
            }
        }
        var names: [String: Int] = [:]
        for (index, destination) in arrayOfTables(table["destination"]?.tomlValue, name: "hl7.destination", checker: checker) {
            let path = "hl7.destination[\(index)]"
            guard let read = readDestination(destination, path: path) else { continue }
            if let first = names[read.name] {
                checker.report(
                    .duplicateName, path + ".name",
                    "the name \"\(read.name)\" is already used by hl7.destination[\(first)]; each destination needs its own name")
                continue
            }
            names[read.name] = index
            settings.destinations.append(read)
        }
        return settings
    }

    private func readDestination(_ table: TOMLTable, path: String) -> HL7Settings.Destination? {
        let before = checker.problems.count
        _ = checker.unknownKeys(in: table, at: path, known: Self.destinationKeys, what: "an [[hl7.destination]]")
        var name: String?
        if let n = checker.text(table, "name", at: path) {
            if DeviceReader.validName(n) {
                name = n
            } else {
                checker.report(.invalidValue, path + ".name", "\"\(n)\" is not a usable name: use \(DeviceReader.namePattern)")
            }
        } else if table["name"] == nil {
            checker.report(.missingKey, path + ".name", "the destination has no name; add name = \"interface-engine\" (or similar)")
        }
        var address: HostAndPort?
        if let a = checker.text(table, "address", at: path) {
            switch HostAndPort.parse(a, ports: 1...65535) {
            case .success(let parsed): address = parsed
            case .failure(let problem): checker.report(.invalidValue, path + ".address", problem.description)
            }
        } else if table["address"] == nil {
            checker.report(.missingKey, path + ".address", "the destination has no address; add address = \"host:port\" of its MLLP listener")
        }
        var feeds = HL7Settings.Feed.allCases
        if let list = checker.textList(table, "feeds", at: path) {
            var chosen: [HL7Settings.Feed] = []
            for item in list {
                if let feed = HL7Settings.Feed(rawValue: item) {
                    if !chosen.contains(feed) { chosen.append(feed) }
                } else {
                    let names = HL7Settings.Feed.allCases.map(\.rawValue)
                    var message = "\"\(item)\" is not a feed; use some of \(names.joined(separator: ", "))"
                    if let near = Checker.nearest(to: item, among: names) { message += " (did you mean \(near)?)" }
                    checker.report(.invalidValue, path + ".feeds", message)
                }
            }
            if list.isEmpty { checker.report(.invalidValue, path + ".feeds", "an empty list sends nothing; leave the destination out instead") }
            feeds = chosen
        }
        func seconds(_ key: String, _ range: ClosedRange<Double>, _ fallback: Double) -> Duration {
            if let v = checker.number(table, key, at: path), checker.within(v, range, unit: "s", at: path + "." + key) {
                return .milliseconds(Int64(v * 1000))
            }
            return .milliseconds(Int64(fallback * 1000))
        }
        let interval = seconds("observation_interval_s", 5...3600, 60)
        let connect = seconds("connect_timeout_s", 1...120, 10)
        let answer = seconds("ack_timeout_s", 0.5...600, 30)
        let retry = seconds("retry_s", 0.1...3600, 10)
        var errorAttempts = 3
        if let v = checker.integer(table, "error_attempts", at: path),
            checker.within(Double(v), 1...100, unit: "answers", at: path + ".error_attempts")
        {
            errorAttempts = v
        }
        func identity(_ key: String, _ fallback: String) -> String {
            guard let v = checker.text(table, key, at: path) else { return fallback }
            if v.isEmpty || v.count > 227 || v.contains(where: { "|^~\\&\r\n".contains($0) }) {
                checker.report(
                    .invalidValue, path + "." + key,
                    "\"\(v)\" cannot be an HL7 application or facility name: 1 to 227 characters without | ^ ~ \\ & or line breaks")
                return fallback
            }
            return v
        }
        var tls: HL7Settings.TLS?
        var tlsOn = false
        if let value = table["tls"]?.tomlValue {
            if let on = value.bool { tlsOn = on } else { checker.wrongType(path + ".tls", expected: "true or false", found: value) }
        }
        if tlsOn {
            func file(_ key: String) -> String? {
                guard let f = checker.text(table, key, at: path) else { return nil }
                if !f.hasPrefix("/") {
                    checker.report(.invalidValue, path + "." + key, "must be an absolute path, such as \"/etc/apheresisd/hl7-ca.pem\"")
                    return nil
                }
                return f
            }
            let certificate = file("tls_certificate_file")
            let key = file("tls_key_file")
            if (certificate == nil) != (key == nil), table["tls_certificate_file"] != nil || table["tls_key_file"] != nil {
                let missing = certificate == nil ? "tls_certificate_file" : "tls_key_file"
                // Reported where the half that is there was written.
                checker.report(
                    .missingKey, path + "." + (certificate == nil ? "tls_key_file" : "tls_certificate_file"),
                    "a client certificate needs both tls_certificate_file and tls_key_file; \(missing) is missing")
            }
            tls = HL7Settings.TLS(
                caFile: file("tls_ca_file"), certificateFile: certificate, keyFile: key,
                serverName: checker.text(table, "tls_server_name", at: path))
        } else {
            for key in Self.tlsKeys where table[key] != nil {
                checker.report(.inapplicableKey, path + "." + key, "\(key) applies only with tls = true")
            }
        }
        let sendingApplication = identity("sending_application", "APHERESISD")
        let sendingFacility = identity("sending_facility", "APHERESIS")
        let receivingApplication = identity("receiving_application", "INTERFACE")
        let receivingFacility = identity("receiving_facility", "HOSPITAL")
        guard checker.problems.count == before, let name, let address else { return nil }
        return HL7Settings.Destination(
            name: name, host: address.host, port: address.port, feeds: feeds, observationInterval: interval,
            sendingApplication: sendingApplication, sendingFacility: sendingFacility, receivingApplication: receivingApplication,
            receivingFacility: receivingFacility, connectTimeout: connect, answerTimeout: answer, retryDelay: retry,
            errorAttempts: errorAttempts, tls: tls)
    }
}
