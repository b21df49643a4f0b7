import Foundation
import HTTPTypes
import Testing

@testable import WebEdge

@Suite("The dashboard is served from the binary, with its security headers")
struct DashboardRouteTests {
    static let csp =
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

    typealias Answer = (status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8])

    func expectSecurityHeaders(_ answer: Answer, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.headers[.contentSecurityPolicy] == Self.csp, sourceLocation: sourceLocation)
        #expect(answer.headers[.xContentTypeOptions] == "nosniff", sourceLocation: sourceLocation)
        #expect(answer.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer", sourceLocation: sourceLocation)
        #expect(answer.headers[.cacheControl] == "no-cache", sourceLocation: sourceLocation)
    }

    @Test func thePageIsTheIndex() throws {
        let answer = DashboardRoute.answer(for: "index.html", ifNoneMatch: nil)
        #expect(answer.status == .ok)
        #expect(answer.headers[.contentType] == "text/html; charset=utf-8")
        expectSecurityHeaders(answer)
        let page = String(decoding: answer.body, as: UTF8.self)
        #expect(page.hasPrefix("<!doctype html>"))
        #expect(page.contains(#"<script src="/dashboard/dashboard.js" defer></script>"#))
        #expect(page.contains(#"<link rel="stylesheet" href="/dashboard/dashboard.css">"#))
    }

    @Test(arguments: [
        ("index.html", "text/html; charset=utf-8"),
        ("dashboard.css", "text/css; charset=utf-8"),
        ("dashboard.js", "text/javascript; charset=utf-8"),
    ])
    func everyFileHasItsContentType(name: String, type: String) throws {
        let answer = DashboardRoute.answer(for: name, ifNoneMatch: nil)
        #expect(answer.status == .ok)
        #expect(answer.headers[.contentType] == type)
        expectSecurityHeaders(answer)
        #expect(answer.body == DashboardRoute.assets[name]?.bytes)
        #expect(answer.body.count > 100)
    }

    @Test(arguments: ["nothing.js", "../Package.swift", "index.htm", "DASHBOARD.JS"])
    func anUnknownFileIsNotFound(name: String) throws {
        let answer = DashboardRoute.answer(for: name, ifNoneMatch: nil)
        #expect(answer.status == .notFound)
        expectSecurityHeaders(answer)
    }

    @Test func anUnchangedFileCostsA304() throws {
        let etag = try #require(DashboardRoute.answer(for: "dashboard.js", ifNoneMatch: nil).headers[.eTag])
        let again = DashboardRoute.answer(for: "dashboard.js", ifNoneMatch: etag)
        #expect(again.status == .notModified && again.body.isEmpty && again.headers[.eTag] == etag)
        #expect(DashboardRoute.answer(for: "dashboard.js", ifNoneMatch: "\"other\"").status == .ok)
        #expect(DashboardRoute.answer(for: "dashboard.js", ifNoneMatch: "\"other\", \(etag)").status == .notModified)
    }

    static func text(_ name: String) throws -> String {
        String(decoding: try #require(DashboardRoute.assets[name]).bytes, as: UTF8.self)
    }

    /// The CSP forbids inline script and style: the page must not need them (a browser would block them).
    @Test func thePageHasNoInlineScriptOrStyle() throws {
        let page = try Self.text("index.html")
        // Counted, not printed: a failure names what is wrong without dumping the page.
        let scripts = page.ranges(of: "<script").count
        let ourScripts = page.ranges(of: #"<script src="/dashboard/"#).count
        #expect(scripts == ourScripts, "every script is a file of ours")
        let found = ["<style", " style=", "javascript:", "http://", "https://"].filter { page.contains($0) }
        #expect(found.isEmpty, "index.html has inline style, script URLs or resources from elsewhere: \(found)")
        let handlers = page.matches(of: /\son[a-z]+=/).count
        #expect(handlers == 0, "no inline event handler")
    }

    /// Text from the API reaches the page through textContent: the script never parses markup.
    @Test func theScriptNeverParsesMarkup() throws {
        let script = try Self.text("dashboard.js")
        let found = ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"].filter {
            script.contains($0)
        }
        #expect(found.isEmpty, "dashboard.js parses markup or code: \(found)")
        let style = try Self.text("dashboard.css")
        let fromElsewhere = ["@import", "url(http"].filter { style.contains($0) }
        #expect(fromElsewhere.isEmpty, "the style sheet loads from elsewhere: \(fromElsewhere)")
    }

    /// What the headless-browser test drives: keep these names.
    @Test func thePageKeepsItsDOMContract() throws {
        let page = try Self.text("index.html")
        let script = try Self.text("dashboard.js")
        let pageParts =
            ["signin-user", "signin-password", "signin-submit", "signed-in-user", "signin-error"].map { #"id="\#($0)""# }
            + [#"<section class="card">"#, #"data-role="link-state""#, #"<body data-beeps="0">"#]
            + ["loss-banner", "loss-text", "loss-silence", "sound-toggle", "alarm-banner", "alarm-history-body"].map { #"id="\#($0)""# }
            + ["ratio", "ac-rate", "citrate", "collected"].map { #"data-chart="\#($0)""# }
            + [#"class="runs-table stack-table""#]
        #expect(pageParts.filter { !page.contains($0) } == [], "index.html lacks these")
        let scriptParts =
            ["data-alarm-id", "data-alarm-code", "data-alarm-level", "data-state", "data-ack", "data-link-state"].map { "'\($0)'" }
            + ["dataset.shownAt", "dataset.beeps", "window.dashboardState", "new EventSource(`${API}/stream`)"]
            + ["dataset.sounding", "dataset.loss", "dataset.lossTones", "'data-limit'", "'data-marker'", "'tick-label tick-x'", "'tick-label tick-y'", "'axis-title'"]
        #expect(scriptParts.filter { !script.contains($0) } == [], "dashboard.js lacks these")
    }
}
