import Testing

/// Every integration suite nests in this one, so that they run one after
/// another: they start real processes that share the machine's
/// pseudo-terminals, ports and two cores, and a test that times protocol
/// answers must not compete with another for them.
@Suite("Integration", .serialized)
enum Integration {}
