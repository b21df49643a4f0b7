import Foundation
import RecordStore
import SeparatorProtocol
import Testing

/// The cell lab's path, as issue 4 and the README walk it: a run from the real simulator through
/// the real daemon, then apheresisctl (a real child process) for users, lab values, release and
/// four labels; labels read back by zbar and poppler; the audit trail verified and tampered with.
extension Integration {
    @Suite("Products, release and labels through apheresisctl", .serialized)
    struct ProductWorkflowTests {
        /// The cell lab's settings every product test uses.
        static let productSection = """
            [product]
            facility_identification_number = "G1234"
            facility_name = "Example Children's Hospital, Apheresis Unit"
            facility_address = ["1 Example Street", "Springfield"]
            product_description_code = "S1234"
            time_zone = "UTC"
            """

        /// `extra`: more TOML after the rest (an [hl7] section, say).
        static func config(exports: String, printerPort: Int? = nil, extra: String = "") -> String {
            """
            format = 1
            [daemon]
            state_directory = "STATE"

            [[device]]
            name = "optia-exports"
            transport = "export"
            directory = "\(exports)"

            \(productSection)

            \(printerPort.map { "[labels]\nprinter = \"127.0.0.1:\($0)\"" } ?? "")

            [api]
            listen = "127.0.0.1:0"
            \(extra)
            """
        }

        /// The daemon with one closed run of the 10-year-old's scenario, from the simulator's export file.
        static func daemonWithClosedRun(_ directory: URL, printerPort: Int? = nil, extra: String = "") async throws -> DaemonProcess {
            let exports = directory.appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
            let daemon = try DaemonProcess(
                config: Self.config(exports: exports.path, printerPort: printerPort, extra: extra), directory: directory)
            let sim = try SimulatorProcess(
                arguments: [
                    "run", Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path, "--export-dir", exports.path,
                    "--speed", "1000000", "--state", directory.appendingPathComponent("sim.state").path,
                ], workingDirectory: directory)
            try sim.waitForExit()
            let database = daemon.databasePath
            try await eventuallyAsync("the run is stored and closed; stderr: \(daemon.failureText)", timeout: .seconds(90)) {
                guard FileManager.default.fileExists(atPath: database) else { return false }
                return try await RecordStore.open(path: database).runs().first?.state == .closed
            }
            return daemon
        }

        /// Supervisor, lab user and operator, through apheresisctl.
        static func addUsers(_ daemon: DaemonProcess, _ directory: URL) throws {
            let config = ["--config", daemon.configPath.path]
            for (arguments, stdin) in [
                (["user", "add", "sup", "--full-name", "Sue Pervisor", "--role", "supervisor"], [supervisor, supervisor]),
                (["user", "add", "lab1", "--full-name", "Lab Technologist", "--role", "lab", "--by", "sup"],
                    [supervisor, labPassword, labPassword]),
                (["user", "add", "op1", "--full-name", "Nurse Operator", "--role", "operator", "--by", "sup"],
                    [supervisor, operatorPassword, operatorPassword]),
            ] {
                let r = try Ctl.run(arguments + config, stdin: stdin, in: directory)
                #expect(r.status == 0, "\(r)")
            }
        }

        static let supervisor = "supervisor-pw-1"
        static let labPassword = "lab-password-1"
        static let operatorPassword = "operator-pw-1"

