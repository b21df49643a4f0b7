import Foundation
import Glibc
import RecordStore
import Testing

/// The dashboard in Debian's real Chromium, against the real daemon running the real simulator's
/// ratio-drift scenario: the alarm appears on the page as the daemon raises it, and an
/// acknowledgement clicked on the page reaches the store and the audit trail.
extension Integration {
    @Suite("The dashboard in headless Chromium")
    struct DashboardTests {
        /// Where the screenshots are written: `artifacts/` in the checkout (gitignored), for people and CI to collect.
        static let artifacts = Paths.packageRoot.appendingPathComponent("artifacts")

        @Test("the page shows the drift alarm within a second of the daemon raising it; an acknowledge from the page reaches the store; charts, banner, history, sound on link and daemon loss, 800 px")
        func alarmAndAcknowledge() async throws {
            let directory = try Paths.temporaryDirectory("dashboard")
            defer { try? FileManager.default.removeItem(at: directory) }
            try FileManager.default.createDirectory(at: Self.artifacts, withIntermediateDirectories: true)
            let daemon = try DaemonProcess.ratioDrift(in: directory)
            let base = try daemon.apiBase()
            try Integration.ProductWorkflowTests.addUsers(daemon, directory)

            let browser = try Chromium.launch()
            defer { browser.close() }
            let page = try browser.open(base + "/")
            func diagnostics() -> String { "console:\n\(page.consoleText)\ndaemon:\n\(daemon.failureText)" }

            // The separator's card, live.
            try page.waitFor(
                "document.querySelector('section.card[data-device=\"optia-sim\"] [data-role=\"link-state\"]')?.getAttribute('data-link-state') === 'up'",
                timeout: .seconds(30), "the optia-sim card with its link up; \(diagnostics())")
            // The run's telemetry completeness on its card (issue 11: gaps are data).
            try page.waitFor(
                "document.querySelector('section.card[data-device=\"optia-sim\"] [data-field=\"completeness\"]')?.getAttribute('data-complete') === 'true' && /^telemetry 100 %$/.test(document.querySelector('section.card[data-device=\"optia-sim\"] [data-field=\"completeness\"]').textContent)",
                timeout: .seconds(30), "the run's telemetry completeness shown; \(diagnostics())")

            // Sign in on the page (the dashboard's session, not a browser password dialog).
            try page.type("#signin-user", "op1")
            try page.type("#signin-password", Integration.ProductWorkflowTests.operatorPassword)
            try page.click("#signin-submit")
            try page.waitFor(
                "document.querySelector('#signed-in-user')?.textContent.includes('op1')", timeout: .seconds(10),
                "op1 signed in; \(diagnostics())")

            // The alarm: on the page, and when, against the moment the daemon raised it.
            let alarmSelector = "[data-alarm-code=\"AC_RATIO\"][data-alarm-id]"
            try page.waitFor(
                "document.querySelector('\(alarmSelector)') !== null", timeout: .seconds(90), "the AC_RATIO alarm on the page; \(diagnostics())")
            let shownAt = try #require(
                try page.evaluate("Number(document.querySelector('\(alarmSelector)').getAttribute('data-shown-at'))") as? Int)
            let alarmID = try #require(try page.evaluate("Number(document.querySelector('\(alarmSelector)').getAttribute('data-alarm-id'))") as? Int)
            try page.screenshot(to: Self.artifacts.appendingPathComponent("dashboard-alarm.png"))

            let store = try await RecordStore.open(path: daemon.databasePath)
            let alarm = try #require(try await store.alarm(id: Int64(alarmID)), "alarm \(alarmID) in the store")
            #expect(alarm.code == "AC_RATIO")
            // Both clocks are this machine's wall clock: the daemon stamps the alarm when the message
            // arrives, before its commit; the page stamps it when it first draws the alarm.
            let latency = shownAt - Int(alarm.raisedAtUnixMilliseconds)
            #expect(latency >= 0 && latency < 1000, "shown \(latency) ms after the daemon raised it")
            // Across the room: the alarm element is large, coloured, and a sound was played.
            let height = try page.evaluate("document.querySelector('\(alarmSelector)').getBoundingClientRect().height") as? Double ?? 0
            #expect(height >= 40, "alarm element \(height) px high")
            #expect((try page.evaluate("Number(document.body.getAttribute('data-beeps') || 0)") as? Int ?? 0) >= 1, "\(diagnostics())")

