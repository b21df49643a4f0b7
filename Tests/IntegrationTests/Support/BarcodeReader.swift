import Foundation

/// Independent readers of what a label shows: poppler rasterises a PDF, zbar reads its barcodes,
/// poppler extracts its text. Nothing of the project's own code is involved in reading.
enum LabelReader {
    struct ToolFailure: Error, CustomStringConvertible { var description: String }

    static func tool(_ path: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tool-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = FileHandle.nullDevice  // zbarimg prints harmless dbus noise
        try p.run()
        p.waitUntilExit()
        let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        // zbarimg exits 4 when it finds nothing: the caller's expectations report that.
        guard p.terminationStatus == 0 || (path.hasSuffix("zbarimg") && p.terminationStatus == 4) else {
            throw ToolFailure(description: "\(path) \(arguments.joined(separator: " ")) exited \(p.terminationStatus)")
        }
        return text
    }

    /// Every barcode on page 1, as `SYMBOLOGY:data` lines from zbarimg.
    static func barcodes(inPDF pdf: URL) throws -> [String] {
        let prefix = pdf.deletingPathExtension().path + "-raster"
        _ = try tool("/usr/bin/pdftoppm", ["-r", "300", "-png", "-singlefile", pdf.path, prefix])
        defer { try? FileManager.default.removeItem(atPath: prefix + ".png") }
        return try tool("/usr/bin/zbarimg", ["-q", prefix + ".png"]).split(separator: "\n").map(String.init)
    }

    static func text(inPDF pdf: URL) throws -> String {
        try tool("/usr/bin/pdftotext", ["-layout", pdf.path, "-"])
    }
}
