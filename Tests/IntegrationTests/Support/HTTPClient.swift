import Foundation
import Glibc

/// A plain HTTP client for the daemon's API (URLSession), with optional HTTP Basic credentials.
struct HTTPReply: CustomStringConvertible {
    var status: Int
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var data: Any? { json["data"] }
    var errorMessage: String { ((json["error"] as? [String: Any])?["message"] as? String) ?? "" }
    var description: String { "HTTP \(status) \(text.prefix(3000))" }
    func header(_ name: String) -> String? { headers.first { $0.key.lowercased() == name.lowercased() }?.value }
}

/// HTTP/1.1 over a plain socket, one request per connection (`Connection: close`), on a GCD thread.
/// URLSession's async API hung here under Swift Testing; a few lines of socket code cannot.
enum HTTP {
    struct Failure: Error, CustomStringConvertible { var description: String }

    static func request(
        _ method: String, _ url: String, json: Any? = nil, rawBody: String? = nil, user: (String, String)? = nil,
        headers extra: [String: String] = [:]
    ) async throws -> HTTPReply {
        var body = Data()
        if let json { body = try JSONSerialization.data(withJSONObject: json) } else if let rawBody { body = Data(rawBody.utf8) }
        // A write with nothing to say still sends JSON (the daemon refuses writes that are not).
        if body.isEmpty, method != "GET" { body = Data("{}".utf8) }
        guard let parsed = URL(string: url), let host = parsed.host, let port = parsed.port else {
            throw Failure(description: "cannot parse \(url)")
        }
        var path = parsed.path.isEmpty ? "/" : parsed.path
        if let query = parsed.query { path += "?" + query }
        var head = "\(method) \(path) HTTP/1.1\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        if !extra.keys.contains(where: { $0.lowercased() == "host" }) { head += "Host: \(host):\(port)\r\n" }
        if !body.isEmpty, !extra.keys.contains(where: { $0.lowercased() == "content-type" }) { head += "Content-Type: application/json\r\n" }
        for (name, value) in extra.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        if let (name, password) = user {
            head += "Authorization: Basic " + Data("\(name):\(password)".utf8).base64EncodedString() + "\r\n"
        }
        let request = Data((head + "\r\n").utf8) + body
        let raw: Result<Data, Failure> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: exchange(host: host, port: port, request: request)) }
        }
        return try parse(try raw.get())
    }

    static func exchange(host: String, port: Int, request: Data) -> Result<Data, Failure> {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return .failure(Failure(description: "socket failed")) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return .failure(Failure(description: "cannot connect to \(host):\(port)")) }
        var remaining = request[...]
        while !remaining.isEmpty {
            let n = remaining.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return .failure(Failure(description: "send failed")) }
            remaining = remaining.dropFirst(n)
        }
        var reply = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 { return .failure(Failure(description: "no complete reply within 30 s")) }
            if n == 0 { break }
            reply.append(contentsOf: chunk[0..<n])
        }
        return .success(reply)
    }

    static func parse(_ raw: Data) throws -> HTTPReply {
        guard let split = raw.range(of: Data("\r\n\r\n".utf8)) else { throw Failure(description: "no header end in reply") }
        let head = String(decoding: raw[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(raw[split.upperBound...])
        if headers.first(where: { $0.key.lowercased() == "transfer-encoding" })?.value.lowercased() == "chunked" {
            body = dechunk(body)
        }
        return HTTPReply(status: status, headers: headers, body: body)
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