        @Test("from a simulated run: lab values, four 35 mL units, release as lab, four labels, audit verify")
        func walkthrough() async throws {
            let directory = try Paths.temporaryDirectory("products")
            defer { try? FileManager.default.removeItem(at: directory) }
            let daemon = try await Self.daemonWithClosedRun(directory)
            let database = daemon.databasePath
            let config = ["--config", daemon.configPath.path]
            func ctl(_ arguments: [String], _ stdin: [String] = []) throws -> CtlResult {
                try Ctl.run(arguments + config, stdin: stdin, in: directory)
            }
            func refused(_ result: CtlResult, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
                #expect(result.status == 1, "\(result)", sourceLocation: sourceLocation)
                #expect(result.stderr.contains("refused: ") && result.stderr.contains(text), "\(result)", sourceLocation: sourceLocation)
            }

            // People. The first user must be a supervisor; after that a supervisor signs for each new one.
            refused(
                try ctl(["user", "add", "early", "--full-name", "Early Bird", "--role", "lab"], ["long-enough-1", "long-enough-1"]),
                "the first user must be a supervisor")
            var r = try ctl(
                ["user", "add", "sup", "--full-name", "Sue Pervisor", "--role", "supervisor"], [Self.supervisor, Self.supervisor])
            #expect(r.status == 0, "\(r)")
            r = try ctl(
                ["user", "add", "lab1", "--full-name", "Lab Technologist", "--role", "lab", "--by", "sup"],
                [Self.supervisor, Self.labPassword, Self.labPassword])
            #expect(r.status == 0, "\(r)")
            r = try ctl(
                ["user", "add", "op1", "--full-name", "Nurse Operator", "--role", "operator", "--by", "sup"],
                [Self.supervisor, Self.operatorPassword, Self.operatorPassword])
            #expect(r.status == 0, "\(r)")
            refused(
                try ctl(["user", "add", "x2", "--full-name", "X", "--role", "lab", "--by", "lab1"], [Self.labPassword, "pppppppppp1", "pppppppppp1"]),
                "lab1 is a lab; managing users needs the role supervisor")

            // The run and its product.
            r = try ctl(["runs"])
            let runLine = try #require(r.stdout.split(separator: "\n").dropFirst().first, "\(r)")
            let runID = try #require(runLine.split(separator: " ").first.map(String.init))
            refused(try ctl(["product", "create", "--run", runID, "--user", "op1"], [Self.operatorPassword]), "op1 is an operator")
            refused(
                try ctl(["product", "create", "--run", runID, "--user", "lab1"], ["wrong-password"]),
                "the user name or the password is wrong")
            refused(
                try ctl(["product", "create", "--run", runID, "--user", "nobody"], ["whatever-pass"]),
                "the user name or the password is wrong")
            r = try ctl(["product", "create", "--run", runID, "--user", "lab1"], [Self.labPassword])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.contains("DIN G1234 "), "\(r)")
            let store = try await RecordStore.open(path: database)
            let product = try #require(try await store.products().first)
            #expect(product.din.hasPrefix("G1234") && product.din.hasSuffix("000001") && product.dinSequence == 1)
            let collectedML = product.collectedVolumeCubicMetres * 1e6
            #expect(collectedML > 200 && collectedML < 260, "collected \(collectedML) mL")
            refused(try ctl(["product", "create", "--run", runID, "--user", "lab1"], [Self.labPassword]), "already has product")

            // Refusals before the lab values are in.
            refused(try ctl(["product", "release", "1", "--user", "lab1"], [Self.labPassword]), "has no lab values yet")
            refused(
                try ctl(["product", "labels", "1", "--user", "lab1", "--output", directory.path], [Self.labPassword]),
                "is not released")
            refused(
                try ctl(["product", "lab", "1", "--user", "lab1", "--wbc", "1.3", "--qc-ml", "5"], []),
                "missing lab values: --cd3-percent or --cd3-per-ul, --viability-percent")
            let lab = ["--wbc", "1.3", "--cd3-percent", "44.8", "--viability-percent", "96", "--qc-ml", "5"]
            refused(
                try ctl(["product", "lab", "1", "--user", "lab1", "--reduced-ml", "400"] + lab, [Self.labPassword]),
                "cannot reduce to 400 mL")
            refused(
                try ctl(["product", "lab", "1", "--user", "lab1", "--reduced-ml", "30"] + lab, [Self.labPassword]),
                "30 mL cannot be split into units of 35 mL")
            refused(try ctl(["product", "lab", "1", "--user", "op1"] + lab, [Self.operatorPassword]), "entering lab values needs")

