import Foundation
import LabelPrinting
import Labels
import RecordStore
import WorkflowSettings

public enum LabelFormat: String, Sendable, CaseIterable {
    /// For Zebra-type printers, which draw the Code 128 symbols themselves.
    case zpl
    /// Previews whose symbols come from libzint.
    case pdf, svg
}

public enum LabelDestination: Sendable {
    case directory(String)
    case printer(PrinterAddress)
}

/// One label produced: which unit, and where it went.
public struct LabelOutput: Sendable {
    public var unitRef: Int64
    public var unitLine: String
    public var location: String
    public var contentSHA256: String
}

extension ProductWorkflow {
    public var timeZoneInUse: TimeZone { timeZone }

    public var labelStock: LabelStock {
        LabelStock(
            widthPoints: settings.labels.widthInches * LabelStock.pointsPerInch,
            heightPoints: settings.labels.heightInches * LabelStock.pointsPerInch,
            resolution: PrinterResolution(rawValue: settings.labels.printerDotsPerInch) ?? .dpi203)
    }

    /// Label content of every unit of a released product (refused before release).
    public func labelContents(of state: ProductState) throws(ProductWorkflowError) -> [(unit: UnitRow, content: LabelContent)] {
        guard state.release != nil else { throw .notReleased(product: state.product.din) }
        let composer = LabelComposer(settings: settings, timeZone: timeZone)
        return try state.units.map { unit throws(ProductWorkflowError) in (unit, try composer.content(state: state, unit: unit)) }
    }

    /// Renders one unit's label.
    public func render(_ content: LabelContent, as format: LabelFormat) throws(ProductWorkflowError) -> [UInt8] {
        do {
            let layout = try LabelLayout(content: content, stock: labelStock)
            switch format {
            case .zpl: return Array(ZPL.render(layout).utf8)
            case .pdf: return try PDF.render(layout)
            case .svg: return Array(try SVG.render(layout).utf8)
            }
        } catch let error as ProductWorkflowError {
            throw error
        } catch {
            throw .labelFailed("\(error)")
        }
    }

    /// Labels for every unit: to files, or (ZPL) to a printer. Only for a released product whose label
    /// content is still what was signed; every label produced is recorded (with the SHA-256 of its bytes)
    /// against that release, and every failure after sign-in is an audit entry.
    ///
    /// While labels printed for the current values are still valid, printing again is a reprint and
    /// needs `reprintReason`; the earlier prints are then recorded as superseded by the new ones.
    /// Prints of values since corrected are superseded automatically, the correction as their reason.
    public func produceLabels(
        product: ProductRow, format: LabelFormat, destination: LabelDestination, by credential: Credential,
        reprintReason: String? = nil
    ) async throws(ProductWorkflowError) -> [LabelOutput] {
        let actor = try await authenticate(credential, for: .printLabels, entity: "product", entityID: String(product.id))
        do {
            return try await produceLabels(
                product: product, format: format, destination: destination, actor: actor, reprintReason: reprintReason)
        } catch {
            try? await store.recordRefusal(
                actor: actor.name, action: "refused.printLabels", entity: "product", entityID: String(product.id),
                reason: error.description, atUnixMilliseconds: now())
            throw error
        }
    }

    private func produceLabels(
        product: ProductRow, format: LabelFormat, destination: LabelDestination, actor: UserRow, reprintReason: String?
    ) async throws(ProductWorkflowError) -> [LabelOutput] {
        let state = try await state(of: product)
        let contents = try labelContents(of: state)
        guard let release = state.release else { throw .notReleased(product: product.din) }
        // Asked before anything is printed (the store asks again when it records the prints).
        let stillValid = state.labelPrints.filter { print in
            state.labelStatus(of: print) == .printed && state.units.contains { $0.id == print.unitRef }
        }
        if !stillValid.isEmpty, (reprintReason ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw .store(.reprintReasonRequired(productRef: product.id, validPrints: stillValid.map(\.id)))
        }
        // The label says what was signed, or nothing is printed (a configuration change since the
        // release, say a new storage text, needs a new signature).
        guard state.releaseSummarySHA256(timeZone: timeZone) == release.signedContentSHA256 else {
            throw .changedSinceShown(product: product.din)
        }
        var rendered: [(UnitRow, LabelContent, [UInt8])] = []
        for (unit, content) in contents { rendered.append((unit, content, try render(content, as: format))) }
        var outputs: [LabelOutput] = []
        let destinationText: String
        switch destination {
        case .directory(let directory):
            destinationText = "file:" + directory
            for (unit, content, bytes) in rendered {
                let path = (directory as NSString).appendingPathComponent(
                    "\(product.din)-\(unit.values.divisionCode).\(format.rawValue)")
                do {
                    try await Self.writeFile(path, bytes)
                } catch {
                    throw .labelFailed("cannot write \(path): \(error)")
                }
                outputs.append(
                    LabelOutput(unitRef: unit.id, unitLine: content.unitLine, location: path, contentSHA256: Digest.sha256Hex(bytes)))
            }
        case .printer(let address):
            guard format == .zpl else { throw .labelFailed("a label printer takes ZPL, not \(format.rawValue)") }
            destinationText = "printer:\(address)"
            // One connection for all units: the printer prints them in order.
            do {
                try await LabelPrinter.send(bytes: rendered.flatMap(\.2), host: address.host, port: address.port)
            } catch {
                throw .labelFailed("\(error)")
            }
            for (unit, content, bytes) in rendered {
                outputs.append(
                    LabelOutput(
                        unitRef: unit.id, unitLine: content.unitLine, location: "printer \(address)",
                        contentSHA256: Digest.sha256Hex(bytes)))
            }
        }
        // Refused if another release or new values arrived meanwhile: the refusal is then audited,
        // naming labels that were produced but are not recorded as valid.
        _ = try await wrap {
            try await store.recordLabelPrints(
                productRef: product.id, signatureRef: release.id, prints: outputs.map { ($0.unitRef, $0.contentSHA256) },
                format: format.rawValue, destination: destinationText, by: actor.name, reprintReason: reprintReason,
                atUnixMilliseconds: now())
        }
        return outputs
    }

    /// Records that labels were destroyed: the given prints (ids as `product show` lists them), or every
    /// print of the product still valid. A reason is required; the void is audited, and so is a refusal.
    public func voidLabels(
        product: ProductRow, prints: [Int64]? = nil, reason: String, by credential: Credential
    ) async throws(ProductWorkflowError) -> [LabelPrintFateRow] {
        let actor = try await authenticate(credential, for: .printLabels, entity: "product", entityID: String(product.id))
        do throws(ProductWorkflowError) {
            guard !reason.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ProductWorkflowError.reasonRequired(action: "voiding labels")
            }
            return try await wrap {
                try await store.voidLabelPrints(
                    productRef: product.id, printRefs: prints, reason: reason, by: actor.name, atUnixMilliseconds: now())
            }
        } catch {
            try? await store.recordRefusal(
                actor: actor.name, action: "refused.voidLabels", entity: "product", entityID: String(product.id),
                reason: error.description, atUnixMilliseconds: now())
            throw error
        }
    }

    /// Written beside, then renamed: a reader never sees half a label. On a GCD thread (blocking I/O).
    static func writeFile(_ path: String, _ bytes: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        let directory = (path as NSString).deletingLastPathComponent
                        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
                    })
            }
        }
    }
}
