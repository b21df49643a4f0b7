import DaemonConfiguration
import Foundation
import Testing

/// `[audit]`: the audit key file and the anchor file (docs/configuration.md).
@Suite("[audit]")
struct AuditSettingsTests {
    @Test func theSectionIsRead() throws {
        let config = try DaemonConfiguration.load(
            path: try temporaryFile(
                """
                format = 1
                [audit]
                key_file = "/etc/apheresisd/audit.key"
                anchor_file = "/var/lib/apheresisd/audit-anchor/heads.log"
                append_only_attribute = true
                """),
            environment: [:])
        #expect(
            config.audit
                == AuditSettings(
                    keyFile: "/etc/apheresisd/audit.key", anchorFile: "/var/lib/apheresisd/audit-anchor/heads.log",
                    appendOnlyAttribute: true))
        let none = try DaemonConfiguration.load(path: try temporaryFile("format = 1\n"), environment: [:])
        #expect(none.audit == AuditSettings())
    }

    @Test func problemsAreNamedWithTheirLines() {
        #expect(
            summary(
                """
                format = 1
                [audit]
                key_file = "audit.key"
                anchor_file = "/var/lib/apheresisd/"
                append_only_attribute = "yes"
                key_fil = "/x"
                """) == [
                    "invalidValue 3 audit.key_file", "invalidValue 4 audit.anchor_file",
                    "wrongType 5 audit.append_only_attribute", "unknownKey 6 audit.key_fil",
                ])
        let text = problems("format = 1\n[audit]\nkey_fil = \"/x\"\n").map(\.message)
        #expect(text == ["\"key_fil\" is not a setting of [audit]; did you mean key_file?"])
    }
}
