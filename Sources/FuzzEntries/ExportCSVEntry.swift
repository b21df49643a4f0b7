import SeparatorProtocol

extension FuzzEntries {
    /// One export file through the optia dialect's reader, made text the way the daemon's export
    /// ingest makes it (invalid UTF-8 replaced). Refusals must name a line of the file; a run that
    /// reads must write back (ExportCSV.encode, as apheresisctl export does) to a file that reads
    /// to the same run.
    @discardableResult
    public static func exportCSV(_ data: [UInt8]) -> DecodeOutcome {
        let dialect = SeparatorDialect.optiaStyle
        let text = String(decoding: data, as: UTF8.self)
        let run: ExportRun
        do {
            run = try dialect.decodeExport(text)
        } catch {
            // An editor's count: lines end at LF, CR LF or a lone CR; one more for a last line without its end.
            let lines = text.utf8.count { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") } + 1
            // A missing #END is reported on the line after the last, where it belongs.
            let last = error.reason == .incomplete ? lines + 1 : lines
            precondition((1...last).contains(error.line), "export-csv: error on line \(error.line) of \(lines): \(error)")
            precondition(error.column.map { $0 >= 1 } ?? true, "export-csv: error in column \(error.column ?? 0): \(error)")
            return .rejected(error.description)
        }
        let written = ExportCSV.encode(run)
        do {
            let again = try dialect.decodeExport(written)
            precondition(again == run, "export-csv: a run read from a file writes back as a different run:\n\(run)\n\(again)")
        } catch {
            preconditionFailure("export-csv: a run read from a file writes back to a file that does not read: \(error)")
        }
        return .accepted
    }
}
