import FuzzEntries

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzE1394(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntries.e1394Decoder(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
