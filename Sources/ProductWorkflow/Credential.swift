import Credentials
import RecordStore

/// A user name and the password typed for one action. Never stored; the password lives only as
/// long as the action that needs it.
public struct Credential: Sendable {
    public var userName: String
    public var password: String
    public init(userName: String, password: String) {
        self.userName = userName
        self.password = password
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

    public var allowedRoles: [UserRole] {
        switch self {
        case .acknowledgeAlarm: [.operator, .lab, .supervisor]
        case .manageUsers: [.supervisor]
        case .createProduct, .enterLabValues, .release, .printLabels: [.lab, .supervisor]
        }
    }
}
