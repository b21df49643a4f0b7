import Testing
import TextFormats

/// One rule for `host:port` everywhere (issue 12): [api] listen, --api-listen, labels.printer,
/// --printer and the API's printer. Before, five rules disagreed: `::1` was read as host `::`
/// port 1, a bare printer host was refused in the configuration and accepted on the command line.
/// DaemonConfigurationTests checks that the configuration reads addresses by this rule.
@Suite struct HostAndPortTests {
    func parsed(_ text: String, defaultPort: Int? = nil, ports: ClosedRange<Int> = 1...65535) -> HostAndPort? {
        try? HostAndPort.parse(text, defaultPort: defaultPort, ports: ports).get()
    }

    func problem(_ text: String, defaultPort: Int? = nil, ports: ClosedRange<Int> = 1...65535) -> String {
        if case .failure(let p) = HostAndPort.parse(text, defaultPort: defaultPort, ports: ports) { return p.description }
        return "(accepted)"
    }

    @Test func addressesPeopleWrite() {
        #expect(parsed("127.0.0.1:8470") == HostAndPort(host: "127.0.0.1", port: 8470))
        #expect(parsed("printer.ward-4.example:9100") == HostAndPort(host: "printer.ward-4.example", port: 9100))
        #expect(parsed("[::1]:8470") == HostAndPort(host: "::1", port: 8470))
        #expect(parsed("[fe80::1%eth0]:9100")?.host == "fe80::1%eth0")
        #expect(parsed(" 10.1.2.40:9100 ") == HostAndPort(host: "10.1.2.40", port: 9100))
        // Spaces and tabs around it go (a no-break space too, pasted from a document); a line break stays.
        #expect(parsed("\t10.1.2.40:9100\u{00A0}") == HostAndPort(host: "10.1.2.40", port: 9100))
        #expect(parsed("10.1.2.40:9100\n") == nil)
        #expect(parsed("10.1.2.40", defaultPort: 9100) == HostAndPort(host: "10.1.2.40", port: 9100))
        #expect(parsed("[::1]", defaultPort: 9100) == HostAndPort(host: "::1", port: 9100))
        #expect(parsed("127.0.0.1:0", ports: 0...65535)?.port == 0)
        #expect(HostAndPort(host: "::1", port: 8470).description == "[::1]:8470")
        #expect(HostAndPort(host: "127.0.0.1", port: 8470).description == "127.0.0.1:8470")
    }

    @Test func whatIsWrongIsSaid() {
        #expect(problem("::1") == "\"::1\" looks like an IPv6 address: put it in brackets, such as \"[::1]:8470\"")
        #expect(problem("::1", defaultPort: 9100).contains("put it in brackets"))
        #expect(problem("8470").contains("has no port"))
        #expect(problem(":8470").contains("has no host"))
        #expect(problem("printer:").contains("has no port after the colon"))
        #expect(problem("printer:http").contains("has \"http\" where the port number goes"))
        #expect(problem("host:99999").contains("has port 99999, outside 1-65535"))
        #expect(problem("127.0.0.1:0").contains("has port 0, outside 1-65535"))
        #expect(problem("[::1").contains("does not close it"))
        #expect(problem("[::1]8470").contains("after the IPv6 address"))
        #expect(problem("").contains("is empty"))
        #expect(problem(" \t ").contains("is empty"))
    }
}
