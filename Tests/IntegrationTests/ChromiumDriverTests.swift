import Foundation
import Glibc
import Testing

/// The headless Chromium driver of Support/Chromium.swift against a page served over real HTTP:
/// typing, a trusted click, waiting on the DOM, a screenshot, and page errors in failure messages.
extension Integration {
    @Suite("Headless Chromium driver")
    struct ChromiumDriverTests {
        static let page = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>driver test</title>
            <link rel="icon" href="data:,">
            <style>
              body { font: 20px sans-serif; margin: 40px; background: #f4f4f4; }
              #out { margin-top: 20px; padding: 12px; width: 400px; min-height: 30px; background: rgb(34, 170, 102); color: #fff; }
              #spacer { height: 3000px; }
            </style></head>
            <body>
              <h1>Chromium driver</h1>
              <input id="name" placeholder="type here">
              <button id="show">Show</button>
              <div id="out"></div>
              <div id="spacer"></div>
              <button id="far">Far below</button>
              <script>
                window.clicks = [];
                document.getElementById('show').addEventListener('click', (event) => {
                  window.clicks.push({trusted: event.isTrusted, x: event.clientX, y: event.clientY});
                  const value = document.getElementById('name').value;
                  document.getElementById('out').textContent = value;
                  console.log('shown:', value);
                });
                document.getElementById('far').addEventListener('click', (event) => {
                  window.farTrusted = event.isTrusted;
                  setTimeout(() => { undefinedDashboardFunction(); }, 0);
                });
              </script>
            </body></html>
            """

        @Test("types, clicks with a trusted event, waits on the DOM, screenshots; page errors reach failure messages")
        func driver() throws {
            let server = try TinyHTTPServer(routes: ["/": Self.page])
            defer { withExtendedLifetime(server) {} }
            let directory = try Paths.temporaryDirectory("chromium-driver")
            defer { try? FileManager.default.removeItem(at: directory) }

            let browser = try Chromium.launch()
            defer { browser.close() }
            let page = try browser.open("http://127.0.0.1:\(server.port)/")
            #expect(try page.evaluate("document.title") as? String == "driver test", "\(page.consoleText)")

            // Typing and a real click: the listener sees a trusted event at the button's centre.
            try page.type("#name", "Grüße, CDP")
            #expect(try page.evaluate("document.getElementById('name').value") as? String == "Grüße, CDP")
            try page.click("#show")
            try page.waitFor("document.getElementById('out').textContent === 'Grüße, CDP'", timeout: .seconds(5), "the typed text in #out")
            #expect(try page.evaluate("window.clicks.length") as? Int == 1)
            #expect(try page.evaluate("window.clicks[0].trusted === true") as? Bool == true, "isTrusted: \(page.consoleText)")
            try eventually("the click's console.log", timeout: .seconds(5)) { page.consoleText.contains("console.log: shown: Grüße, CDP") }
            // Typing again appends; `replacing` replaces.
            try page.type("#name", "!")
            #expect(try page.evaluate("document.getElementById('name').value") as? String == "Grüße, CDP!")
            try page.type("#name", "neu", replacing: true)
            #expect(try page.evaluate("document.getElementById('name').value") as? String == "neu")

            // Promises are awaited; values come back as JSON values.
            #expect(try page.evaluate("new Promise(r => setTimeout(() => r(42), 50))") as? Int == 42)
            #expect(try page.evaluate("undefined") == nil)

            // --mute-audio silences the output but WebAudio runs: its clock advances.
            let audio = try page.evaluate(
                """
                (async () => {
                  const c = new AudioContext(); await c.resume();
                  const o = c.createOscillator(); o.connect(c.destination); o.start();
                  const t0 = c.currentTime; await new Promise(r => setTimeout(r, 300));
                  const result = {state: c.state, advanced: c.currentTime - t0}; await c.close(); return result;
                })()
                """) as? [String: Any]
            #expect(audio?["state"] as? String == "running", "\(audio ?? [:])")
            #expect((audio?["advanced"] as? Double ?? 0) > 0.1, "\(audio ?? [:])")

            // The screenshot: a PNG of the viewport showing the page (the green #out box is where the page has it).
            let png = try page.screenshot(to: directory.appendingPathComponent("page.png"))
            #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            let size = try #require(png.count >= 24 ? (Self.bigEndian(png, 16), Self.bigEndian(png, 20)) : nil)
            let viewport = try page.evaluate("[innerWidth, innerHeight]") as? [Int]
            #expect([size.0, size.1] == viewport ?? [], "PNG \(size) for viewport \(viewport ?? [])")
            #expect(size.0 == Chromium.viewport.width && size.1 == Chromium.viewport.height, "PNG \(size)")
            let pixels = try page.evaluate(
                """
                (async () => {
                  const bitmap = await createImageBitmap(await (await fetch('data:image/png;base64,\(png.base64EncodedString())')).blob());
                  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
                  const g = canvas.getContext('2d'); g.drawImage(bitmap, 0, 0);
                  const data = g.getImageData(0, 0, bitmap.width, bitmap.height).data;
                  const colours = new Set();
                  for (let y = 0; y < bitmap.height; y += 7) for (let x = 0; x < bitmap.width; x += 7) {
                    const i = (y * bitmap.width + x) * 4; colours.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
                  }
                  const r = document.getElementById('out').getBoundingClientRect();
                  const i = (Math.round(r.top + 3) * bitmap.width + Math.round(r.left + 3)) * 4;
                  return {colours: colours.size, out: [data[i], data[i + 1], data[i + 2]]};
                })()
                """) as? [String: Any]
            #expect((pixels?["colours"] as? Int ?? 0) >= 4, "a screenshot of one colour: \(pixels ?? [:])")
            let out = pixels?["out"] as? [Int] ?? []
            #expect(out.count == 3 && zip(out, [34, 170, 102]).allSatisfy { abs($0 - $1) <= 8 }, "#out's corner in the PNG: \(out)")

            // A button 3000 px below the fold: scrolled into view and clicked for real.
            try page.click("#far")
            try page.waitFor("window.farTrusted === true", timeout: .seconds(5), "the trusted click on #far")

            // Page errors: an uncaught exception from a handler is in consoleText and in a failed wait's message…
            try eventually("the uncaught exception reported", timeout: .seconds(5)) { page.consoleText.contains("undefinedDashboardFunction") }
            let timedOut = #expect(throws: Chromium.Failure.self) {
                try page.waitFor("document.getElementById('missing') !== null", timeout: .milliseconds(300), "#missing")
            }
            #expect(timedOut?.kind == .timeout)
            #expect(timedOut?.description.contains("waiting for #missing") == true, "\(timedOut?.description ?? "")")
            #expect(timedOut?.description.contains("ReferenceError: undefinedDashboardFunction is not defined") == true, "\(timedOut?.description ?? "")")
            // …and a script that throws under evaluate throws with the exception's text.
            let thrown = #expect(throws: Chromium.Failure.self) { try page.evaluate("nonexistent()") }
            #expect(thrown?.kind == .javaScript)
            #expect(thrown?.description.contains("ReferenceError: nonexistent is not defined") == true, "\(thrown?.description ?? "")")
            // Clicking what is not there names the selector.
            let missing = #expect(throws: Chromium.Failure.self) { try page.click("#nothing-here") }
            #expect(missing?.description.contains("cannot click #nothing-here: nothing matches it") == true, "\(missing?.description ?? "")")

            // close() leaves no process of the browser and no profile behind.
            let profile = browser.directory.path
            browser.close()
            #expect(browser.exitDescription != nil)
            #expect(kill(browser.pid, 0) == -1 && errno == ESRCH, "the browser process \(browser.pid) is still there")
            #expect(Self.processes(mentioning: profile).isEmpty, "left behind: \(Self.processes(mentioning: profile))")
            #expect(!FileManager.default.fileExists(atPath: profile))
        }

        @Test("a browser that dies fails the pending wait at once; one dropped without close() is killed")
        func browserGone() throws {
            // Dropped without close(): deinit kills and reaps it and removes its profile.
            var dropped: (pid: pid_t, directory: String) = (0, "")
            do {
                let browser = try Chromium.launch()
                dropped = (browser.pid, browser.directory.path)
                #expect(try browser.open("about:blank").evaluate("1 + 1") as? Int == 2)
            }
            #expect(kill(dropped.pid, 0) == -1 && errno == ESRCH, "pid \(dropped.pid) outlived its Chromium")
            #expect(Self.processes(mentioning: dropped.directory).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: dropped.directory))

            // Killed while a test waits on it: the wait fails within moments, naming the signal.
            let browser = try Chromium.launch()
            defer { browser.close() }
            let page = try browser.open("data:text/html,<p>doomed</p>")
            let pid = browser.pid
            let killer = BackgroundThread {
                usleep(300_000)
                kill(pid, SIGKILL)
            }
            defer { killer.join() }
            let started = ContinuousClock.now
            let failure = #expect(throws: Chromium.Failure.self) {
                try page.waitFor("false", timeout: .seconds(30), "something that never comes")
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(failure?.kind == .browserGone, "\(failure?.description ?? "")")
            #expect(failure?.description.contains("gave up waiting for something that never comes") == true, "\(failure?.description ?? "")")
            #expect(failure?.description.contains("signal 9") == true, "\(failure?.description ?? "")")
        }

        static func bigEndian(_ data: Data, _ offset: Int) -> Int {
            data.dropFirst(offset).prefix(4).reduce(0) { $0 << 8 | Int($1) }
        }

        /// Pids whose command line mentions `text` (the browser's helpers carry its --user-data-dir).
        static func processes(mentioning text: String) -> [String] {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return pids.filter { $0.allSatisfy(\.isNumber) }.filter { pid in
                guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                return String(decoding: raw, as: UTF8.self).contains(text)
            }
        }
    }
}

/// Serves fixed pages over HTTP/1.1 on 127.0.0.1 (one thread a connection, `Connection: close`).
private final class TinyHTTPServer: Sendable {
    let port: Int
    private let fd: Int32

    init(routes: [String: String]) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard listener >= 0, bound == 0, listen(listener, 16) == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        fd = listener
        Thread {
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                // A connection of its own thread: a speculative preconnect that sends nothing must not hold up the page.
                Thread { Self.serve(client, routes) }.start()
            }
        }.start()
    }

    private static func serve(_ client: Int32, _ routes: [String: String]) {
        defer { close(client) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: request, as: UTF8.self).contains("\r\n\r\n") {
            let n = recv(client, &chunk, chunk.count, 0)
            if n <= 0 { return }
            request.append(contentsOf: chunk[0..<n])
        }
        let target = String(decoding: request, as: UTF8.self).split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let path = String(target.prefix { $0 != "?" })
        let body = Data((routes[path] ?? "not found").utf8)
        let status = routes[path] == nil ? "404 Not Found" : "200 OK"
        let head = "HTTP/1.1 \(status)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let reply = Data(head.utf8) + body
        _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
