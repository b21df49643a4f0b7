import FuzzEntries

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAPIBodies(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzEntries.apiBodies(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
