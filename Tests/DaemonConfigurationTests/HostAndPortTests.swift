import DaemonConfiguration
import Testing

/// `[api] listen` and `labels.printer` are read by HostAndPort's rule (TextFormatsTests test the rule).
@Suite struct HostAndPortConfigurationTests {
    @Test func theConfigurationUsesTheSameRule() {
        let ok = DaemonConfiguration.check(
            text: "format = 1\n[labels]\nprinter = \"10.1.2.40\"\n[api]\nlisten = \"[::1]:8470\"\n", file: "t.toml")
        #expect(ok.isEmpty, "\(ok)")
        let bad = DaemonConfiguration.check(text: "format = 1\n[api]\nlisten = \"::1:8470\"\n", file: "t.toml").map(\.description)
        #expect(bad.contains { $0.contains("line 3") && $0.contains("api.listen") && $0.contains("put it in brackets") }, "\(bad)")
    }
}
