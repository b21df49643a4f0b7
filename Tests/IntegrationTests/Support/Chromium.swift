import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real headless Chromium driven over the Chrome DevTools Protocol, for tests of the dashboard:
/// open a page, wait for DOM conditions, click with real (trusted) mouse events, type, take a PNG
/// screenshot. Everything is synchronous and every wait has a timeout; if the browser dies, pending
/// waits fail at once with the end of its stderr.
///
/// The protocol runs over `--remote-debugging-pipe`: Chromium reads NUL-terminated JSON messages on
/// fd 3 and writes them on fd 4. Foundation's `Process` cannot hand a child extra descriptors, so the
/// browser is started with `posix_spawn`. Both descriptors are the child's end of one AF_UNIX
/// socketpair rather than two pipes: the parent's end then sends with `MSG_NOSIGNAL` (a dead browser
/// is an error, not a SIGPIPE that kills the test runner) and has a send timeout (a hung browser
/// that stops reading cannot block a write forever). Chromium only read()s and write()s them.
///
///     let browser = try Chromium.launch()
///     defer { browser.close() }
///     let page = try browser.open("http://127.0.0.1:8080/")
///     try page.type("#name", "Ada")
///     try page.click("#save")
///     try page.waitFor("document.querySelector('#out').textContent === 'Ada'", timeout: .seconds(5), "the name is shown")
///     try page.screenshot(to: directory.appendingPathComponent("page.png"))
final class Chromium: Sendable {
    struct Failure: Error, CustomStringConvertible {
        enum Kind: Sendable { case javaScript, timeout, browserGone, protocolError, launch }
        var kind: Kind
        var description: String
    }

    /// The browser's process id (also its process group: its helpers are in the same group).
    let pid: pid_t
    /// The temporary directory holding the profile and the stderr log; removed by `close()`.
    let directory: URL
    /// `Browser.getVersion`'s product, e.g. "Chrome/156.0.8078.79".
    let version: String
    private let core: Core

    /// The browser binary: `$CHROMIUM`, else Debian's real binary behind the `/usr/bin/chromium`
    /// shell wrapper (the wrapper adds flags of its own from /etc/chromium.d, extensions among them),
    /// else the wrapper.
    static var executable: String {
        if let explicit = ProcessInfo.processInfo.environment["CHROMIUM"], !explicit.isEmpty { return explicit }
        for candidate in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "/usr/bin/chromium"
    }

    /// The size of every page's viewport, in CSS pixels (screenshots are this size, at scale 1).
    static let viewport = (width: 1400, height: 1000)

