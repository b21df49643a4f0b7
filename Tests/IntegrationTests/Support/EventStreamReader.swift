import Foundation
import Glibc

/// A Server-Sent Events client on a plain socket: connects, sends the GET, and hands back events
/// (`event:` name and `data:` text) as they arrive. The reading thread stops at `close()`.
final class EventStreamReader: @unchecked Sendable {
    struct Event {
        var name: String
        var data: String
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }
    }

    private let fd: Int32
    private let lock = NSLock()
    /// Bytes as received, until the HTTP head is split off; then the chunked body's framing.
    private var wire: [UInt8] = []
    /// The de-chunked body not yet split into events.
    private var body: [UInt8] = []
    private var parsed: [Event] = []
    private(set) var headerText = ""

    init(host: String, port: Int, path: String) throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fd = socketFD
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(socketFD, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        let fd = socketFD
        Thread { [weak self] in
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = recv(fd, &chunk, chunk.count, 0)
                if n <= 0 { return }
                guard let self else { return }
                self.lock.withLock {
                    self.wire += chunk[0..<n]
                    self.parse()
                }
            }
        }.start()
    }

    /// Splits off the HTTP head, undoes chunked transfer coding, and splits complete events off the
    /// body. Works on bytes: as a Swift String "\r\n" is one Character, and a multi-byte character
    /// may straddle two reads.
    private func parse() {
        let crlf: [UInt8] = [13, 10]
        if headerText.isEmpty {
            guard let end = wire.firstRange(of: crlf + crlf) else { return }
            headerText = String(decoding: wire[..<end.lowerBound], as: UTF8.self)
            wire.removeSubrange(..<end.upperBound)
        }
        if headerText.lowercased().contains("transfer-encoding: chunked") {
            while let lineEnd = wire.firstRange(of: crlf) {
                let sizeText = String(decoding: wire[..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return }
                let start = lineEnd.upperBound
                guard wire.count >= start + size + 2 else { return }
                body += wire[start..<start + size]
                wire.removeSubrange(..<(start + size + 2))
            }
        } else {
            body += wire
            wire.removeAll()
        }
        while let end = body.firstRange(of: [10, 10] as [UInt8]) {
            let block = String(decoding: body[..<end.lowerBound], as: UTF8.self)
            body.removeSubrange(..<end.upperBound)
            var name = "message"
            var data: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("event: ") { name = String(line.dropFirst(7)) }
                else if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
            }
            if !data.isEmpty || name != "message" { parsed.append(Event(name: name, data: data.joined(separator: "\n"))) }
        }
    }

    var events: [Event] { lock.withLock { parsed } }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
    }
}
