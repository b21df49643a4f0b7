extension SeparatorDialect {
    /// The Spectra Optia-style separator of ../shared/spec/separator-interface.md: E1381 framing with
    /// the spec's timeouts, E1394 records with its parameter codes, CSV export files.
    public static let optiaStyle = SeparatorDialect(
        name: "optia",
        summary: "Spectra Optia-style separator: ASTM E1381 frames, E1394 records, CSV export files (separator-interface.md)",
        framing: E1381Receiver.Configuration(),
        decodeMessage: { (text: [UInt8]) throws(MessageDecodingError) -> SeparatorMessage in try E1394Decoder.decode(text) },
        exportFileExtensions: ["csv"],
        decodeExport: { (text: String) throws(ExportDecodingError) -> ExportRun in try ExportCSV.decode(text) }
    )
}