            // The seed practice: 140 mL, four units of 35 mL.
            r = try ctl(["product", "lab", product.din, "--user", "lab1"] + lab, [Self.labPassword])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.contains("Reduced to 140 mL") && r.stdout.contains("4 unit(s) of 35 mL, remainder 0 mL"), "\(r)")
            let (computation, units) = try #require(try await store.currentComputation(productRef: product.id))
            #expect(units.map(\.values.divisionCode) == ["A0", "B0", "C0", "D0"])
            #expect(units.allSatisfy { abs($0.values.volumeCubicMetres - 35e-6) < 1e-12 })
            // By hand: CD3+ 1.3e9/L x 0.448 = 582.4/uL over (collected - 5 mL), a quarter each.
            let expectedCD3 = 582.4e9 * (product.collectedVolumeCubicMetres - 5e-6) / 4
            #expect(abs(units[0].values.cd3Cells - expectedCD3) / expectedCD3 < 1e-12)
            #expect(abs(units[0].values.cd3CellsPerKilogram! - expectedCD3 / 32) / (expectedCD3 / 32) < 1e-12)
            #expect(computation.values.patientMassKilograms == 32)
            refused(try ctl(["product", "lab", "1", "--user", "lab1"] + lab, [Self.labPassword]), "give a reason")

