import ApheresisCore
import DaemonConfiguration
import Foundation
import Labels
import ProductWorkflow
import Quantities
import RecordStore
import SeparatorProtocol
import Testing
import WorkflowSettings

/// Issue 11, labels and products: label times from UTC device clocks, lab plausibility, the dose
/// band on the label, and what became of every print (voids and reprints). Products are made in
/// process from runs committed to a real SQLite store; labels are read back by poppler and zbar.
extension Integration {
    @Suite("Labels and products: times, plausibility, dose band, voids and reprints", .serialized)
    struct ProductLabelTrustTests {
        static let device = DeviceIdentity(model: "OPTIA-SIM", softwareVersion: "1.0", serialNumber: "1OPT00777")
        static let supervisorPassword = "supervisor-pw-1"
        static let labPassword = "lab-password-1"
        static let lab = Credential(userName: "lab1", password: labPassword)
        /// The reference entry: WBC 1.3 x10^9/L, CD3+ 44.8 %, 96 % viable, 5 mL QC samples.
        static let realistic = LabValues(
            whiteCellConcentration: .gigaPerLitre(1.3), cd3: .fractionOfLeukocytes(.percent(44.8)), viability: .percent(96),
            qcSampleVolume: .millilitres(5))

        /// A store in a fresh directory, with a supervisor and a lab user, and the workflow over it.
        struct Fixture {
            let directory: URL
            let store: RecordStore
            let workflow: ProductWorkflow
            var runs = 0

            init(_ name: String, timeZone: String = "Europe/Berlin", shelfLifeDays: Int = ProductSettings.defaultShelfLifeDays)
                async throws
            {
                directory = try Paths.temporaryDirectory(name)
                store = try await RecordStore.open(path: directory.appendingPathComponent("apheresisd.sqlite").path)
                let settings = ProductSettings(
                    facilityIdentificationNumber: "G1234", facilityName: "Example Children's Hospital",
                    facilityAddress: ["1 Example Street"], productDescriptionCode: "S1234",
                    productName: ProductSettings.defaultProductName, shelfLifeDays: shelfLifeDays, timeZone: timeZone)
                workflow = ProductWorkflow(store: store, settings: settings)
                _ = try await workflow.createUser(
                    name: "sup", fullName: "Sue Pervisor", role: .supervisor, password: supervisorPassword, by: nil)
                _ = try await workflow.createUser(
                    name: "lab1", fullName: "Lab Technologist", role: .lab, password: labPassword,
                    by: Credential(userName: "sup", password: supervisorPassword))
            }

            func remove() async {
                try? await store.close()
                try? FileManager.default.removeItem(at: directory)
            }

            /// A closed run of 180 mL for a 32 kg child, whose RUN_END carries `end` (device clock, UTC): one
            /// minute with a TICK every 5 s, so its telemetry is complete.
            mutating func closedRun(endingAt end: DeviceTimestamp) async throws -> Int64 {
                runs += 1
                let n = runs
                let start = end.adding(seconds: -60)
                let order = Order(runID: "UTC-\(n)", procedure: .cmnc, runStart: start)
                let patient = Patient(
                    id: "P-\(n)", familyName: "Kowalski", givenName: "Tomas", birthDate: CalendarDate(year: 2016, month: 3, day: 12),
                    sex: .male, heightCentimetres: 138, weightKilograms: 32)
                let first = UInt64(n * 100)
                var messages = [
                    SeparatorMessage(
                        sequenceNumber: first, device: ProductLabelTrustTests.device, timestamp: start, kind: .runStart,
                        patient: patient, order: order, results: [])
                ]
                for tick in 1...11 {
                    let at = start.adding(seconds: Int64(tick * 5))
                    messages.append(
                        SeparatorMessage(
                            sequenceNumber: first + UInt64(tick), device: ProductLabelTrustTests.device, timestamp: at, kind: .tick,
                            order: order,
                            results: [
                                ResultRecord(sequence: 1, code: .runTime, value: .number(Double(tick * 5) / 60), unit: "min", timestamp: at),
                                ResultRecord(sequence: 2, code: .collectVolume, value: .number(Double(tick) * 15), unit: "mL", timestamp: at),
                            ]))
                }
                messages.append(
                    SeparatorMessage(
                        sequenceNumber: first + 12, device: ProductLabelTrustTests.device, timestamp: end, kind: .runEnd,
                        patient: patient, order: order,
                        results: [
                            ResultRecord(sequence: 1, code: .runTime, value: .number(1), unit: "min", timestamp: end),
                            ResultRecord(sequence: 2, code: .collectVolume, value: .number(180), unit: "mL", timestamp: end),
                        ]))
                for m in messages {
                    _ = try await store.commit(m, raw: E1394Encoder.encode(m), receivedAtUnixMilliseconds: 1_795_000_000_000)
                }
                return try #require(try await store.runs().first { $0.runID == "UTC-\(n)" }).id
            }

