import FuzzEntries

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntries.configurationChecker(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
