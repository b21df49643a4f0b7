import DaemonConfiguration
import Foundation
import Glibc

/// HTTP/1.1 to the running daemon's API, one request per connection, over TCP or a Unix socket.
/// A CLI is short-lived: the blocking socket runs on a GCD thread, never on the concurrency pool.
struct DaemonClient: Sendable {
    enum Endpoint: Sendable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        case unix(path: String)
        var description: String {
            switch self {
            case .tcp(let host, let port): "\(host):\(port)"
            case .unix(let path): path
            }
        }
    }

    struct Reply: Sendable {
        var status: Int
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var data: Any? { json["data"] }
        var errorMessage: String? { (json["error"] as? [String: Any])?["message"] as? String }
    }

    struct NotRunning: Error, CustomStringConvertible {
        var endpoint: Endpoint
        var reason: String
        var description: String {
            "apheresisd is not running, or its API is off: nothing answers on \(endpoint) (\(reason)). "
                + "Start it (systemctl start apheresisd, or make demo), or give --api http://HOST:PORT."
        }
    }

    let endpoint: Endpoint

    /// `--api http://host:port` or `unix:/path`, else the configuration's `[api]`.
    init?(api: String?, settings: APISettings) {
        if let api {
            if api.hasPrefix("unix:") {
                endpoint = .unix(path: String(api.dropFirst(5)))
                return
            }
            guard let url = URL(string: api), let host = url.host, let port = url.port else { return nil }
            endpoint = .tcp(host: host, port: port)
            return
        }
        switch settings.listen {
        case .tcp(let host, let port): endpoint = .tcp(host: host == "0.0.0.0" ? "127.0.0.1" : host, port: port)
        case .unixSocket(let path): endpoint = .unix(path: path)
        case .off: return nil
        }
    }

    func request(_ method: String, _ path: String, json: [String: Any]? = nil, user: (String, String)? = nil) async throws -> Reply {
        // Every write carries a JSON body (the daemon refuses writes that are not JSON).
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? (method == "GET" ? Data() : Data("{}".utf8))
        var head = "\(method) \(path) HTTP/1.1\r\nHost: apheresisd\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        if !body.isEmpty { head += "Content-Type: application/json\r\n" }
        if let (name, password) = user {
            head += "Authorization: Basic " + Data("\(name):\(password)".utf8).base64EncodedString() + "\r\n"
        }
        let request = Data((head + "\r\n").utf8) + body
        let endpoint = self.endpoint
        let raw: Result<Data, NotRunning> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Self.exchange(endpoint, request)) }
        }
        return try Self.parse(try raw.get(), endpoint)
    }

    /// A connected socket to the daemon, or why there is none.
    static func connect(_ endpoint: Endpoint) -> Result<Int32, NotRunning> {
        let fd: Int32
        switch endpoint {
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>? = nil
            guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
                return .failure(NotRunning(endpoint: endpoint, reason: "cannot resolve \(host)"))
            }
            defer { freeaddrinfo(list) }
            fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
            guard fd >= 0, Glibc.connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
                let reason = String(cString: strerror(errno))
                if fd >= 0 { close(fd) }
                return .failure(NotRunning(endpoint: endpoint, reason: reason))
            }
        case .unix(let path):
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
                return .failure(NotRunning(endpoint: endpoint, reason: "socket path too long"))
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, b) in bytes.enumerated() { raw[i] = b }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                return .failure(NotRunning(endpoint: endpoint, reason: reason))
            }
        }
        return .success(fd)
    }

    static func exchange(_ endpoint: Endpoint, _ request: Data) -> Result<Data, NotRunning> {
        let fd: Int32
        switch connect(endpoint) {
        case .success(let connected): fd = connected
        case .failure(let error): return .failure(error)
        }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var remaining = request[...]
        while !remaining.isEmpty {
            let n = remaining.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return .failure(NotRunning(endpoint: endpoint, reason: "the connection closed while sending")) }
            remaining = remaining.dropFirst(n)
        }
        var reply = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 { return .failure(NotRunning(endpoint: endpoint, reason: "no answer within 30 s")) }
            if n == 0 { break }
            reply.append(contentsOf: chunk[0..<n])
        }
        return .success(reply)
    }

    static func parse(_ raw: Data, _ endpoint: Endpoint) throws -> Reply {
        guard let split = raw.range(of: Data("\r\n\r\n".utf8)) else {
            throw NotRunning(endpoint: endpoint, reason: "the answer is not HTTP")
        }
        let head = String(decoding: raw[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let parts = head[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw NotRunning(endpoint: endpoint, reason: "the answer is not HTTP")
        }
        var body = Data(raw[split.upperBound...])
        if head.contains(where: { $0.lowercased() == "transfer-encoding: chunked" }) { body = dechunk(body) }
        return Reply(status: status, body: body)
    }

    static func dechunk(_ data: Data) -> Data {
        var out = Data()
        var rest = data[...]
        while let lineEnd = rest.range(of: Data("\r\n".utf8)) {
            let sizeText = String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            let end = rest.index(start, offsetBy: size, limitedBy: rest.endIndex) ?? rest.endIndex
            out.append(rest[start..<end])
            rest = rest[end...].dropFirst(2)
        }
        return out
    }
}

extension DaemonClient {
    struct StreamEvent: Sendable {
        var name: String
        var data: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
    }

    /// The live stream's events as they arrive (read on a GCD thread). Ends when the daemon closes it.
    func events(_ path: String) throws -> AsyncThrowingStream<StreamEvent, any Error> {
        let endpoint = self.endpoint
        return AsyncThrowingStream { continuation in
            DispatchQueue.global().async {
                let request = Data("GET \(path) HTTP/1.1\r\nHost: apheresisd\r\nAccept: text/event-stream\r\n\r\n".utf8)
                let result = Self.streamExchange(endpoint, request) { event in
                    if case .terminated = continuation.yield(event) { return false }
                    return true
                }
                switch result {
                case .success: continuation.finish()
                case .failure(let error): continuation.finish(throwing: error)
                }
            }
        }
    }

    /// Connects like `exchange`, then calls `onEvent` for each complete event until it returns false.
    static func streamExchange(_ endpoint: Endpoint, _ request: Data, onEvent: (StreamEvent) -> Bool) -> Result<Void, NotRunning> {
        let fd: Int32
        switch connect(endpoint) {
        case .success(let connected): fd = connected
        case .failure(let error): return .failure(error)
        }
        defer { close(fd) }
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var decoder = EventStreamDecoder()
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return .success(()) }
            do {
                for event in try decoder.feed(chunk[0..<n]) where !onEvent(event) { return .success(()) }
            } catch {
                return .failure(NotRunning(endpoint: endpoint, reason: "\(error)"))
            }
        }
    }
}