            /// Product, lab values and release of a run ending at `end`.
            mutating func releasedProduct(endingAt end: DeviceTimestamp, values: LabValues = realistic) async throws -> ProductRow {
                let run = try await closedRun(endingAt: end)
                let product = try await workflow.createProduct(runRef: run, by: ProductLabelTrustTests.lab)
                try await release(product, values: values)
                return product
            }

            func release(_ product: ProductRow, values: LabValues, reason: String? = nil) async throws {
                _ = try await workflow.enterLabValues(product: product, values: values, by: ProductLabelTrustTests.lab, reason: reason)
                let state = try await workflow.state(of: product)
                _ = try await workflow.release(
                    product: product, shownSummarySHA256: state.releaseSummarySHA256(timeZone: workflow.timeZoneInUse),
                    by: ProductLabelTrustTests.lab)
            }

            /// The first unit's label content.
            func firstLabel(_ product: ProductRow) async throws -> LabelContent {
                try #require(try workflow.labelContents(of: try await workflow.state(of: product)).first).content
            }
        }

        static func utc(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int) -> DeviceTimestamp {
            DeviceTimestamp(year: y, month: mo, day: d, hour: h, minute: mi, second: 0)!
        }

        // MARK: 1. Times

        @Test("Berlin winter, end to end: RUN_END 11:53 UTC is collected 12:53 CET on the PDF label, its &* and &> codes")
        func berlinWinterEndToEnd() async throws {
            var f = try await Fixture("label-utc")
            let end = Self.utc(2026, 11, 25, 11, 53)
            let product = try await f.releasedProduct(endingAt: end)
            #expect(product.collectedAtUnixMilliseconds == end.secondsSinceEpoch * 1000, "the stored instant is the UTC device time")
            #expect(product.dinYear == 26)
            let previews = f.directory.appendingPathComponent("labels")
            _ = try await f.workflow.produceLabels(product: product, format: .pdf, destination: .directory(previews.path), by: Self.lab)
            let pdf = previews.appendingPathComponent("\(product.din)-A0.pdf")
            let text = try LabelReader.text(inPDF: pdf)
            #expect(text.contains("25 NOV 2026 12:53 CET"), "\(text)")
            #expect(!text.contains("11:53"), "\(text)")
            // Expiry 3650 days on (three leap days between), same wall-clock time: 22 Nov 2036, day 327.
            #expect(text.contains("22 NOV 2036 12:53 CET"), "\(text)")
            let codes = try LabelReader.barcodes(inPDF: pdf)
            #expect(codes.contains("CODE-128:&*0263291253") && codes.contains("CODE-128:&>0363271253"), "\(codes)")
            // The summary a signer reads shows the same local time.
            let summary = try await f.workflow.state(of: product).releaseSummary(timeZone: f.workflow.timeZoneInUse)
            #expect(summary.contains("at 2026-11-25 12:53 Europe/Berlin"), "\(summary)")
            await f.remove()
        }

