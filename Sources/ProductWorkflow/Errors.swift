import ApheresisCore
import RecordStore

/// Why the product workflow refused something. Every case says what to do about it.
public enum ProductWorkflowError: Error, Sendable, CustomStringConvertible {
    case notConfigured(key: String)
    /// Unknown user or wrong password: the reply does not say which (the audit entry does).
    case notAuthenticated
    case userDisabled(String)
    case signerRequired
    case passwordRequiredToSign
    case changedSinceShown(product: String)
    /// The run's telemetry has gaps: a release needs `acknowledgingIncompleteRun` with a reason.
    case incompleteRunNotAcknowledged(product: String, completeness: String)
    case implausibleRunValue(runRef: Int64, what: String)
    case noActiveAlarm(Int64)
    case roleNotAllowed(user: String, role: UserRole, action: String, allowed: [UserRole])
    case firstUserMustBeSupervisor
    case passwordTooShort(minimum: Int)
    case invalidUserName(String)
    case unknownRun(Int64)
    case runHasNoCollectedVolume(runRef: Int64, runID: String)
    case unknownProduct(String)
    case missingLabValues([String])
    case invalidLabValue(field: String, reason: String)
    case reasonRequired(action: String)
    case noLabValues(product: String)
    case notReleased(product: String)
    case computation(ProductComputationError)
    case identification(String)
    case labelFailed(String)
    case store(ProductStoreError)
    /// The database itself failed (disk, lock): nothing was changed.
    case storeFailure(String)

    public var description: String {
        switch self {
        case .notConfigured(let key):
            "\(key) is not set in the configuration file; products cannot be identified without it (docs/configuration.md)"
        case .notAuthenticated: "the user name or the password is wrong; nothing was changed"
        case .userDisabled(let name): "user \(name) is disabled"
        case .passwordRequiredToSign: "a release is an electronic signature: give your password with it, a signed-in session is not enough"
        case .signerRequired: "users exist already: a supervisor must sign for a new one (--by SUPERVISOR)"
        case .changedSinceShown(let product):
            "product \(product) changed after it was shown for signing (new lab values or configuration); review it and sign again"
        case .incompleteRunNotAcknowledged(let product, let completeness):
            "product \(product) comes from a run whose telemetry is incomplete (\(completeness)): limits were not judged "
                + "in the gaps. Releasing it needs an explicit acknowledgement with a reason (apheresisctl: --acknowledge-incomplete-run "
                + "REASON; API: \"acknowledge_incomplete_run\"), which is audited"
        case .noActiveAlarm(let id): "no active alarm with id \(id) (it may have cleared)"
        case .implausibleRunValue(let ref, let what):
            "run \(ref) reports an implausible \(what); check the device and its export file before making a product"
        case .roleNotAllowed(let user, let role, let action, let allowed):
            "\(user) is \(role.rawValue == "operator" ? "an" : "a") \(role.rawValue); \(action) needs the role "
                + allowed.map(\.rawValue).joined(separator: " or ")
        case .firstUserMustBeSupervisor: "the first user must be a supervisor (who can then add the others)"
        case .passwordTooShort(let minimum): "the password must have at least \(minimum) characters"
        case .invalidUserName(let name):
            "\"\(name)\" is not a user name: use 2 to 32 lower-case letters, digits, '.', '_' or '-'"
        case .unknownRun(let id): "no run with id \(id)"
        case .runHasNoCollectedVolume(let ref, let runID):
            "run \(ref) (\(runID)) has no collected volume in its samples; a product needs one"
        case .unknownProduct(let text): "no product \(text) (give a product id or its 13-character DIN)"
        case .missingLabValues(let fields): "missing lab value\(fields.count == 1 ? "" : "s"): \(fields.joined(separator: ", "))"
        case .invalidLabValue(let field, let reason): "\(field): \(reason)"
        case .reasonRequired(let action): "\(action) changes recorded evidence; give a reason"
        case .noLabValues(let product): "product \(product) has no lab values yet; enter them before release"
        case .notReleased(let product):
            "product \(product) is not released (or its lab values changed after release); labels are printed only for released products"
        case .computation(let error): "the product cannot be computed: \(error.description)"
        case .identification(let text): "ISBT 128: \(text)"
        case .labelFailed(let text): "labels were not produced: \(text)"
        case .store(let error): error.description
        case .storeFailure(let text): "the record store failed, nothing was changed: \(text)"
        }
    }
}