/// Server-Sent Events over HTTP/1.1, fed bytes as they arrive: the head (status checked), chunked
/// transfer coding, then events separated by a blank line. Bytes, not Strings: as a Swift String
/// "\r\n" is one Character, and a multi-byte character may straddle two reads.
struct EventStreamDecoder {
    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    private var wire: [UInt8] = []
    private var body: [UInt8] = []
    private var head: String?
    private var chunked = false

    mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [DaemonClient.StreamEvent] {
        wire += bytes
        let crlf: [UInt8] = [13, 10]
        if head == nil {
            guard let end = wire.firstRange(of: crlf + crlf) else { return [] }
            let text = String(decoding: wire[..<end.lowerBound], as: UTF8.self)
            wire.removeSubrange(..<end.upperBound)
            head = text
            let lines = text.components(separatedBy: "\r\n")
            let status = lines[0].split(separator: " ").dropFirst().first.flatMap { Int($0) }
            guard status == 200 else { throw Refused(description: "the stream answered \(lines[0])") }
            chunked = lines.contains { $0.lowercased() == "transfer-encoding: chunked" }
        }
        if chunked {
            while let lineEnd = wire.firstRange(of: crlf) {
                let sizeText = String(decoding: wire[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                    throw Refused(description: "bad chunk size line \"\(sizeText)\"")
                }
                let start = lineEnd.upperBound
                guard wire.count >= start + size + 2 else { break }
                body += wire[start..<start + size]
                wire.removeSubrange(..<(start + size + 2))
            }
        } else {
            body += wire
            wire.removeAll()
        }
        var events: [DaemonClient.StreamEvent] = []
        while let end = body.firstRange(of: [10, 10] as [UInt8]) {
            let block = String(decoding: body[..<end.lowerBound], as: UTF8.self)
            body.removeSubrange(..<end.upperBound)
            var name = "message"
            var data: [String] = []
            for line in block.split(separator: "\n") {
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
            }
            if !data.isEmpty { events.append(DaemonClient.StreamEvent(name: name, data: data.joined(separator: "\n"))) }
        }
        return events
    }
}
