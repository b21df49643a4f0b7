import ApheresisCore
import ArgumentParser
import Foundation
import ProductWorkflow
import Quantities
import RecordStore
import WorkflowSettings

struct ProductCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "product", abstract: "Products of closed runs: create, lab values, show, release, labels.",
        subcommands: [Create.self, Lab.self, Show.self, List.self, Release.self, Labels.self, VoidLabels.self])

    /// The run's telemetry completeness and each gap, as the release screen shows them.
    static func completenessLines(_ c: TelemetryCompleteness, gaps: [RunGapRow]) -> String {
        var text = "Run telemetry: " + (c.isComplete ? "complete, " : "INCOMPLETE, ") + c.summary + "\n"
        for gap in gaps { text += "  gap: \(gap.description)\n" }
        return text
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the product of a closed run and assign its DIN.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The run's id (see `apheresisctl runs`).") var run: Int64
        @Option(help: "The acting user (lab or supervisor).") var user: String
        func run() async throws {
            let workflow = try await store.workflow()
            let credential = Credential(userName: user, password: try await Console.password("Password for \(user): "))
            let product = try await refusing { try await workflow.createProduct(runRef: run, by: credential) }
            let state = try await refusing { try await workflow.state(of: product) }
            let din = state.din.map { "\($0.eyeReadable) \($0.flags) [\($0.keyboardCheckCharacter)]" } ?? product.din
            Console.out("product \(product.id) created for run \(run): DIN \(din)")
        }
    }

    struct Lab: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enter the lab's values; the product is computed from them.",
            discussion: "A second entry corrects the first: it needs --reason, and any release must be signed again.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Product id or DIN.") var product: String
        @Option(help: "The acting user (lab or supervisor).") var user: String
        @Option(name: .customLong("wbc"), help: "Product white cell count, 10^9/L (= 10^3/uL).") var wbcGigaPerLitre: Double?
        @Option(name: .customLong("cd3-percent"), help: "CD3+ as % of leukocytes (flow cytometry).") var cd3Percent: Double?
        @Option(name: .customLong("cd3-per-ul"), help: "Or: absolute CD3+ count, cells/uL.") var cd3PerMicrolitre: Double?
        @Option(name: .customLong("viability-percent"), help: "Viability, %.") var viabilityPercent: Double?
        @Option(name: .customLong("qc-ml"), help: "Volume drawn off for QC samples, mL.") var qcMillilitres: Double?
        @Option(name: .customLong("recovery-percent"), help: "Measured post-reduction recovery, % (else 100 % is assumed).")
        var recoveryPercent: Double?
        @Option(name: .customLong("reduced-ml"), help: "Reduce to this volume instead of the configured one, mL.")
        var reducedMillilitres: Double?
        @Option(help: "Why (required for a correction).") var reason: String?

        func run() async throws {
            let entry = LabEntry(
                wbcGigaPerLitre: wbcGigaPerLitre, cd3Percent: cd3Percent, cd3PerMicrolitre: cd3PerMicrolitre,
                viabilityPercent: viabilityPercent, qcMillilitres: qcMillilitres, recoveryPercent: recoveryPercent,
                reducedMillilitres: reducedMillilitres)
            let values = try await refusing { try entry.values(named: .commandLine) }
            let workflow = try await store.workflow()
            let row = try await refusing { try await workflow.findProduct(product) }
            let credential = Credential(userName: user, password: try await Console.password("Password for \(user): "))
            let state = try await refusing {
                try await workflow.enterLabValues(product: row, values: values, by: credential, reason: reason)
            }
            Console.out(state.releaseSummary(timeZone: workflow.timeZoneInUse), terminator: "")
            if let completeness = state.runCompleteness {
                Console.out(ProductCommand.completenessLines(completeness, gaps: state.runGaps), terminator: "")
            }
            Console.out("status: \(state.status.rawValue)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a product: values, units, release, labels.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Product id or DIN.") var product: String
        func run() async throws {
            let workflow = try await store.workflow()
            let row = try await refusing { try await workflow.findProduct(product) }
            let state = try await refusing { try await workflow.state(of: row) }
            Console.out(state.releaseSummary(timeZone: workflow.timeZoneInUse), terminator: "")
            if let completeness = state.runCompleteness {
                Console.out(ProductCommand.completenessLines(completeness, gaps: state.runGaps), terminator: "")
            }
            Console.out("status: \(state.status.rawValue)")
            if let release = state.release {
                Console.out(
                    "released by \(release.userFullName) (\(release.userName)) at "
                        + ProductState.localTime(release.signedAtUnixMilliseconds, workflow.timeZoneInUse)
                        + ", signed content SHA-256 \(release.signedContentSHA256)")
            }
            let divisions = Dictionary(state.units.map { ($0.id, $0.values.divisionCode) }, uniquingKeysWith: { a, _ in a })
            for print in state.labelPrints {
                let unit = divisions[print.unitRef].map { "unit \($0)" } ?? "unit \(print.unitRef) (earlier values)"
                var line =
                    "label print \(print.id): \(unit) by \(print.printedBy) at "
                    + ProductState.localTime(print.printedAtUnixMilliseconds, workflow.timeZoneInUse)
                    + " as \(print.format) to \(print.destination): \(state.labelStatus(of: print).rawValue)"
                if let fate = state.fate(of: print) {
                    line += fate.replacedByPrintRef.map { " by print \($0)" } ?? ""
                    line += " (\(fate.recordedBy), \(ProductState.localTime(fate.recordedAtUnixMilliseconds, workflow.timeZoneInUse)): \(fate.reason))"
                }
                Console.out(line)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List products.")
        @OptionGroup var store: StoreOptions
        func run() async throws {
            let workflow = try await store.workflow()
            var rows: [[String]] = []
            for product in try await workflow.store.products() {
                let state = try await refusing { try await workflow.state(of: product) }
                rows.append([String(product.id), product.din, String(product.runRef), String(state.units.count), state.status.rawValue])
            }
            Console.out(Table.render(["ID", "DIN", "RUN", "UNITS", "STATUS"], rows))
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release a product: an electronic signature with the meaning \"released\".",
            discussion: "Shows what is signed, then asks for the signer's password.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Product id or DIN.") var product: String
        @Option(help: "The signer (lab or supervisor).") var user: String
        @Option(
            name: .customLong("acknowledge-incomplete-run"),
            help: ArgumentHelp(
                "Release although the run's telemetry has gaps, for this reason (audited with the gaps).", valueName: "reason"))
        var acknowledgeIncompleteRun: String?
        func run() async throws {
            let workflow = try await store.workflow()
            let row = try await refusing { try await workflow.findProduct(product) }
            let state = try await refusing { try await workflow.state(of: row) }
            // What is shown here is what is signed: its hash goes with the signature, and a record that
            // changes before the password is entered makes the signature fail.
            Console.out(state.releaseSummary(timeZone: workflow.timeZoneInUse), terminator: "")
            if let completeness = state.runCompleteness {
                Console.out(ProductCommand.completenessLines(completeness, gaps: state.runGaps), terminator: "")
                // Refused before the password is asked: nothing to sign without the acknowledgement.
                if !completeness.isComplete, (acknowledgeIncompleteRun ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    Console.error(
                        "refused: " + ProductWorkflowError.incompleteRunNotAcknowledged(product: row.din, completeness: completeness.summary).description)
                    throw ExitCode(1)
                }
            }
            let shown = state.releaseSummarySHA256(timeZone: workflow.timeZoneInUse)
            let credential = Credential(
                userName: user, password: try await Console.password("Sign as \(user), meaning \"released\". Password: "))
            let signature = try await refusing {
                try await workflow.release(
                    product: row, shownSummarySHA256: shown, by: credential, acknowledgingIncompleteRun: acknowledgeIncompleteRun)
            }
            Console.out(
                "released by \(signature.userFullName) (\(signature.userName)) at "
                    + ProductState.localTime(signature.signedAtUnixMilliseconds, workflow.timeZoneInUse)
                    + "; signed content SHA-256 \(signature.signedContentSHA256)")
        }
    }

    struct Labels: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Labels for every unit of a released product: ZPL to a printer or files, or PDF/SVG previews.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Product id or DIN.") var product: String
        @Option(help: "The acting user (lab or supervisor).") var user: String
        @Option(help: "zpl, pdf or svg.") var format: String = "zpl"
        @Option(help: ArgumentHelp("Write one file per unit into this directory.", valueName: "directory")) var output: String?
        @Option(help: ArgumentHelp("Send ZPL to this raw printer port (host:port); default: the configured printer.", valueName: "host:port"))
        var printer: String?
        @Flag(help: "Print again while earlier labels of these values are still valid; they become superseded (needs --reason).")
        var reprint = false
        @Option(help: "Why the labels are reprinted (with --reprint).") var reason: String?

        func run() async throws {
            guard let format = LabelFormat(rawValue: format) else {
                Console.error("\"\(format)\" is not a label format; use zpl, pdf or svg")
                throw ExitCode(64)
            }
            if reprint != (reason != nil) {
                Console.error(reprint ? "--reprint needs --reason: say why the labels are printed again" : "--reason goes with --reprint")
                throw ExitCode(64)
            }
            let workflow = try await store.workflow()
            let destination: LabelDestination
            if let output {
                let absolute = output.hasPrefix("/") ? output : FileManager.default.currentDirectoryPath + "/" + output
                destination = .directory(absolute)
            } else if let target = printer ?? workflow.settings.labels.printer {
                guard format == .zpl else {
                    Console.error("a printer takes ZPL; write \(format.rawValue) previews with --output DIR")
                    throw ExitCode(64)
                }
                guard let printer = PrinterAddress(target) else {
                    Console.error("--printer: " + (PrinterAddress.problem(with: target) ?? "\"\(target)\" is not host:port"))
                    throw ExitCode(64)
                }
                destination = .printer(printer)
            } else {
                Console.error("say where the labels go: --output DIR or --printer HOST:PORT (or configure [labels] printer)")
                throw ExitCode(64)
            }
            let row = try await refusing { try await workflow.findProduct(product) }
            let credential = Credential(userName: user, password: try await Console.password("Password for \(user): "))
            let outputs = try await refusing {
                try await workflow.produceLabels(
                    product: row, format: format, destination: destination, by: credential, reprintReason: reason)
            }
            for output in outputs { Console.out("\(output.unitLine): \(output.location)") }
        }
    }

    struct VoidLabels: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "void-labels", abstract: "Record that printed labels were destroyed.",
            discussion: "Voids the given prints (ids from `product show`), or every print of the product still valid. Audited.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "Product id or DIN.") var product: String
        @Option(help: "The acting user (lab or supervisor).") var user: String
        @Option(name: .customLong("print"), help: "A label print id to void (repeat for more); default: all still valid.")
        var prints: [Int64] = []
        @Option(help: "Why the labels were destroyed.") var reason: String

        func run() async throws {
            let workflow = try await store.workflow()
            let row = try await refusing { try await workflow.findProduct(product) }
            let credential = Credential(userName: user, password: try await Console.password("Password for \(user): "))
            let voided = try await refusing {
                try await workflow.voidLabels(product: row, prints: prints.isEmpty ? nil : prints, reason: reason, by: credential)
            }
            for fate in voided { Console.out("label print \(fate.labelPrintRef): voided (\(fate.reason))") }
        }
    }
}

extension Console {
    static func out(_ text: String, terminator: String) {
        out(terminator.isEmpty && text.hasSuffix("\n") ? String(text.dropLast()) : text)
    }
}
