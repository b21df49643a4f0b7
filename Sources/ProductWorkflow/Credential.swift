import Credentials
import RecordStore

/// A user name and the password typed for one action. Never stored; the password lives only as
/// long as the action that needs it.
public struct Credential: Sendable {
    public var userName: String
    public var password: String
    /// Signed in earlier with the password (a dashboard session): the password is not asked again,
    /// but the user's role and active state are, on every action. Never enough to sign a release.
    public private(set) var isSession = false

    public init(userName: String, password: String) {
        self.userName = userName
        self.password = password
    }

    /// A user the caller has already authenticated with their password (SessionBook in WebEdge).
    public static func session(userName: String) -> Credential {
        var credential = Credential(userName: userName, password: "")
        credential.isSession = true
        return credential
    }
}

/// Who may do what (docs/products.md). Reading needs no role.
public enum Permission: String, Sendable, CaseIterable {
    case manageUsers = "managing users"
    case createProduct = "creating a product"
    case enterLabValues = "entering lab values"
    case release = "releasing a product"
    case printLabels = "printing labels"
    case acknowledgeAlarm = "acknowledging an alarm"
    case changeRunPresets = "changing a run's presets"
    case loosenRunAlarmLines = "loosening a run's warning or alarm lines"
    case signIn = "signing in"

    public var allowedRoles: [UserRole] {
        switch self {
        case .acknowledgeAlarm, .signIn: [.operator, .lab, .supervisor]
        case .changeRunPresets: [.operator, .supervisor]
        case .manageUsers, .loosenRunAlarmLines: [.supervisor]
        case .createProduct, .enterLabValues, .release, .printLabels: [.lab, .supervisor]
        }
    }
}