            // Acknowledge from the page: a real click on its button.
            try page.click("button[data-ack=\"\(alarmID)\"]")
            try page.waitFor(
                "document.querySelector('[data-alarm-id=\"\(alarmID)\"]')?.getAttribute('data-state') === 'acknowledged'",
                timeout: .seconds(10), "the alarm shown as acknowledged; \(diagnostics())")
            let events = try await store.alarmEvents(alarmRef: Int64(alarmID))
            #expect(events.contains { $0.kind == .acknowledged && $0.actor == "op1" }, "\(events)")
            let audit = try await store.auditEntries(entity: "alarm", entityID: String(alarmID))
            #expect(audit.contains { $0.action == "alarm.acknowledge" && $0.actor == "op1" }, "\(audit)")
            #expect(try await store.verifyAudit().isIntact)
            try await store.close()

            try page.screenshot(to: Self.artifacts.appendingPathComponent("dashboard-acknowledged.png"))
            try chartsAndBanner(page, diagnostics)
            try linkLossAndHistory(page, daemon: daemon, diagnostics)
            try narrowAndScreenshots(page, diagnostics)

            // No handler of the page failed (they catch and record their errors, so the console alone would not say).
            #expect(try page.evaluate("window.dashboardState.lastError") == nil, "\(page.consoleText)")
            #expect(!page.consoleText.contains("Uncaught") && !page.consoleText.contains("apheresisd dashboard:"), "\(page.consoleText)")

            // The daemon gone: the page says so and sounds.
            try daemon.stop()
            try page.waitFor(
                "document.body.dataset.sounding === 'true' && document.body.dataset.loss.split(' ').includes('daemon') && /apheresisd/.test(document.getElementById('loss-text').textContent)",
                timeout: .seconds(15), "the page sounding for the lost daemon; \(page.consoleText)")
        }