    /// Starts a headless browser on `about:blank` with a fresh profile and waits until it answers.
    static func launch(timeout: Duration = .seconds(30)) throws -> Chromium {
        let executable = Self.executable
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw Failure(kind: .launch, description: "Chromium: no browser at \(executable) (apt install chromium, or set $CHROMIUM)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("apheresisd-chromium-\(UUID().uuidString.prefix(8))")
        let profile = directory.appendingPathComponent("profile")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        let stderrPath = directory.appendingPathComponent("chromium.stderr")
        var arguments = [
            executable,
            "--headless=new",
            "--remote-debugging-pipe",
            "--user-data-dir=\(profile.path)",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=1400,1000",
            "--hide-scrollbars",
            // Silences the output only: an AudioContext still runs and its clock advances.
            "--mute-audio",
        ]
        // Chromium refuses to run as root with its sandbox (CI runs as root).
        if geteuid() == 0 { arguments.append("--no-sandbox") }
        arguments.append("about:blank")

        let (pid, socket) = try spawn(arguments, stderrPath: stderrPath)
        let core = Core(pid: pid, socket: socket, stderrPath: stderrPath)
        core.startReader()
        do {
            let reply = try core.call("Browser.getVersion", [:], session: nil, timeout: timeout, what: "Chromium to answer on the pipe")
            return Chromium(pid: pid, directory: directory, version: reply["product"] as? String ?? "?", core: core)
        } catch {
            core.terminate(graceful: false)
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    private init(pid: pid_t, directory: URL, version: String, core: Core) {
        self.pid = pid
        self.directory = directory
        self.version = version
        self.core = core
    }

    /// A test that fails half-way leaves no browser behind.
    deinit {
        if !core.isTerminated {
            core.terminate(graceful: false)
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Browser.close; after 5 s SIGKILL to the browser's process group. Reaps the browser and removes
    /// the profile. Safe to call more than once.
    func close() {
        guard !core.isTerminated else { return }
        core.terminate(graceful: true)
        try? FileManager.default.removeItem(at: directory)
        if FileManager.default.fileExists(atPath: directory.path) {
            // A helper killed a moment ago may still have been writing into the profile.
            usleep(200_000)
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// How the browser ended ("exit 0", "signal 9"), or nil while it runs.
    var exitDescription: String? { core.exitDescription }

    /// Every console line, uncaught exception and log entry of every page (for failure messages).
    var consoleText: String { core.consoleLines(session: nil).joined(separator: "\n") }

    /// The end of the browser's stderr, without the D-Bus complaints of a machine without a bus.
    var stderrTail: String { core.stderrTail() }

    /// Opens `url` in a new tab and waits for its load event.
    func open(_ url: String, timeout: Duration = .seconds(30)) throws -> Page {
        let target = try core.call("Target.createTarget", ["url": "about:blank"], session: nil, timeout: .seconds(10), what: "a new tab")
        guard let targetID = target["targetId"] as? String else {
            throw Failure(kind: .protocolError, description: "Chromium: Target.createTarget gave no targetId: \(target)")
        }
        let attached = try core.call(
            "Target.attachToTarget", ["targetId": targetID, "flatten": true], session: nil, timeout: .seconds(10),
            what: "attaching to the new tab")
        guard let session = attached["sessionId"] as? String else {
            throw Failure(kind: .protocolError, description: "Chromium: Target.attachToTarget gave no sessionId: \(attached)")
        }
        for domain in ["Page", "Runtime", "Log"] {
            _ = try core.call("\(domain).enable", [:], session: session, timeout: .seconds(10), what: "\(domain).enable")
        }
        // New headless takes --window-size for the window, browser chrome included (the page got
        // 1400x913): the page's own size is set here, so that layouts and screenshots are the same everywhere.
        _ = try core.call(
            "Emulation.setDeviceMetricsOverride",
            ["width": Self.viewport.width, "height": Self.viewport.height, "deviceScaleFactor": 1, "mobile": false],
            session: session, timeout: .seconds(10), what: "setting the viewport")
        let page = Page(browser: self, core: core, targetID: targetID, session: session)
        try page.navigate(url, timeout: timeout)
        return page
    }

    /// One tab, attached with its own (flattened) session.
    final class Page: Sendable {
        /// Keeps the browser alive as long as one of its pages is used.
        let browser: Chromium
        let targetID: String
        let session: String
        private let core: Core

        fileprivate init(browser: Chromium, core: Core, targetID: String, session: String) {
            self.browser = browser
            self.core = core
            self.targetID = targetID
            self.session = session
        }

        /// This page's console lines, uncaught exceptions and log entries, one a line.
        var consoleText: String { core.consoleLines(session: session).joined(separator: "\n") }

        /// Navigates and waits for the load event (and `document.readyState === 'complete'`).
        func navigate(_ url: String, timeout: Duration = .seconds(30)) throws {
            let marker = core.eventMarker()
            let result = try core.call("Page.navigate", ["url": url], session: session, timeout: timeout, what: "navigating to \(url)")
            if let error = result["errorText"] as? String, !error.isEmpty {
                throw core.failure(.protocolError, "opening \(url) failed: \(error)", session: session)
            }
            try core.waitForEvent("Page.loadEventFired", session: session, after: marker, timeout: timeout, what: "the load event of \(url)")
            try waitFor("document.readyState === 'complete'", timeout: timeout, "\(url) to finish loading")
        }

        /// Runtime.evaluate in the page's main world, by value, awaiting a promise. Returns nil for
        /// undefined and null; numbers, strings, booleans, arrays and dictionaries as JSONSerialization
        /// gives them. Throws (kind `.javaScript`) with the exception's text if the script threw.
        @discardableResult
        func evaluate(_ js: String, timeout: Duration = .seconds(10)) throws -> Any? {
            let result = try core.call(
                "Runtime.evaluate", ["expression": js, "returnByValue": true, "awaitPromise": true], session: session,
                timeout: timeout, what: "evaluating `\(Chromium.abbreviate(js))`")
            if let details = result["exceptionDetails"] as? [String: Any] {
                throw core.failure(.javaScript, "`\(Chromium.abbreviate(js))` threw: \(Chromium.exceptionText(details))", session: session)
            }
            guard let remote = result["result"] as? [String: Any] else { return nil }
            if let value = remote["value"] { return value is NSNull ? nil : value }
            if let unserializable = remote["unserializableValue"] as? String { return unserializable }  // NaN, Infinity, 1n
            return nil
        }

        /// Polls the boolean expression `js` (a promise is awaited) every 50 ms until it is true.
        /// Exceptions (and protocol errors, as while the page navigates) count as false; the last
        /// one is named if the wait times out. A browser that dies ends the wait at once.
        func waitFor(_ js: String, timeout: Duration, _ what: String) throws {
            let deadline = ContinuousClock.now + timeout
            let probe = "(async () => !!(await (\n\(js)\n)))()"
            var lastError: String?
            while true {
                let remaining = deadline - ContinuousClock.now
                do {
                    if try evaluate(probe, timeout: max(min(remaining, .seconds(5)), .milliseconds(500))) as? Bool == true { return }
                    lastError = nil
                } catch let failure as Failure where failure.kind != .browserGone {
                    // A script error, or a poll that raced a navigation ("Execution context was destroyed").
                    lastError = failure.description.components(separatedBy: "\n").first
                } catch let failure as Failure {
                    let detail = failure.description.hasPrefix("Chromium: ") ? String(failure.description.dropFirst(10)) : failure.description
                    throw Failure(kind: failure.kind, description: "Chromium: gave up waiting for \(what): \(detail)")
                }
                if ContinuousClock.now >= deadline {
                    let last = lastError.map { "; the last poll failed: \($0)" } ?? ""
                    throw core.failure(
                        .timeout, "timed out after \(timeout) waiting for \(what) (`\(Chromium.abbreviate(js))` stayed false\(last))",
                        session: session)
                }
                usleep(50_000)
            }
        }

        /// A real click: scrolls the element into view, then a left mouse button press and release at
        /// the centre of its box through Input.dispatchMouseEvent (listeners see `isTrusted`). Fails if
        /// nothing matches, the element has no size, is disabled, or something else covers its centre.
        func click(_ selector: String) throws {
            let locate = """
                (() => {
                  const e = document.querySelector(\(Chromium.jsString(selector)));
                  if (!e) return {error: 'nothing matches it'};
                  e.scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'});
                  const r = e.getBoundingClientRect();
                  if (r.width === 0 || r.height === 0) return {error: 'it has no size (hidden?)'};
                  if (e.disabled === true) return {error: 'it is disabled'};
                  const x = r.left + r.width / 2, y = r.top + r.height / 2;
                  const hit = document.elementFromPoint(x, y);
                  if (!hit || !(hit === e || e.contains(hit))) {
                    const name = hit ? hit.tagName.toLowerCase() + (hit.id ? '#' + hit.id : '')
                      + (typeof hit.className === 'string' && hit.className.trim() ? '.' + hit.className.trim().split(/\\s+/).join('.') : '')
                      : 'nothing (outside the viewport)';
                    return {error: 'its centre (' + x + ', ' + y + ') is covered by ' + name};
                  }
                  return {x, y};
                })()
                """
            let box = try evaluate(locate) as? [String: Any] ?? [:]
            if let error = box["error"] as? String {
                throw core.failure(.javaScript, "cannot click \(selector): \(error)", session: session)
            }
            guard let x = (box["x"] as? NSNumber)?.doubleValue, let y = (box["y"] as? NSNumber)?.doubleValue else {
                throw core.failure(.protocolError, "cannot click \(selector): no position in \(box)", session: session)
            }
            let events: [[String: Any]] = [
                ["type": "mouseMoved", "x": x, "y": y, "button": "none", "buttons": 0],
                ["type": "mousePressed", "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1],
                ["type": "mouseReleased", "x": x, "y": y, "button": "left", "buttons": 0, "clickCount": 1],
            ]
            for event in events {
                _ = try core.call(
                    "Input.dispatchMouseEvent", event, session: session, timeout: .seconds(10),
                    what: "\(event["type"] ?? "") on \(selector)")
            }
        }

        /// Clicks the field (which must take the focus), puts the caret at the end (or selects all
        /// of it with `replacing`), then Input.insertText: the page sees beforeinput and input events
        /// as for an IME commit, not keydown/keyup.
        func type(_ selector: String, _ text: String, replacing: Bool = false) throws {
            try click(selector)
            let focus = """
                (() => {
                  const e = document.querySelector(\(Chromium.jsString(selector)));
                  const a = document.activeElement;
                  if (!e || !(a === e || e.contains(a))) return 'the focus is on ' + (a ? a.tagName.toLowerCase() + (a.id ? '#' + a.id : '') : 'nothing');
                  if (\(replacing)) { if (typeof a.select === 'function') a.select(); else document.execCommand('selectAll'); }
                  else if (typeof a.setSelectionRange === 'function') { try { a.setSelectionRange(a.value.length, a.value.length); } catch (_) {} }
                  return null;
                })()
                """
            if let problem = try evaluate(focus) as? String {
                throw core.failure(.javaScript, "cannot type into \(selector): clicking it did not focus it, \(problem)", session: session)
            }
            _ = try core.call("Input.insertText", ["text": text], session: session, timeout: .seconds(10), what: "typing into \(selector)")
        }

        /// Sets the page's viewport (CSS pixels, scale 1), as a window of that size would have it.
        func setViewport(width: Int, height: Int) throws {
            _ = try core.call(
                "Emulation.setDeviceMetricsOverride", ["width": width, "height": height, "deviceScaleFactor": 1, "mobile": false],
                session: session, timeout: .seconds(10), what: "setting the viewport to \(width)x\(height)")
        }

        /// A PNG of the viewport (or, with `fullPage`, of the whole page at the viewport's width,
        /// up to `maxHeight` CSS pixels), written to `url`; returns the bytes.
        @discardableResult
        func screenshot(to url: URL, fullPage: Bool = false, maxHeight: Int = 4000) throws -> Data {
            var params: [String: Any] = ["format": "png"]
            if fullPage {
                let size = try evaluate("[document.documentElement.clientWidth, document.documentElement.scrollHeight]") as? [Int] ?? []
                if size.count == 2 {
                    params["captureBeyondViewport"] = true
                    params["clip"] = ["x": 0, "y": 0, "width": size[0], "height": min(size[1], maxHeight), "scale": 1]
                }
            }
            let result = try core.call(
                "Page.captureScreenshot", params, session: session, timeout: .seconds(30), what: "a screenshot")
            guard let base64 = result["data"] as? String, let png = Data(base64Encoded: base64) else {
                throw core.failure(.protocolError, "Page.captureScreenshot gave no base64 data", session: session)
            }
            try png.write(to: url)
            return png
        }

        /// Closes the tab (the browser stays).
        func close() throws {
            _ = try core.call("Target.closeTarget", ["targetId": targetID], session: nil, timeout: .seconds(10), what: "closing the tab")
        }
    }

    // MARK: - Helpers

    /// A JavaScript string literal for `text`.
    static func jsString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }

    static func abbreviate(_ js: String) -> String {
        let flat = js.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        return flat.count > 160 ? String(flat.prefix(160)) + "…" : flat
    }

    /// The text of a Runtime.ExceptionDetails: the exception's description (message and stack) or the bare text.
    static func exceptionText(_ details: [String: Any]) -> String {
        let exception = details["exception"] as? [String: Any]
        var text = (exception?["description"] as? String) ?? (exception?["value"].map { "\($0)" })
            ?? (details["text"] as? String) ?? "\(details)"
        if let url = details["url"] as? String, !url.isEmpty, !text.contains(url), let line = details["lineNumber"] as? Int {
            text += " (\(url):\(line + 1))"
        }
        return text
    }

    /// Starts the browser: stdin /dev/null, stdout and stderr to `stderrPath`, the child's end of a
    /// socketpair on fds 3 and 4, in a process group of its own (so its helpers can be killed with it).
    private static func spawn(_ arguments: [String], stderrPath: URL) throws -> (pid_t, Int32) {
        func failure(_ what: String, _ code: Int32 = errno) -> Failure {
            Failure(kind: .launch, description: "Chromium: \(what) failed: \(String(cString: strerror(code)))")
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw failure("socketpair")
        }
        let logFD = Glibc.open(stderrPath.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard logFD >= 0 else {
            let error = failure("opening \(stderrPath.path)")
            Glibc.close(pair[0])
            Glibc.close(pair[1])
            throw error
        }
        // Move the child's descriptors above 4, so that no dup2 below overwrites another's source
        // and none is its own target (dup2 onto itself would keep FD_CLOEXEC).
        let childSocket = fcntl(pair[1], F_DUPFD_CLOEXEC, 10)
        let childLog = fcntl(logFD, F_DUPFD_CLOEXEC, 10)
        Glibc.close(pair[1])
        Glibc.close(logFD)
        defer {
            Glibc.close(childSocket)
            Glibc.close(childLog)
        }
        guard childSocket >= 0, childLog >= 0 else {
            Glibc.close(pair[0])
            throw failure("fcntl(F_DUPFD_CLOEXEC)")
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, childLog, 1)
        posix_spawn_file_actions_adddup2(&actions, childLog, 2)
        posix_spawn_file_actions_adddup2(&actions, childSocket, 3)  // Chromium reads commands here
        posix_spawn_file_actions_adddup2(&actions, childSocket, 4)  // and writes replies and events here
        posix_spawn_file_actions_addclose(&actions, childSocket)
        posix_spawn_file_actions_addclose(&actions, childLog)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, &envp)
        guard status == 0 else {
            Glibc.close(pair[0])
            throw failure("posix_spawn \(arguments[0])", status)
        }
        // Sends must not block forever on a browser that stopped reading.
        var sendTimeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(pair[0], SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        return (pid, pair[0])
    }
}

extension Chromium {
    /// The connection and the process: written by the reader thread, read by the test's thread.
    /// `@unchecked Sendable`: every mutable field is guarded by `condition` (the socket's writes by
    /// `writeLock`); the pid and the socket descriptor are immutable.
    fileprivate final class Core: @unchecked Sendable {
        struct Event {
            var method: String
            var session: String?
            var params: [String: Any]
        }

        let pid: pid_t
        let socket: Int32
        let stderrPath: URL

        private let condition = NSCondition()
        private let writeLock = NSLock()
        private var nextID = 1
        private var replies: [Int: [String: Any]] = [:]
        private var events: [Event] = []
        private var console: [(session: String?, line: String)] = []
        private var goneSessions: [String: String] = [:]
        private var readerEnded = false
        private var readerNote: String?
        private var exitStatus: Int32?
        private var terminated = false
        /// Guarded by `writeLock`: once the socket is closed its number may belong to another file.
        private var socketClosed = false

        init(pid: pid_t, socket: Int32, stderrPath: URL) {
            self.pid = pid
            self.socket = socket
            self.stderrPath = stderrPath
        }

        // MARK: Reading

        /// A Foundation thread of its own (never a thread of the concurrency pool) reads fd 4's
        /// messages until end of file. It holds the core, not the `Chromium`, so that the latter's
        /// deinit can run and kill the browser.
        func startReader() {
            let thread = Thread { [self] in readLoop() }
            thread.name = "chromium-cdp-reader"
            thread.start()
        }

        private func readLoop() {
            var buffer: [UInt8] = []
            var scanned = 0
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            var note: String?
            while true {
                let n = read(socket, &chunk, chunk.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    note = "reading the pipe failed: \(String(cString: strerror(errno)))"
                    break
                }
                if n == 0 { break }
                buffer.append(contentsOf: chunk[0..<n])
                var start = 0
                while let nul = buffer[(start + scanned)...].firstIndex(of: 0) {
                    deliver(Data(buffer[start..<nul]))
                    start = nul + 1
                    scanned = 0
                }
                buffer.removeFirst(start)
                scanned = buffer.count
            }
            condition.withLock {
                readerEnded = true
                readerNote = note
                condition.broadcast()
            }
        }

        private func deliver(_ data: Data) {
            guard let message = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                condition.withLock { console.append((nil, "[cdp] unparsable message: \(String(decoding: data.prefix(200), as: UTF8.self))")) }
                return
            }
            condition.withLock {
                if let id = (message["id"] as? NSNumber)?.intValue {
                    replies[id] = message
                } else if let method = message["method"] as? String {
                    let event = Event(method: method, session: message["sessionId"] as? String, params: message["params"] as? [String: Any] ?? [:])
                    events.append(event)
                    if let line = Core.consoleLine(event) { console.append((event.session, line)) }
                    if method == "Target.detachedFromTarget", let session = event.params["sessionId"] as? String {
                        goneSessions[session] = "detached from its tab"
                    } else if method == "Inspector.targetCrashed", let session = event.session {
                        goneSessions[session] = "the renderer crashed"
                    } else if method == "Inspector.detached", let session = event.session {
                        goneSessions[session] = "detached: \(event.params["reason"] ?? "")"
                    }
                }
                condition.broadcast()
            }
        }

        static func consoleLine(_ event: Event) -> String? {
            let p = event.params
            switch event.method {
            case "Runtime.consoleAPICalled":
                let args = (p["args"] as? [[String: Any]] ?? []).map { arg -> String in
                    if let value = arg["value"], !(value is NSNull) { return "\(value)" }
                    return (arg["unserializableValue"] as? String) ?? (arg["description"] as? String) ?? (arg["type"] as? String ?? "?")
                }
                return "console.\(p["type"] as? String ?? "log"): \(args.joined(separator: " "))"
            case "Runtime.exceptionThrown":
                return "uncaught exception: \(Chromium.exceptionText(p["exceptionDetails"] as? [String: Any] ?? [:]))"
            case "Log.entryAdded":
                let entry = p["entry"] as? [String: Any] ?? [:]
                let url = (entry["url"] as? String).map { " (\($0))" } ?? ""
                return "log \(entry["level"] as? String ?? "?") [\(entry["source"] as? String ?? "?")]: \(entry["text"] as? String ?? "")\(url)"
            case "Inspector.targetCrashed":
                return "the page's renderer crashed"
            default:
                return nil
            }
        }

        // MARK: Commands and waits

        /// Sends a command; returns its id.
        func send(_ method: String, _ params: [String: Any], session: String?, what: String) throws -> Int {
            let id = condition.withLock {
                defer { nextID += 1 }
                return nextID
            }
            var message: [String: Any] = ["id": id, "method": method, "params": params]
            if let session { message["sessionId"] = session }
            var bytes = [UInt8](try JSONSerialization.data(withJSONObject: message))
            bytes.append(0)
            try writeLock.withLock {
                if socketClosed { throw failure(.browserGone, "cannot send \(method) for \(what): the browser was closed", session: session) }
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else {
                        let reason = errno == EAGAIN ? "Chromium stopped reading for 10 s" : String(cString: strerror(errno))
                        throw failure(.browserGone, "cannot send \(method) for \(what): \(reason)", session: session)
                    }
                    offset += n
                }
            }
            return id
        }

        /// Sends a command and waits for its result; a protocol error is thrown.
        func call(_ method: String, _ params: [String: Any], session: String?, timeout: Duration, what: String) throws -> [String: Any] {
            let id = try send(method, params, session: session, what: what)
            let reply = try wait(for: "\(what) (\(method))", session: session, timeout: timeout) { replies.removeValue(forKey: id) }
            if let error = reply["error"] as? [String: Any] {
                let detail = (error["data"] as? String).map { " (\($0))" } ?? ""
                throw failure(.protocolError, "\(method) failed while \(what): \(error["message"] as? String ?? "\(error)")\(detail)", session: session)
            }
            return reply["result"] as? [String: Any] ?? [:]
        }

        func eventMarker() -> Int { condition.withLock { events.count } }

        @discardableResult
        func waitForEvent(_ method: String, session: String?, after marker: Int, timeout: Duration, what: String) throws -> [String: Any] {
            try wait(for: what, session: session, timeout: timeout) {
                events[min(marker, events.count)...].first { $0.method == method && $0.session == session }?.params
            }
        }

        /// Waits (in slices of at most 100 ms, so that a browser that died without closing the socket
        /// is noticed) until `check`, run with the lock held, gives a value.
        private func wait<T>(for what: String, session: String?, timeout: Duration, _ check: () -> T?) throws -> T {
            let deadline = ContinuousClock.now + timeout
            condition.lock()
            defer { condition.unlock() }
            while true {
                if let value = check() { return value }
                if let session, let reason = goneSessions[session] {
                    throw failureLocked(.browserGone, "the page went away (\(reason)) while waiting for \(what)", session: session)
                }
                if readerEnded || reapLocked() != nil {
                    throw failureLocked(.browserGone, "Chromium exited while waiting for \(what)", session: session)
                }
                let now = ContinuousClock.now
                if now >= deadline {
                    throw failureLocked(.timeout, "timed out after \(timeout) waiting for \(what)", session: session)
                }
                _ = condition.wait(until: Date(timeIntervalSinceNow: seconds(min(deadline - now, .milliseconds(100)))))
            }
        }

        // MARK: Diagnostics

        func consoleLines(session: String?) -> [String] {
            condition.withLock { console.filter { session == nil || $0.session == session || $0.session == nil }.map(\.line) }
        }

        func stderrTail(_ count: Int = 3000) -> String {
            if let useful = usefulStderr(count) { return useful }
            return ((try? Data(contentsOf: stderrPath))?.isEmpty ?? true) ? "(empty)" : "(only D-Bus complaints)"
        }

        /// The end of stderr without the D-Bus lines of a machine without a bus; nil if nothing is left.
        private func usefulStderr(_ count: Int) -> String? {
            let text = (try? String(contentsOf: stderrPath, encoding: .utf8)) ?? ""
            let useful = text.split(separator: "\n").filter { !$0.contains("dbus/") }.joined(separator: "\n")
            return useful.isEmpty ? nil : String(useful.suffix(count))
        }

        var exitDescription: String? { condition.withLock { exitStatus.map(Core.describe) } }

        func failure(_ kind: Failure.Kind, _ message: String, session: String?) -> Failure {
            condition.withLock { failureLocked(kind, message, session: session) }
        }

        /// The message, then what the page said, then how the browser is (with its stderr if it died).
        private func failureLocked(_ kind: Failure.Kind, _ message: String, session: String?) -> Failure {
            if kind == .browserGone {
                // The socket closes a moment before the browser can be reaped: wait a little for its status.
                let deadline = Date(timeIntervalSinceNow: 1)
                while reapLocked() == nil && Date() < deadline { _ = condition.wait(until: Date(timeIntervalSinceNow: 0.02)) }
            }
            var text = "Chromium: \(message)"
            let lines = console.filter { session == nil || $0.session == session || $0.session == nil }.map(\.line)
            if !lines.isEmpty {
                text += "\n--- console ---\n" + lines.suffix(60).joined(separator: "\n")
            } else if session != nil {
                text += "\n(no console output)"
            }
            if let exitStatus {
                text += "\n--- Chromium ended (\(Core.describe(exitStatus))); stderr ---\n" + stderrTail()
            } else if readerEnded {
                text += "\n--- Chromium closed its pipe\(readerNote.map { " (\($0))" } ?? ""); stderr ---\n" + stderrTail()
            } else if kind == .timeout || kind == .browserGone, let tail = usefulStderr(1500) {
                text += "\n--- Chromium stderr ---\n" + tail
            }
            return Failure(kind: kind, description: text)
        }

        static func describe(_ status: Int32) -> String {
            status & 0x7f == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
        }

        // MARK: The process

        /// Reaps the browser if it has exited (never blocks); then kills whatever of its process
        /// group is left. Call with the lock held.
        @discardableResult
        private func reapLocked() -> Int32? {
            if let exitStatus { return exitStatus }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                exitStatus = status
            } else if result < 0 && errno == ECHILD {
                exitStatus = -1  // reaped elsewhere (should not happen)
            } else {
                return nil
            }
            // Helpers left behind by the browser: the group cannot be taken by a new process while
            // any of them lives, and after they are gone kill() finds nobody (ESRCH).
            kill(-pid, SIGKILL)
            return exitStatus
        }

        var isTerminated: Bool { condition.withLock { terminated } }

        /// Browser.close and up to 5 s for the browser to exit (if `graceful`), then SIGKILL to its
        /// process group; reaps it, ends the reader and closes the socket.
        func terminate(graceful: Bool) {
            let alreadyDone = condition.withLock {
                defer { terminated = true }
                return terminated
            }
            guard !alreadyDone else { return }
            if graceful, condition.withLock({ reapLocked() == nil && !readerEnded }) {
                _ = try? send("Browser.close", [:], session: nil, what: "closing the browser")
                _ = pollExit(within: .seconds(5))
            }
            if !pollExit(within: .zero) {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                if !pollExit(within: .seconds(10)) {
                    condition.withLock { console.append((nil, "[driver] Chromium (pid \(pid)) did not die of SIGKILL within 10 s")) }
                }
            }
            // The reader ends when every copy of the socket's other end is closed; shutdown makes sure.
            shutdown(socket, Int32(SHUT_RDWR))
            let readerDone = condition.withLock {
                let deadline = Date(timeIntervalSinceNow: 2)
                while !readerEnded && condition.wait(until: deadline) {}
                return readerEnded
            }
            // Never close a descriptor a thread may still be reading: its number could be reused.
            if readerDone {
                writeLock.withLock {
                    socketClosed = true
                    Glibc.close(socket)
                }
            }
        }

        /// True once the browser is reaped (within `limit`).
        private func pollExit(within limit: Duration) -> Bool {
            let deadline = ContinuousClock.now + limit
            while true {
                if condition.withLock({ reapLocked() != nil }) { return true }
                if ContinuousClock.now >= deadline { return false }
                usleep(10_000)
            }
        }
    }
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
