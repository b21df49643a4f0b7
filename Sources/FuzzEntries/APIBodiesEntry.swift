import Foundation
import WebEdge

extension FuzzEntries {
    /// A JSON request body of the HTTP API: the first byte picks the endpoint (its value modulo the
    /// number of kinds, in `APIRequestBody.allCases` order), the rest is the body. It is decoded and
    /// checked by the routes' own code; a refusal must be a 422 with a message, never a 500.
    @discardableResult
    public static func apiBodies(_ data: [UInt8]) -> DecodeOutcome {
        guard let first = data.first else { return .rejected("no endpoint") }
        let kinds = APIRequestBody.allCases
        let kind = kinds[Int(first) % kinds.count]
        let refusal: String?
        do {
            refusal = try kind.refusal(Data(data.dropFirst()))
        } catch {
            preconditionFailure("api-bodies: a \(kind.rawValue) body makes the route fail with a 500: \(error)")
        }
        guard let refusal else { return .accepted }
        precondition(!refusal.isEmpty, "api-bodies: a \(kind.rawValue) body refused without a message")
        return .rejected(refusal)
    }
}