        /// Issue 16: time axes with wall-clock ticks, value axes with their units, the limit lines of the
        /// run's presets with their values, a marker where the alarm was raised, and a banner whose value
        /// now follows the drift.
        func chartsAndBanner(_ page: Chromium.Page, _ diagnostics: () -> String) throws {
            let card = "section.card[data-device=\"optia-sim\"]"
            // Every chart: at least two time ticks in one clock format (HH:MM or HH:MM:SS), value ticks, the unit as axis title.
            let axes = try page.evaluate(
                """
                [...document.querySelectorAll('\(card) svg[data-chart]')].map((svg) => ({
                  chart: svg.dataset.chart,
                  x: [...svg.querySelectorAll('.tick-x')].map((t) => t.textContent),
                  y: [...svg.querySelectorAll('.tick-y')].map((t) => t.textContent),
                  title: svg.querySelector('.axis-title')?.textContent,
                }))
                """) as? [[String: Any]] ?? []
            #expect(axes.count == 4, "\(axes)")
            let units = ["ratio": "ratio (x:1)", "ac-rate": "mL/min/L", "citrate": "mg/kg/min", "collected": "mL"]
            for axis in axes {
                let chart = axis["chart"] as? String ?? "?"
                let x = axis["x"] as? [String] ?? []
                #expect(x.count >= 2 && x.allSatisfy { $0.wholeMatch(of: /\d\d:\d\d(:\d\d)?/) != nil }, "\(chart) time ticks \(x)")
                #expect((axis["y"] as? [String] ?? []).count >= 2, "\(chart) value ticks \(axis)")
                #expect(axis["title"] as? String == units[chart], "\(chart) axis title \(axis)")
            }
            // The limit lines are the run's presets as the API gives them, each labelled with its value.
            let limits = try page.evaluate(
                """
                (async () => {
                  const runs = (await (await fetch('/api/v1/runs')).json()).data;
                  const p = runs.filter((r) => r.state === 'open').pop().watch.presets;
                  const lines = (chart) => [...document.querySelectorAll('\(card) svg[data-chart="' + chart + '"] line[data-limit]')]
                    .map((l) => l.dataset.limit + ' ' + Number(l.dataset.value).toFixed(2)).sort();
                  const labels = (chart) => [...document.querySelectorAll('\(card) svg[data-chart="' + chart + '"] text.limit-label')].map((t) => t.textContent);
                  const f = (v) => Number(v).toFixed(2);
                  return {
                    ratio: lines('ratio'), ac: lines('ac-rate'), citrate: lines('citrate'),
                    wantRatio: ['alarm ' + f(p.ratio_set - p.ratio_alarm_deviation), 'alarm ' + f(p.ratio_set + p.ratio_alarm_deviation),
                                'set ' + f(p.ratio_set), 'warn ' + f(p.ratio_set - p.ratio_warn_deviation), 'warn ' + f(p.ratio_set + p.ratio_warn_deviation)].sort(),
                    wantAc: ['alarm ' + f(p.ac_infusion_rate_alarm_ml_per_min_per_l), 'warn ' + f(p.ac_infusion_rate_warn_ml_per_min_per_l)].sort(),
                    wantCitrate: ['alarm ' + f(p.citrate_load_alarm_mg_per_kg_per_min), 'warn ' + f(p.citrate_load_warn_mg_per_kg_per_min)].sort(),
                    ratioLabels: labels('ratio'), acLabels: labels('ac-rate'),
                    wantAlarmLabel: 'alarm ' + (p.ratio_set + p.ratio_alarm_deviation).toFixed(1),
                    wantAcLabel: 'alarm ' + p.ac_infusion_rate_alarm_ml_per_min_per_l.toFixed(2),
                  };
                })()
                """) as? [String: Any] ?? [:]
            #expect((limits["ratio"] as? [String]) == (limits["wantRatio"] as? [String]), "ratio limit lines: \(limits)")
            #expect((limits["ac"] as? [String]) == (limits["wantAc"] as? [String]), "AC infusion limit lines: \(limits)")
            #expect((limits["citrate"] as? [String]) == (limits["wantCitrate"] as? [String]), "citrate limit lines: \(limits)")
            #expect((limits["ratioLabels"] as? [String] ?? []).contains(limits["wantAlarmLabel"] as? String ?? "-"), "\(limits)")
            #expect((limits["acLabels"] as? [String] ?? []).contains(limits["wantAcLabel"] as? String ?? "-"), "\(limits)")
            // The alarm's marker on the ratio chart, at the time it was raised.
            try page.waitFor(
                "document.querySelector('\(card) svg[data-chart=\"ratio\"] line[data-marker=\"raised\"][data-alarm-code=\"AC_RATIO\"]') !== null",
                timeout: .seconds(5), "the AC_RATIO marker on the ratio chart; \(diagnostics())")
            // The banner: name, the value now, the limit, since when, acknowledged; the value follows the drift.
            let banner = "#alarm-banner .banner-item[data-banner-code=\"AC_RATIO\"]"
            let first = try page.evaluate("document.querySelector('\(banner)')?.textContent") as? String ?? ""
            #expect(first.contains("ACD-A ratio") && first.contains("limit") && first.contains("since") && first.lowercased().contains("acknowledged by op1"), "banner: \(first)")
            #expect(first.range(of: #"since \d\d:\d\d:\d\d"#, options: .regularExpression) != nil, "banner: \(first)")
            let now = try page.evaluate("document.querySelector('\(banner) .banner-now')?.textContent") as? String ?? ""
            #expect(now.hasPrefix("now "), "banner value now: \(now)")
            try page.waitFor(
                "(document.querySelector('\(banner) .banner-now')?.textContent || \(Chromium.jsString(now))) !== \(Chromium.jsString(now))",
                timeout: .seconds(10), "the banner's value now to change from \(now); \(diagnostics())")
        }

