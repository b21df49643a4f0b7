import ApheresisCore
import Foundation
import ProductWorkflow
import Quantities

/// The JSON bodies the API's writes take, read and checked by the routes' own code up to where a
/// route needs the store or a user: public for the fuzz entries (Sources/FuzzEntries), which feed
/// them any bytes without a server.
public enum APIRequestBody: String, CaseIterable, Sendable {
    /// `POST /api/v1/products/{id}/lab`: decoded, the values checked, then the workflow's plausibility check.
    case lab
    /// `POST /api/v1/products/{id}/release`: decoded, the meaning checked.
    case release
    /// `POST /api/v1/products/{id}/labels/print`: decoded (the printer is checked against the configuration).
    case print
    /// `POST /api/v1/session`: decoded, both user and password present.
    case signIn = "sign_in"
    /// `POST /api/v1/alarms/{id}/acknowledge`: decoded.
    case acknowledge
    /// `POST /api/v1/runs/{id}/presets`: decoded, reason and known keys checked, then applied to the
    /// pediatric profile as the run's watcher applies them to its own.
    case presetChange = "preset_change"

    /// Nil when the route would go on with `body`; else the refusal the client gets (422), in its words.
    /// Throws only what a route would answer with a 500, which no body may cause.
    public func refusal(_ body: Data) throws -> String? {
        do {
            switch self {
            case .lab:
                let request: APIRoutes.LabRequest = try APIRoutes.decode(body)
                let problems = LabPlausibility.problems(try request.entry.values(named: .json))
                return problems.isEmpty ? nil : problems.map(\.reason).joined(separator: "; ")
            case .release:
                let request: APIRoutes.ReleaseRequest = try APIRoutes.decode(body)
                try request.checkMeaning()
            case .print:
                let _: APIRoutes.PrintRequest = try APIRoutes.decode(body)
            case .signIn:
                let request: SessionRoutes.SignIn = try APIRoutes.decode(body)
                if request.credential == nil { return SessionRoutes.SignIn.incomplete }
            case .acknowledge:
                let _: UnitRoutes.AcknowledgeRequest = try APIRoutes.decode(body)
            case .presetChange:
                let request: UnitRoutes.PresetChangeRequest = try APIRoutes.decode(body)
                _ = try LimitProfile.pediatricCMNC.applying(request.checked().changes, totalBloodVolume: .millilitres(2400))
            }
            return nil
        } catch let error as APIRoutes.BadBody {
            return error.message
        } catch let error as ProductWorkflowError {
            return error.description
        } catch let error as PresetChangeError {
            return error.message
        }
    }
}
