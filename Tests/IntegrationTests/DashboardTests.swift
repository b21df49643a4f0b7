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

        @Test("the page shows the drift alarm within a second of the daemon raising it; an acknowledge from the page reaches the store")
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
            // No handler of the page failed (they catch and record their errors, so the console alone would not say).
            #expect(try page.evaluate("window.dashboardState.lastError") == nil, "\(page.consoleText)")
            #expect(!page.consoleText.contains("Uncaught") && !page.consoleText.contains("apheresisd dashboard:"), "\(page.consoleText)")
            try daemon.stop()
        }
    }
}