        /// The separator's link killed (its simulator process): the page sounds until the link is back;
        /// the link alarm that cleared is in the history, with its marker, and still after a reload.
        func linkLossAndHistory(_ page: Chromium.Page, daemon: DaemonProcess, _ diagnostics: () -> String) throws {
            let sim = try #require(childProcesses(of: daemon.process.processIdentifier).first { $0.name.hasPrefix("optia-sim") }, "the simulator child")
            #expect(try page.evaluate("document.body.dataset.sounding") as? String == "false")
            kill(sim.pid, SIGKILL)
            try page.waitFor(
                "document.body.dataset.sounding === 'true' && document.body.dataset.loss.split(' ').includes('link:optia-sim') && /optia-sim/.test(document.getElementById('loss-text').textContent) && Number(document.body.dataset.lossTones) >= 1",
                timeout: .seconds(10), "the page sounding for the lost separator link; \(diagnostics())")
            try page.screenshot(to: Self.artifacts.appendingPathComponent("dashboard-link-lost.png"))
            // The simulator is started again (5 s later): the link is back and the sound stops.
            try page.waitFor(
                "document.body.dataset.sounding === 'false' && document.getElementById('loss-banner').hidden",
                timeout: .seconds(30), "the sound to stop with the link back; \(diagnostics())")
            let history = "#alarm-history-body tr[data-history-code=\"LINK_DOWN\"][data-history-id]"
            try page.waitFor("document.querySelector('\(history)') !== null", timeout: .seconds(20), "LINK_DOWN in the cleared alarms; \(diagnostics())")
            try page.waitFor(
                "document.querySelector('svg[data-chart=\"ratio\"] line[data-marker=\"cleared\"][data-alarm-code=\"LINK_DOWN\"]') !== null",
                timeout: .seconds(5), "the LINK_DOWN cleared marker; \(diagnostics())")
            // A reload keeps the history: it comes from the store.
            try page.navigate(try #require(try page.evaluate("location.href") as? String))
            try page.waitFor("document.querySelector('\(history)') !== null", timeout: .seconds(10), "LINK_DOWN in the history after a reload; \(diagnostics())")
            let row = try page.evaluate("document.querySelector('\(history)').textContent") as? String ?? ""
            #expect(row.range(of: #"\d\d:\d\d:\d\d.*\d\d:\d\d:\d\d"#, options: .regularExpression) != nil, "raised and cleared times: \(row)")
            try page.waitFor(
                "document.querySelector('section.card[data-device=\"optia-sim\"] svg[data-chart=\"ratio\"] .tick-x') !== null && document.querySelector('#alarm-banner .banner-item[data-banner-code=\"AC_RATIO\"]') !== null",
                timeout: .seconds(15), "the charts and the open alarm after the reload; \(diagnostics())")
        }

        /// Nothing cut off at 800 px (no horizontal scroll; the tables reflow), and the screenshots for
        /// the README: in artifacts/ always, and in $APHERESISD_SCREENSHOTS_DIR when set (docs/images).
        func narrowAndScreenshots(_ page: Chromium.Page, _ diagnostics: () -> String) throws {
            let target = ProcessInfo.processInfo.environment["APHERESISD_SCREENSHOTS_DIR"].map { URL(fileURLWithPath: $0) }
            for (width, height) in [(1400, 1000), (800, 1000)] {
                try page.setViewport(width: width, height: height)
                try page.evaluate("window.dispatchEvent(new Event('resize')); new Promise((r) => setTimeout(r, 400))")
                let overflow = try page.evaluate(
                    """
                    [...document.querySelectorAll('body *')].filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > innerWidth + 1 && !e.closest('.table-wrap'); })
                      .slice(0, 5).map((e) => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))
                    """) as? [String] ?? []
                let scroll = try page.evaluate("[document.documentElement.scrollWidth, innerWidth]") as? [Int] ?? []
                #expect(scroll.count == 2 && scroll[0] <= scroll[1], "at \(width) px the page scrolls sideways: \(scroll), beyond the edge: \(overflow)")
                #expect(overflow.isEmpty, "at \(width) px cut off: \(overflow)")
                // The runs table: every cell inside the page (stacked at 800 px).
                let cut = try page.evaluate(
                    "[...document.querySelectorAll('.runs-table td, .alarm-history-table td')].filter((td) => td.getBoundingClientRect().right > innerWidth + 1).length")
                    as? Int ?? -1
                #expect(cut == 0, "at \(width) px \(cut) table cells cut off")
                // Across the room: the main figures at least 40 px (1400) / 30 px (800) high.
                let size = try page.evaluate(
                    "Math.min(...['ratio','ac-rate','citrate','collected','blood'].map((f) => parseFloat(getComputedStyle(document.querySelector('section.card [data-field=\"' + f + '\"]')).fontSize)))")
                    as? Double ?? 0
                #expect(size >= (width >= 1400 ? 40 : 30), "main figures \(size) px at \(width) px")
                try page.evaluate("window.scrollTo(0, 0)")
                let name = "dashboard-\(width).png"
                try page.screenshot(to: Self.artifacts.appendingPathComponent(name), fullPage: true, maxHeight: width >= 1400 ? 2600 : 4200)
                if let target {
                    try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
                    try? FileManager.default.removeItem(at: target.appendingPathComponent(name))
                    try FileManager.default.copyItem(at: Self.artifacts.appendingPathComponent(name), to: target.appendingPathComponent(name))
                }
            }
            try page.setViewport(width: Chromium.viewport.width, height: Chromium.viewport.height)
        }
    }
}
