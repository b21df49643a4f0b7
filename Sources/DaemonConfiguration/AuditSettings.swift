import TOMLKit

/// `[audit]`: where the audit trail's key comes from and where its heads are anchored
/// (docs/configuration.md, docs/products.md). Production delivers the key as the systemd
/// credential `audit-key`, which wins over `key_file`; with neither, a key is made on first use
/// beside the database (the demo's way, not for production).
public struct AuditSettings: Sendable, Equatable {
    /// A key file readable by the service user only (mode 0600 or 0400), at least 32 bytes.
    public var keyFile: String?
    /// The append-only file of chain heads; nil: `<database directory>/audit-anchor/<database name>.heads`.
    public var anchorFile: String?
    /// Try to set the anchor file's append-only attribute (`chattr +a`) when it is created; needs
    /// CAP_LINUX_IMMUTABLE, fails quietly without it.
    public var appendOnlyAttribute: Bool

    public init(keyFile: String? = nil, anchorFile: String? = nil, appendOnlyAttribute: Bool = false) {
        self.keyFile = keyFile
        self.anchorFile = anchorFile
        self.appendOnlyAttribute = appendOnlyAttribute
    }
}

struct AuditSettingsReader {
    let checker: Checker
    static let keys = ["key_file", "anchor_file", "append_only_attribute"]

    func read(_ value: TOMLValue?) -> AuditSettings {
        var settings = AuditSettings()
        guard let value else { return settings }
        guard let t = value.table else {
            checker.wrongType("audit", expected: "a table, written [audit] on a line of its own", found: value)
            return settings
        }
        _ = checker.unknownKeys(in: t, at: "audit", known: Self.keys, what: "[audit]")
        if let path = checker.text(t, "key_file", at: "audit") {
            if path.hasPrefix("/") {
                settings.keyFile = path
            } else {
                checker.report(.invalidValue, "audit.key_file", "must be an absolute path such as \"/etc/apheresisd/audit.key\"")
            }
        }
        if let path = checker.text(t, "anchor_file", at: "audit") {
            if !path.hasPrefix("/") {
                checker.report(
                    .invalidValue, "audit.anchor_file", "must be an absolute path such as \"/var/lib/apheresisd/audit-anchor/heads.log\"")
            } else if path.hasSuffix("/") {
                checker.report(.invalidValue, "audit.anchor_file", "must name a file, not a directory")
            } else {
                settings.anchorFile = path
            }
        }
        if let value = t["append_only_attribute"]?.tomlValue {
            if let flag = value.bool {
                settings.appendOnlyAttribute = flag
            } else {
                checker.wrongType("audit.append_only_attribute", expected: "true or false", found: value)
            }
        }
        return settings
    }
}
