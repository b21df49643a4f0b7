import FuzzEntries

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExportCSV(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntries.exportCSV(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