        @Test("the spring-forward night in Berlin: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST")
        func daylightSavingEdge() async throws {
            var f = try await Fixture("label-dst")
            let first = try await f.releasedProduct(endingAt: Self.utc(2026, 3, 29, 0, 59))
            let before = try await f.firstLabel(first)
            #expect(before.collection.dataStructure == "&*0260880159")
            #expect(before.collection.eyeReadable == "29 MAR 2026 01:59 CET")
            let second = try await f.releasedProduct(endingAt: Self.utc(2026, 3, 29, 1, 0))
            let after = try await f.firstLabel(second)
            #expect(after.collection.dataStructure == "&*0260880300")
            #expect(after.collection.eyeReadable == "29 MAR 2026 03:00 CEST")
            await f.remove()
        }

        @Test("an expiry across the change to summer time keeps the collection's wall-clock time and names the new zone")
        func expiryAcrossDaylightSaving() async throws {
            var f = try await Fixture("label-dst-expiry", shelfLifeDays: 10)
            let product = try await f.releasedProduct(endingAt: Self.utc(2026, 3, 20, 11, 53))
            let label = try await f.firstLabel(product)
            #expect(label.collection.eyeReadable == "20 MAR 2026 12:53 CET")
            #expect(label.expiration.dataStructure == "&>0260891253")
            #expect(label.expiration.eyeReadable == "30 MAR 2026 12:53 CEST")
            await f.remove()
        }

        @Test("New Year's Eve in Berlin: 22:59 UTC is 23:59 on 31 Dec (DIN year 26), 23:30 UTC is already 2027 (DIN year 27)")
        func dinYearFromLocalDate() async throws {
            var f = try await Fixture("label-new-year")
            let old = try await f.releasedProduct(endingAt: Self.utc(2026, 12, 31, 22, 59))
            #expect(old.dinYear == 26 && old.din.hasPrefix("G123426"))
            let oldLabel = try await f.firstLabel(old)
            #expect(oldLabel.collection.dataStructure == "&*0263652359")
            #expect(oldLabel.collection.eyeReadable == "31 DEC 2026 23:59 CET")
            let new = try await f.releasedProduct(endingAt: Self.utc(2026, 12, 31, 23, 30))
            #expect(new.dinYear == 27 && new.din == "G123427000001")
            let newLabel = try await f.firstLabel(new)
            #expect(newLabel.collection.dataStructure == "&*0270010030")
            #expect(newLabel.collection.eyeReadable == "01 JAN 2027 00:30 CET")
            #expect(newLabel.din.dataStructure.hasPrefix("=G123427"))
            await f.remove()
        }

        // MARK: 2. Plausibility

        @Test("CD3+ 5000/uL with WBC 0.9 x10^9/L, and WBC 10^9 x10^9/L, are refused with the reason and audited")
        func implausibleLabValues() async throws {
            var f = try await Fixture("lab-plausibility")
            let run = try await f.closedRun(endingAt: Self.utc(2026, 11, 25, 11, 53))
            let product = try await f.workflow.createProduct(runRef: run, by: Self.lab)
            let workflow = f.workflow
            func refusal(_ values: LabValues) async -> String? {
                await Self.refusal(workflow, product, values)
            }
            var moreCD3 = Self.realistic
            moreCD3.whiteCellConcentration = .gigaPerLitre(0.9)
            moreCD3.cd3 = .absolute(.cellsPerMicrolitre(5000))
            let cd3 = try #require(await refusal(moreCD3), "CD3+ above WBC was accepted")
            #expect(cd3.contains("CD3+ count, WBC") && cd3.contains("CD3+ 5000 /uL exceeds WBC 0.9 x10^9/L (= 900 /uL)"), "\(cd3)")
            #expect(cd3.contains("subset of the leukocytes"), "\(cd3)")

            var hugeWBC = Self.realistic
            hugeWBC.whiteCellConcentration = .gigaPerLitre(1e9)
            let wbc = try #require(await refusal(hugeWBC), "WBC 10^9 x10^9/L was accepted")
            #expect(wbc.contains("WBC 1e+09 x10^9/L is above 1000 x10^9/L"), "\(wbc)")

            var notANumber = Self.realistic
            notANumber.viability = Fraction(.nan)
            notANumber.cd3 = .fractionOfLeukocytes(.percent(130))
            let both = try #require(await refusal(notANumber), "NaN viability was accepted")
            #expect(both.contains("CD3+ %, viability") && both.contains("CD3+ 130 %") && both.contains("viability nan %"), "\(both)")

            #expect(try await f.store.labResults(productRef: product.id).isEmpty, "a refused entry stored nothing")
            let refusals = try await f.store.auditEntries(entity: "product", entityID: String(product.id))
                .filter { $0.action == "refused.enterLabValues" }
            #expect(refusals.count == 3)
            #expect(refusals.allSatisfy { $0.actor == "lab1" })
            #expect(refusals.first?.reason == cd3 && refusals.dropFirst().first?.reason == wbc, "\(refusals)")

            // A realistic entry, as a percentage and as an absolute count, still goes through.
            let state = try await f.workflow.enterLabValues(product: product, values: Self.realistic, by: Self.lab)
            #expect(state.units.count == 4)
            var absolute = Self.realistic
            absolute.cd3 = .absolute(.cellsPerMicrolitre(582.4))
            let corrected = try await f.workflow.enterLabValues(product: product, values: absolute, by: Self.lab, reason: "absolute count")
            #expect(corrected.labResults.count == 2)
            #expect(try await f.store.verifyAudit().isIntact)
            await f.remove()
        }

