/// One entry per surface that reads untrusted input, each taking any bytes. A broken invariant is
/// a `precondition` failure with a message starting with the surface's name, so that libFuzzer
/// reports it as a crash and a regression test as a failed child process; an input the surface
/// refuses is an ordinary outcome. The fuzz package (Fuzz/) calls these from
/// `LLVMFuzzerTestOneInput`, FuzzRegressionTests replays the inputs fuzzing found.
public enum FuzzEntries {}

/// What a decoder made of an input.
public enum DecodeOutcome: Hashable, Sendable {
    case accepted
    /// Refused, with the message a person would read.
    case rejected(String)

    public var isAccepted: Bool { self == .accepted }
}

/// The fuzz targets by the name `make fuzz`, the corpora and the regression inputs use.
public enum FuzzTarget: String, CaseIterable, Codable, Sendable {
    case e1381
    case e1394
    case exportCSV = "export-csv"
    case config
    case apiBodies = "api-bodies"

    /// Runs the target's entry on `data`; traps when an invariant breaks.
    public func run(_ data: [UInt8]) {
        switch self {
        case .e1381: _ = FuzzEntries.e1381Receiver(data)
        case .e1394: _ = FuzzEntries.e1394Decoder(data)
        case .exportCSV: _ = FuzzEntries.exportCSV(data)
        case .config: _ = FuzzEntries.configurationChecker(data)
        case .apiBodies: _ = FuzzEntries.apiBodies(data)
        }
    }
}

extension FuzzEntries {
    // The forms libFuzzer's buffer comes in; every entry works on its own copy.
    @discardableResult
    public static func e1381Receiver(_ data: UnsafeRawBufferPointer) -> E1381Summary { e1381Receiver(Array(data)) }
    @discardableResult
    public static func e1394Decoder(_ data: UnsafeRawBufferPointer) -> DecodeOutcome { e1394Decoder(Array(data)) }
    @discardableResult
    public static func exportCSV(_ data: UnsafeRawBufferPointer) -> DecodeOutcome { exportCSV(Array(data)) }
    @discardableResult
    public static func configurationChecker(_ data: UnsafeRawBufferPointer) -> ConfigurationSummary {
        configurationChecker(Array(data))
    }
    @discardableResult
    public static func apiBodies(_ data: UnsafeRawBufferPointer) -> DecodeOutcome { apiBodies(Array(data)) }
}
