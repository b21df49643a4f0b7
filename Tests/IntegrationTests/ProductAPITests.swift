import Foundation
import RecordStore
import Testing

/// `/api/v1` product endpoints against the real daemon: each endpoint, each refusal, over real HTTP.
extension Integration.ProductWorkflowTests {
    @Test("the product API: every endpoint, writes refused without the right user, version in every reply")
    func productAPI() async throws {
        let directory = try Paths.temporaryDirectory("products-api")
        defer { try? FileManager.default.removeItem(at: directory) }
        let printer = try PrinterListener()
        let daemon = try await Self.daemonWithClosedRun(directory, printerPort: printer.port)
        try Self.addUsers(daemon, directory)
        let base = try daemon.apiBase()
        let lab = ("lab1", Self.labPassword)
        let op = ("op1", Self.operatorPassword)
        func expectVersion(_ r: HTTPReply, sourceLocation: SourceLocation = #_sourceLocation) {
            let version = (r.json["api_version"] as? Int) ?? r.header("X-Api-Version").flatMap(Int.init)
            #expect(version == 1, "\(r)", sourceLocation: sourceLocation)
        }
        func refused(_ r: HTTPReply, _ status: Int, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(r.status == status, "\(r)", sourceLocation: sourceLocation)
            #expect(r.errorMessage.contains(text), "\(r)", sourceLocation: sourceLocation)
            expectVersion(r, sourceLocation: sourceLocation)
        }

        var r = try await HTTP.request("GET", base + "/api")
        #expect(r.status == 200 && r.text.contains("/api/v1"), "\(r)")
        expectVersion(r)
        r = try await HTTP.request("GET", base + "/api/v1/products")
        #expect(r.status == 200 && (r.data as? [Any])?.isEmpty == true, "\(r)")
        expectVersion(r)

        // Create: no user, wrong role, wrong password, then the lab user.
        r = try await HTTP.request("POST", base + "/api/v1/runs/1/product")
        refused(r, 401, "send HTTP Basic credentials")
        #expect(r.header("WWW-Authenticate")?.hasPrefix("Basic") == true)
        refused(try await HTTP.request("POST", base + "/api/v1/runs/1/product", user: op), 403, "creating a product needs the role lab or supervisor")
        refused(try await HTTP.request("POST", base + "/api/v1/runs/1/product", user: ("lab1", "nope")), 401, "the user name or the password is wrong")
        refused(try await HTTP.request("POST", base + "/api/v1/runs/1/product", user: ("ghost", "nope")), 401, "the user name or the password is wrong")
        refused(try await HTTP.request("POST", base + "/api/v1/runs/99/product", user: lab), 404, "no run with id 99")
        r = try await HTTP.request("POST", base + "/api/v1/runs/1/product", user: lab)
        #expect(r.status == 201, "\(r)")
        let created = try #require(r.data as? [String: Any])
        let din = try #require((created["din"] as? [String: Any])?["thirteen_characters"] as? String)
        #expect(din.hasPrefix("G1234") && created["status"] as? String == "awaiting lab values")
        refused(try await HTTP.request("POST", base + "/api/v1/runs/1/product", user: lab), 409, "already has product")

        r = try await HTTP.request("GET", base + "/api/v1/products/1")
        #expect(r.status == 200 && (r.data as? [String: Any])?["id"] as? Int == 1, "\(r)")
        r = try await HTTP.request("GET", base + "/api/v1/products/" + din)
        #expect(r.status == 200 && (r.data as? [String: Any])?["id"] as? Int == 1, "\(r)")
        refused(try await HTTP.request("GET", base + "/api/v1/products/42"), 404, "no product 42")

        // Lab values.
        let labBody: [String: Any] = ["wbc_giga_per_litre": 1.3, "cd3_percent": 44.8, "viability_percent": 96, "qc_millilitres": 5]
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: labBody), 401, "credentials")
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: labBody, user: op), 403, "entering lab values")
        refused(
            try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: ["wbc_giga_per_litre": 1.3], user: lab), 422,
            "missing lab values: cd3_percent or cd3_per_microlitre, viability_percent, qc_millilitres")
        refused(
            try await HTTP.request("POST", base + "/api/v1/products/1/lab", rawBody: "{\"wbc_giga_per_litre\": \"lots\"}", user: lab),
            422, "wbc_giga_per_litre")
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/lab", rawBody: "{not json", user: lab), 422, "not valid JSON")
        var tooMuch = labBody
        tooMuch["reduced_millilitres"] = 500
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: tooMuch, user: lab), 422, "cannot reduce to 500 mL")
        refused(try await HTTP.request("GET", base + "/api/v1/products/1/units/A0/label.svg"), 409, "is not released")
        refused(
            try await HTTP.request("POST", base + "/api/v1/products/1/release", json: ["meaning": "released", "release_summary_sha256": "00"], user: lab),
            409, "has no lab values yet")
        r = try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: labBody, user: lab)
        #expect(r.status == 201, "\(r)")
        let units = try #require((r.data as? [String: Any])?["units"] as? [[String: Any]])
        #expect(units.map { $0["division_code"] as? String } == ["A0", "B0", "C0", "D0"])
        #expect(units.allSatisfy { ($0["volume_millilitres"] as? Double).map { abs($0 - 35) < 1e-9 } == true })
        #expect((r.data as? [String: Any])?["status"] as? String == "awaiting release")
        let shownFirst = try #require((r.data as? [String: Any])?["release_summary_sha256"] as? String)

        // Release: an electronic signature, meaning "released" only, on exactly what the signer saw.
        let sign: [String: Any] = ["meaning": "released", "release_summary_sha256": shownFirst]
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/release", json: sign), 401, "credentials")
        refused(
            try await HTTP.request("POST", base + "/api/v1/products/1/release", json: sign, user: ("lab1", "x")),
            401, "the user name or the password is wrong")
        refused(
            try await HTTP.request(
                "POST", base + "/api/v1/products/1/release", json: ["meaning": "approved", "release_summary_sha256": shownFirst], user: lab),
            422, "released")
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/release", json: sign, user: op), 403, "releasing")
        // A signed-in session of the lab user is not a signature: the password must come with the release.
        r = try await HTTP.request("POST", base + "/api/v1/session", json: ["user": "lab1", "password": Self.labPassword])
        let session = String(try #require(r.header("Set-Cookie"), "\(r)").prefix { $0 != ";" })
        refused(
            try await HTTP.request(
                "POST", base + "/api/v1/products/1/release", json: sign,
                headers: ["Cookie": session, "X-Requested-With": "apheresisd-dashboard"]),
            403, "electronic signature")
        // A correction lands while the signer reads: the signature on the old text is refused.
        var corrected = labBody
        corrected["viability_percent"] = 95
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: corrected, user: lab), 422, "give a reason")
        corrected["reason"] = "viability re-read"
        r = try await HTTP.request("POST", base + "/api/v1/products/1/lab", json: corrected, user: lab)
        #expect(r.status == 201, "\(r)")
        let shownNow = try #require((r.data as? [String: Any])?["release_summary_sha256"] as? String)
        #expect(shownNow != shownFirst)
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/release", json: sign, user: lab), 409, "changed after it was shown")
        r = try await HTTP.request(
            "POST", base + "/api/v1/products/1/release", json: ["meaning": "released", "release_summary_sha256": shownNow], user: lab)
        #expect(r.status == 201, "\(r)")
        let release = try #require((r.data as? [String: Any])?["release"] as? [String: Any])
        #expect(release["user_name"] as? String == "lab1" && release["meaning"] as? String == "released")
        #expect(release["signed_content_sha256"] as? String == shownNow)

        // Previews, read-only.
        r = try await HTTP.request("GET", base + "/api/v1/products/1/units/A0/label.svg")
        #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("image/svg+xml") == true && r.text.contains("<svg"), "\(r)")
        expectVersion(r)
        let eyeDIN = "\(din.prefix(5)) \(din.dropFirst(5).prefix(2)) \(din.suffix(6))"
        #expect(r.text.contains(eyeDIN), "SVG lacks \(eyeDIN)")
        r = try await HTTP.request("GET", base + "/api/v1/products/1/units/B0/label.pdf")
        #expect(r.status == 200 && r.body.prefix(5) == Data("%PDF-".utf8), "\(r.status)")
        refused(try await HTTP.request("GET", base + "/api/v1/products/1/units/D0/label.zpl"), 404, "previews are svg and pdf")
        refused(try await HTTP.request("GET", base + "/api/v1/products/1/units/E0/label.svg"), 404, "has no unit E0")
        refused(try await HTTP.request("GET", base + "/api/v1/products/1/units/A0/label.png"), 404, "previews are svg and pdf")

        // Print to the configured raw printer port, and only there.
        refused(try await HTTP.request("POST", base + "/api/v1/products/1/labels/print", json: [String: Any]()), 401, "credentials")
        refused(
            try await HTTP.request("POST", base + "/api/v1/products/1/labels/print", json: ["printer": "10.9.9.9:9100"], user: lab),
            422, "only the configured printer")
        r = try await HTTP.request("POST", base + "/api/v1/products/1/labels/print", json: [String: Any](), user: lab)
        #expect(r.status == 201 && (r.data as? [Any])?.count == 4, "\(r)")
        try eventually("the printer received the labels", timeout: .seconds(10)) { printer.connections.count == 1 }
        #expect(String(decoding: printer.connections[0], as: UTF8.self).components(separatedBy: "^XA").count - 1 == 4)
        r = try await HTTP.request("GET", base + "/api/v1/products")
        #expect((r.data as? [[String: Any]])?.first?["status"] as? String == "released, labels printed", "\(r)")

        // The dashboard's past runs and products: the closed run listed, the product's four label
        // previews drawn by a real browser.
        let browser = try Chromium.launch()
        defer { browser.close() }
        let page = try browser.open(base + "/")
        try page.waitFor(
            "document.querySelector('#runs-body')?.textContent.includes('closed')", timeout: .seconds(20),
            "the closed run in the runs table; \(page.consoleText)")
        try page.waitFor(
            "document.querySelector('#products-list button[data-product-id=\"1\"]') !== null", timeout: .seconds(20),
            "product 1 listed; \(page.consoleText)")
        // The cards above refresh every second (the data's age): a click that lands while one of them
        // changes height misses its button, so it is repeated until the product is selected.
        let selected = "document.querySelector('#products-list button[data-product-id=\"1\"]')?.getAttribute('aria-pressed') === 'true'"
        for attempt in 1...5 {
            try page.click("#products-list button[data-product-id=\"1\"]")
            do {
                try page.waitFor(selected, timeout: .seconds(2), "product 1 selected")
                break
            } catch where attempt < 5 {}
        }
        try page.waitFor(
            "(() => { const imgs = [...document.querySelectorAll('#product-detail img')]; return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth > 0) })()",
            timeout: .seconds(20), "four label previews loaded; \(page.consoleText)")
        #expect(try page.evaluate("document.querySelector('#product-detail img').getAttribute('src')") as? String == "/api/v1/products/1/units/A0/label.svg")
        try FileManager.default.createDirectory(at: Integration.DashboardTests.artifacts, withIntermediateDirectories: true)
        try page.screenshot(to: Integration.DashboardTests.artifacts.appendingPathComponent("dashboard-products.png"))

        let verify = try Ctl.run(["audit", "verify", "--config", daemon.configPath.path], in: directory)
        #expect(verify.status == 0, "\(verify)")
        try daemon.stop()
    }
}