        /// The refusal's text, or nil when the values were accepted.
        static func refusal(_ workflow: ProductWorkflow, _ product: ProductRow, _ values: LabValues) async -> String? {
            do throws(ProductWorkflowError) {
                _ = try await workflow.enterLabValues(product: product, values: values, by: lab)
                return nil
            } catch {
                guard case .invalidLabValue = error else { return "unexpected refusal: \(error)" }
                return error.description
            }
        }

        // MARK: 3. Dose band

        @Test("a unit above the dose band says so on its PDF, SVG and ZPL labels; a unit within it does not")
        func doseBandOnLabels() async throws {
            var f = try await Fixture("label-dose-band")
            // WBC 2.1 x10^9/L, 44.8 %: 940.8 CD3+/uL x 175 mL / 4 = 41.2 x10^6 per unit (1.29 x10^6/kg), above 25-36.
            var high = Self.realistic
            high.whiteCellConcentration = .gigaPerLitre(2.1)
            let above = try await f.releasedProduct(endingAt: Self.utc(2026, 11, 25, 11, 53), values: high)
            let state = try await f.workflow.state(of: above)
            #expect(state.units.allSatisfy { $0.values.doseFlag == "above_band" })
            let expected = "OUT OF DOSE BAND (ABOVE): CD3+ 41.2 x10^6/unit (1.29 x10^6/kg), band 25.0-36.0 x10^6/unit"
            let directory = f.directory.appendingPathComponent("formats")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let (_, content) = try #require(try f.workflow.labelContents(of: state).first)
            #expect(content.alert == expected)

            let pdf = directory.appendingPathComponent("unit.pdf")
            try Data(try f.workflow.render(content, as: .pdf)).write(to: pdf)
            let pdfText = try LabelReader.text(inPDF: pdf)
            #expect(Self.words(pdfText).contains(Self.words(expected)), "\(pdfText)")

            let svg = String(decoding: try f.workflow.render(content, as: .svg), as: UTF8.self)
            #expect(Self.words(Self.svgText(svg)).contains(Self.words(expected)), "\(svg)")

            _ = try await f.workflow.produceLabels(product: above, format: .zpl, destination: .directory(directory.path), by: Self.lab)
            let zpl = try String(contentsOf: directory.appendingPathComponent("\(above.din)-A0.zpl"), encoding: .utf8)
            #expect(Self.words(Self.zplText(zpl)).contains(Self.words(expected)), "\(zpl)")

            let within = try await f.releasedProduct(endingAt: Self.utc(2026, 11, 26, 11, 53))
            let withinContent = try await f.firstLabel(within)
            #expect(withinContent.alert == nil)
            let withinPDF = directory.appendingPathComponent("within.pdf")
            try Data(try f.workflow.render(withinContent, as: .pdf)).write(to: withinPDF)
            #expect(!(try LabelReader.text(inPDF: withinPDF)).contains("DOSE BAND"))
            await f.remove()
        }

        /// Whitespace collapsed: wrapped lines read as one text.
        static func words(_ text: String) -> String {
            text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        }

