import FuzzEntries

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzE1381(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntries.e1381Receiver(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