            // Release: an electronic signature by a lab user.
            refused(try ctl(["product", "release", "1", "--user", "lab1"], ["not-my-password"]), "the user name or the password is wrong")
            r = try ctl(["product", "release", "1", "--user", "lab1"], [Self.labPassword])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout.contains("released by Lab Technologist (lab1)"), "\(r)")
            let signature = try #require(try await store.currentRelease(productRef: product.id))
            #expect(signature.meaning == "released" && signature.userName == "lab1" && signature.computationRef == computation.id)

            // Four labels to a raw printer port, and as PDF previews.
            let printer = try PrinterListener()
            r = try ctl(["product", "labels", "1", "--user", "lab1", "--printer", "127.0.0.1:\(printer.port)"], [Self.labPassword])
            #expect(r.status == 0, "\(r)")
            try eventually("the printer received the labels", timeout: .seconds(10)) { printer.connections.count == 1 }
            let zpl = String(decoding: printer.connections[0], as: UTF8.self)
            #expect(zpl.components(separatedBy: "^XA").count - 1 == 4 && zpl.components(separatedBy: "^XZ").count - 1 == 4)
            #expect(ZPLReading.barcodeData(zpl).filter { $0.hasPrefix("=G1234") } == Array(repeating: "=\(product.din)00", count: 4))
            #expect(ZPLReading.barcodeData(zpl).filter { $0.hasPrefix("=<") } == ["=<S12341A0", "=<S12341B0", "=<S12341C0", "=<S12341D0"])

            let previews = directory.appendingPathComponent("labels")
            r = try ctl(
                ["product", "labels", "1", "--user", "lab1", "--format", "pdf", "--output", previews.path, "--reprint", "--reason",
                    "PDF copies for the batch record"], [Self.labPassword])
            #expect(r.status == 0, "\(r)")
            let files = try FileManager.default.contentsOfDirectory(atPath: previews.path).filter { $0.hasSuffix(".pdf") }.sorted()
            #expect(files == ["A0", "B0", "C0", "D0"].map { "\(product.din)-\($0).pdf" })
            let first = previews.appendingPathComponent("\(product.din)-A0.pdf")
            let codes = try LabelReader.barcodes(inPDF: first)
            // Collection: the device clock at RUN_END (UTC here, as configured); expiry 3650 days on.
            let end = try #require(try await store.run(id: product.runRef)?.endDeviceTimestamp)
            var utc = Calendar(identifier: .gregorian)
            utc.timeZone = .gmt
            let collectedAt = try #require(
                utc.date(from: DateComponents(year: end.year, month: end.month, day: end.day, hour: end.hour, minute: end.minute)))
            func isbt(_ identifier: String, _ date: Date) -> String {
                let c = utc.dateComponents([.year, .hour, .minute], from: date)
                let day = utc.ordinality(of: .day, in: .year, for: date)!
                return identifier + String(format: "%03d%03d%02d%02d", c.year! % 1000, day, c.hour!, c.minute!)
            }
            let expiresAt = utc.date(byAdding: .day, value: 3650, to: collectedAt)!
            let expected = [
                "=G1234" + String(format: "%02d", end.year % 100) + "00000100", "=<S12341A0", isbt("&*", collectedAt),
                isbt("&>", expiresAt),
            ]
            #expect(codes.sorted() == expected.map { "CODE-128:" + $0 }.sorted(), "\(codes)")
            let text = try LabelReader.text(inPDF: first)
            for expected in ["G1234 \(product.din.dropFirst(5).prefix(2)) 000001", "KOWALSKI, Tomas", "PED-000311", "12 MAR 2016", "35 mL", "FOR AUTOLOGOUS USE ONLY",
                "NOT EVALUATED FOR INFECTIOUS SUBSTANCES", "Example Children's Hospital", "Unit 1 of 4"] {
                #expect(text.contains(expected), "label text lacks \(expected):\n\(text)")
            }

            // The run exported, as CSV (one column per code, unit in the header) and as JSON.
            let sampleCount = try await store.samples(runRef: product.runRef).count
            r = try ctl(["export", runID, "--format", "csv"])
            #expect(r.status == 0, "\(r)")
            let csvLines = r.stdout.split(separator: "\n")
            #expect(csvLines.count == sampleCount + 1, "\(csvLines.count) lines for \(sampleCount) samples")
            #expect(csvLines.first?.contains("COLLECT_VOL (mL)") == true && csvLines.first?.contains("AC_RATIO ({ratio})") == true, "\(csvLines.first ?? "")")
            r = try ctl(["export", runID, "--format", "json", "--output", directory.appendingPathComponent("run.json").path])
            #expect(r.status == 0, "\(r)")
            let exported = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("run.json"))) as? [String: Any]
            #expect((exported?["samples"] as? [Any])?.count == sampleCount)
            #expect((exported?["run"] as? [String: Any])?["patient_id"] as? String == "PED-000311")
            let missing = try ctl(["export", "4242"])
            #expect(missing.status == 1 && missing.stderr.contains("no run with id 4242"), "\(missing)")

            // The trail: intact, then tampered with in the file itself.
            r = try ctl(["audit", "verify"])
            #expect(r.status == 0 && r.stdout.contains("audit trail intact"), "\(r)")
            let log = try ctl(["audit", "log"]).stdout
            for action in ["user.create", "product.create", "lab.enter", "computation.create", "unit.create", "product.release",
                "label.print", "refused.release", "refused.createProduct", "refused.printLabels"] {
                #expect(log.contains(action), "audit log lacks \(action)")
            }
            // The trail names who was refused and why, though the reply did not say which part was wrong.
            #expect(log.contains("reason: wrong password for lab1") && log.contains("reason: no user named nobody"), "\(log)")
            let head = try #require(r.stdout.split(separator: " ").last.map(String.init))

            // A backup while the daemon runs, into a directory that keeps one; then the restore of
            // docs/store.md: the copy as the store, its heads as the anchor file, the same key.
            let backups = directory.appendingPathComponent("backups")
            try FileManager.default.createDirectory(at: backups, withIntermediateDirectories: true)
            let storeName = URL(fileURLWithPath: database).deletingPathExtension().lastPathComponent
            let older = backups.appendingPathComponent("\(storeName)-20200101T000000Z.sqlite").path
            let unrelated = backups.appendingPathComponent("notes.txt").path
            for file in [older, older + ".heads", unrelated] { #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8))) }
            r = try ctl(["backup", backups.path, "--keep", "1"])
            #expect(r.status == 0 && r.stdout.contains("integrity ok") && r.stdout.contains("removed old backup \(older)"), "\(r)")
            #expect(!FileManager.default.fileExists(atPath: older) && !FileManager.default.fileExists(atPath: older + ".heads"))
            #expect(FileManager.default.fileExists(atPath: unrelated), "only the command's own names are pruned")
            let copies = try FileManager.default.contentsOfDirectory(atPath: backups.path).filter { $0.hasSuffix(".sqlite") }
            #expect(copies.count == 1, "\(copies)")
            let copy = backups.appendingPathComponent(try #require(copies.first)).path
            let restored = directory.appendingPathComponent("restored")
            try FileManager.default.createDirectory(
                at: restored.appendingPathComponent("audit-anchor"), withIntermediateDirectories: true)
            let restoredStore = restored.appendingPathComponent(storeName + ".sqlite").path
            try FileManager.default.copyItem(atPath: copy, toPath: restoredStore)
            try FileManager.default.copyItem(
                atPath: copy + ".heads", toPath: restored.appendingPathComponent("audit-anchor/\(storeName).sqlite.heads").path)
            let key = URL(fileURLWithPath: database).deletingLastPathComponent().appendingPathComponent("audit-key/audit.key").path
            r = try ctl(["audit", "verify", "--database", restoredStore, "--audit-key", key])
            #expect(r.status == 0 && r.stdout.contains("audit trail intact"), "\(r)")
            r = try ctl(["backup", copy])
            #expect(r.status == 1 && r.stderr.contains("already exists"), "a backup never overwrites: \(r)")

            try await store.close()
            try daemon.stop()
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            sqlite.arguments = [database, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 3"]
            try sqlite.run()
            sqlite.waitUntilExit()
            r = try ctl(["audit", "verify", "--expect-head", head])
            #expect(r.status == 2 && r.stdout.contains("audit trail BROKEN: audit entry 3:"), "\(r)")
        }
    }
}

