/// Journal field names: `[A-Z0-9_]`, at most 64 bytes, not starting with `_`
/// (reserved for fields journald itself adds and a client must not forge)
/// nor with a digit.
public enum JournalField {
    /// Fields this package sets itself; metadata of the same name is renamed
    /// so that it cannot overwrite the record's message or priority.
    static let reserved: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER",
        "ERROR", "MESSAGE_ID", "SYSLOG_FACILITY", "SYSLOG_PID",
    ]

    /// The journal field name for a metadata key ("device_serial" → "DEVICE_SERIAL");
    /// nil when nothing usable remains.
    public static func name(forMetadataKey key: String) -> String? {
        var name = ""
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
            default: name.append("_")
            }
        }
        while name.hasPrefix("_") { name.removeFirst() }
        guard let first = name.first else { return nil }
        if first.isNumber { name = "F_" + name }
        if reserved.contains(name) { name = "META_" + name }
        if name.utf8.count > 64 { name = String(name.prefix(64)) }
        return name
    }
}