        static func svgText(_ svg: String) -> String {
            var lines: [String] = []
            for part in svg.components(separatedBy: "<text").dropFirst() {
                guard let open = part.firstIndex(of: ">"), let close = part.range(of: "</text>") else { continue }
                lines.append(
                    String(part[part.index(after: open)..<close.lowerBound]).replacingOccurrences(of: "&lt;", with: "<")
                        .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&quot;", with: "\"")
                        .replacingOccurrences(of: "&apos;", with: "'").replacingOccurrences(of: "&amp;", with: "&"))
            }
            return lines.joined(separator: "\n")
        }

        /// The text fields (`^A0` ... `^FD`) of ZPL, `^FH_` escapes undone.
        static func zplText(_ zpl: String) -> String {
            zpl.split(separator: "\n").filter { $0.contains("^A0") }.compactMap { line -> String? in
                guard let start = line.range(of: "^FD"), let end = line.range(of: "^FS", options: .backwards) else { return nil }
                return ZPLReading.unhex(String(line[start.upperBound..<end.lowerBound]), "_")
            }.joined(separator: "\n")
        }

        // MARK: 4. Voids and reprints

        @Test("reprint needs a reason and supersedes; a void is recorded with who and why; a correction supersedes the rest")
        func voidsAndReprints() async throws {
            var f = try await Fixture("label-voids")
            let product = try await f.releasedProduct(endingAt: Self.utc(2026, 11, 25, 11, 53))
            let out = f.directory.appendingPathComponent("zpl")
            _ = try await f.workflow.produceLabels(product: product, format: .zpl, destination: .directory(out.path), by: Self.lab)
            var state = try await f.workflow.state(of: product)
            #expect(state.labelPrints.map(\.id) == [1, 2, 3, 4])
            #expect(state.labelPrints.allSatisfy { state.labelStatus(of: $0) == .printed })
            #expect(state.status == .labelled)

            // Printing again while those labels are valid is a reprint: refused without a reason.
            do {
                _ = try await f.workflow.produceLabels(product: product, format: .zpl, destination: .directory(out.path), by: Self.lab)
                Issue.record("a second print without a reason was accepted")
            } catch {
                #expect(error.description.contains("labels of prints 1, 2, 3, 4 are still valid"), "\(error)")
            }
            #expect(try await f.workflow.state(of: product).labelPrints.count == 4)

            let reprinted = try await f.workflow.produceLabels(
                product: product, format: .zpl, destination: .directory(out.path), by: Self.lab, reprintReason: "labels smudged")
            #expect(reprinted.count == 4)
            state = try await f.workflow.state(of: product)
            #expect(state.labelPrints.map(\.id) == Array(1...8))
            for old in state.labelPrints.prefix(4) {
                let fate = try #require(state.fate(of: old))
                #expect(fate.fate == .superseded && fate.replacedByPrintRef == old.id + 4 && fate.reason == "reprint: labels smudged")
                #expect(fate.recordedBy == "lab1")
            }
            #expect(state.labelPrints.suffix(4).allSatisfy { state.labelStatus(of: $0) == .printed })

            // Unit A0's new label was torn: voided, with who and why.
            let voided = try await f.workflow.voidLabels(product: product, prints: [5], reason: "label torn when applied", by: Self.lab)
            #expect(voided.map(\.labelPrintRef) == [5] && voided.first?.fate == .voided)
            do {
                _ = try await f.workflow.voidLabels(product: product, prints: [5], reason: "again", by: Self.lab)
                Issue.record("a voided print was voided again")
            } catch {
                #expect(error.description.contains("label print 5 is already voided"), "\(error)")
            }
            do {
                _ = try await f.workflow.voidLabels(product: product, prints: [6], reason: " ", by: Self.lab)
                Issue.record("a void without a reason was accepted")
            } catch {
                #expect(error.description.contains("give a reason"), "\(error)")
            }

            // A correction and a new release: the prints still valid (6-8) are superseded by the new labels.
            var corrected = Self.realistic
            corrected.whiteCellConcentration = .gigaPerLitre(1.4)
            try await f.release(product, values: corrected, reason: "WBC re-counted")
            _ = try await f.workflow.produceLabels(product: product, format: .zpl, destination: .directory(out.path), by: Self.lab)
            state = try await f.workflow.state(of: product)
            #expect(state.labelPrints.count == 12)
            #expect(state.labelStatus(of: state.labelPrints[4]) == .voided)
            for old in state.labelPrints[5..<8] {
                let fate = try #require(state.fate(of: old), "print \(old.id) has no fate")
                #expect(fate.fate == .superseded && fate.replacedByPrintRef == old.id + 4)
                #expect(fate.reason.contains("lab values corrected (version 2 by lab1: WBC re-counted)"), "\(fate.reason)")
            }
            #expect(state.labelPrints.suffix(4).allSatisfy { state.labelStatus(of: $0) == .printed })
            #expect(state.status == .labelled)

            // A second correction reduces to 70 mL: two units. C0 and D0 are no longer part of the
            // product, so nothing replaces their labels: voided (destroy them), not "superseded".
            var twoUnits = corrected
            twoUnits.reducedVolume = .millilitres(70)
            try await f.release(product, values: twoUnits, reason: "reduced to 70 mL")
            _ = try await f.workflow.produceLabels(product: product, format: .zpl, destination: .directory(out.path), by: Self.lab)
            state = try await f.workflow.state(of: product)
            #expect(state.labelPrints.count == 14)
            let dropped = state.labelPrints[10..<12]
            for old in dropped {
                let fate = try #require(state.fate(of: old), "print \(old.id) has no fate")
                #expect(fate.fate == .voided && fate.replacedByPrintRef == nil, "\(fate)")
                #expect(fate.reason.contains("is not part of the corrected product: destroy its labels"), "\(fate.reason)")
            }
            for old in state.labelPrints[8..<10] {
                #expect(state.fate(of: old)?.fate == .superseded)
            }

            // Every fate is in the audit trail, and the trail checks them against the table.
            let actions = try await f.store.auditEntries(entity: "label_print_fate").map(\.action)
            #expect(actions.filter { $0 == "label.supersede" }.count == 9 && actions.filter { $0 == "label.void" }.count == 3)
            let productEntries = try await f.store.auditEntries(entity: "product", entityID: String(product.id)).map(\.action)
            #expect(productEntries.contains("refused.printLabels") && productEntries.contains("refused.voidLabels"))
            let verification = try await f.store.verifyAudit()
            #expect(verification.isIntact, "\(verification.problems)")

            await f.remove()
        }