/// Reads ^BC field data back out of ZPL: undoes ^FH hex escapes and Code 128 invocation codes.
enum ZPLReading {
    static func barcodeData(_ zpl: String) -> [String] {
        var result: [String] = []
        let commands = zpl.components(separatedBy: "^")
        var inBarcode = false
        var hexEscape: Character? = nil
        for command in commands {
            if command.hasPrefix("BC") { inBarcode = true }
            if command.hasPrefix("FH") { hexEscape = command.dropFirst(2).first ?? "_" }
            if command.hasPrefix("FD"), inBarcode {
                var data = String(command.dropFirst(2))
                if let escape = hexEscape { data = unhex(data, escape) }
                result.append(code128Text(data))
            }
            if command.hasPrefix("FS") {
                inBarcode = false
                hexEscape = nil
            }
        }
        return result
    }

    /// ZPL's Code 128 invocation pairs: "><" is '>', ">=" is '~', the others (start and switch
    /// of code set, shift, FNC) carry no text.
    static func code128Text(_ data: String) -> String {
        var out = ""
        var chars = Array(data)[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            guard c == ">", let next = chars.first else {
                out.append(c)
                continue
            }
            chars = chars.dropFirst()
            if next == "<" { out.append(">") } else if next == "=" { out.append("~") }
        }
        return out
    }

    static func unhex(_ text: String, _ escape: Character) -> String {
        var bytes: [UInt8] = []
        var chars = Array(text)[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            if c == escape, chars.count >= 2, let b = UInt8(String(chars.prefix(2)), radix: 16) {
                bytes.append(b)
                chars = chars.dropFirst(2)
            } else {
                bytes.append(contentsOf: Array(String(c).utf8))
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
