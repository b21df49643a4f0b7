/// The one version of apheresisd, apheresisctl and optia-sim: each prints it for `--version`.
///
/// To release, bump `string` here (and nowhere else); docs/daemon.md, "Version", says when.
/// Numbering: 0.ISSUE.PATCH while the repository is built issue by issue.
public enum ApheresisVersion {
    public static let string = "0.16.0"
}