        @Test("label_print_fates is append-only: SQL cannot change or delete a recorded void")
        func fatesAreAppendOnly() async throws {
            var f = try await Fixture("label-fates-append-only")
            let product = try await f.releasedProduct(endingAt: Self.utc(2026, 11, 25, 11, 53))
            _ = try await f.workflow.produceLabels(
                product: product, format: .zpl, destination: .directory(f.directory.appendingPathComponent("zpl").path), by: Self.lab)
            _ = try await f.workflow.voidLabels(product: product, reason: "printer jammed", by: Self.lab)
            let database = f.directory.appendingPathComponent("apheresisd.sqlite").path
            for sql in ["UPDATE label_print_fates SET reason = 'nothing happened'", "DELETE FROM label_print_fates"] {
                let sqlite = Process()
                sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
                sqlite.arguments = [database, sql]
                let err = Pipe()
                sqlite.standardError = err
                try sqlite.run()
                sqlite.waitUntilExit()
                let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(sqlite.terminationStatus != 0 && message.contains("label_print_fates is append-only"), "\(sql): \(message)")
            }
            let state = try await f.workflow.state(of: product)
            #expect(state.labelPrintFates.count == 4 && state.labelPrintFates.allSatisfy { $0.reason == "printer jammed" })
            #expect(state.status == .released, "with every label voided the product needs labels again")
            await f.remove()
        }

        // MARK: apheresisctl

        @Test("apheresisctl: implausible lab values refused, labels --reprint --reason, void-labels, show lists each print's status")
        func commandLine() async throws {
            var f = try await Fixture("label-ctl")
            let run = try await f.closedRun(endingAt: Self.utc(2026, 11, 25, 11, 53))
            let configPath = f.directory.appendingPathComponent("apheresisd.toml")
            try """
            format = 1
            [daemon]
            state_directory = "\(f.directory.path)"
            [product]
            facility_identification_number = "G1234"
            facility_name = "Example Children's Hospital"
            product_description_code = "S1234"
            time_zone = "Europe/Berlin"
            """.write(to: configPath, atomically: true, encoding: .utf8)
            let config = ["--config", configPath.path]
            func ctl(_ arguments: [String], _ stdin: [String] = [Self.labPassword]) throws -> CtlResult {
                try Ctl.run(arguments + config, stdin: stdin, in: f.directory)
            }
            var r = try ctl(["product", "create", "--run", String(run), "--user", "lab1"])
            #expect(r.status == 0 && r.stdout.contains("DIN G1234 26 000001"), "\(r)")

            r = try ctl(["product", "lab", "1", "--user", "lab1", "--wbc", "0.9", "--cd3-per-ul", "5000", "--viability-percent", "96", "--qc-ml", "5"])
            #expect(r.status == 1 && r.stderr.contains("refused: ") && r.stderr.contains("CD3+ 5000 /uL exceeds WBC 0.9 x10^9/L"), "\(r)")
            r = try ctl(["product", "lab", "1", "--user", "lab1", "--wbc", "1e9", "--cd3-percent", "44.8", "--viability-percent", "96", "--qc-ml", "5"])
            #expect(r.status == 1 && r.stderr.contains("WBC 1e+09 x10^9/L is above 1000 x10^9/L"), "\(r)")
            r = try ctl(["product", "lab", "1", "--user", "lab1", "--wbc", "1.3", "--cd3-percent", "44.8", "--viability-percent", "96", "--qc-ml", "5"])
            #expect(r.status == 0, "\(r)")
            r = try ctl(["product", "release", "1", "--user", "lab1"])
            #expect(r.status == 0, "\(r)")

            let out = f.directory.appendingPathComponent("labels").path
            r = try ctl(["product", "labels", "1", "--user", "lab1", "--output", out])
            #expect(r.status == 0, "\(r)")
            r = try ctl(["product", "labels", "1", "--user", "lab1", "--output", out])
            #expect(r.status == 1 && r.stderr.contains("printing again is a reprint"), "\(r)")
            r = try ctl(["product", "labels", "1", "--user", "lab1", "--output", out, "--reprint"], [])
            #expect(r.status == 64 && r.stderr.contains("--reprint needs --reason"), "\(r)")
            r = try ctl(["product", "labels", "1", "--user", "lab1", "--output", out, "--reprint", "--reason", "ribbon ran out"])
            #expect(r.status == 0, "\(r)")
            r = try ctl(["product", "void-labels", "1", "--user", "lab1", "--print", "6", "--reason", "dropped in the dewar"])
            #expect(r.status == 0 && r.stdout.contains("label print 6: voided (dropped in the dewar)"), "\(r)")

            r = try ctl(["product", "show", "1"], [])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.contains("Collected 180 mL at 2026-11-25 12:53 Europe/Berlin"), "\(r)")
            for expected in [
                "label print 1: unit A0 by lab1", ": superseded by print 5 (lab1, ", "reprint: ribbon ran out)",
                "label print 6: unit B0", ": voided (lab1, ", "dropped in the dewar)", "label print 8: unit D0",
            ] {
                #expect(r.stdout.contains(expected), "show lacks \(expected):\n\(r.stdout)")
            }
            #expect(r.stdout.split(separator: "\n").filter { $0.hasPrefix("label print") && $0.hasSuffix(": printed") }.count == 3, "\(r)")

            r = try ctl(["audit", "log"], [])
            for action in ["refused.enterLabValues", "label.supersede", "label.void"] {
                #expect(r.stdout.contains(action), "audit log lacks \(action)")
            }
            r = try ctl(["audit", "verify"], [])
            #expect(r.status == 0 && r.stdout.contains("audit trail intact"), "\(r)")
            await f.remove()
        }
    }
}
