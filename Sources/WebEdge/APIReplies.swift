import Foundation
import HTTPTypes
import Hummingbird
import ProductWorkflow
import RecordStore
import LiveState

/// Every reply carries the API version (docs/api.md). Bump it only for a change that breaks clients.
public enum APIVersion {
    public static let current = 1
}

/// JSON replies: snake_case keys, ISO 8601 times, numbers unrounded in the unit their key names.
enum Reply {
    static var encoder: JSONEncoder { APIEncoding.encoder }

    struct Envelope<Body: Encodable>: Encodable {
        var apiVersion = APIVersion.current
        var data: Body
    }

    struct Failure: Encodable {
        var apiVersion = APIVersion.current
        var error: Detail
        struct Detail: Encodable {
            var code: String
            var message: String
        }
    }

    static func json<Body: Encodable>(_ body: Body, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? encoder.encode(Envelope(data: body))) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func failure(_ status: HTTPResponse.Status, code: String, _ message: String, headers: HTTPFields = [:]) -> Response {
        let data = (try? encoder.encode(Failure(error: .init(code: code, message: message)))) ?? Data("{}".utf8)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func bytes(_ bytes: [UInt8], contentType: String, filename: String? = nil) -> Response {
        var headers: HTTPFields = [.contentType: contentType]
        headers[HTTPField.Name("X-Api-Version")!] = String(APIVersion.current)
        if let filename { headers[.contentDisposition] = "inline; filename=\"\(filename)\"" }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A refusal of the workflow, with the HTTP status that says what kind it is.
    static func refusal(_ error: ProductWorkflowError) -> Response {
        let (status, code): (HTTPResponse.Status, String) =
            switch error {
            case .notAuthenticated, .userDisabled:
                (.unauthorized, "not_authenticated")
            case .roleNotAllowed, .firstUserMustBeSupervisor, .signerRequired, .passwordRequiredToSign:
                (.forbidden, "not_permitted")
            case .unknownRun, .unknownProduct, .noActiveAlarm:
                (.notFound, "not_found")
            case .noLabValues, .notReleased, .runHasNoCollectedVolume, .store, .changedSinceShown, .implausibleRunValue,
                .incompleteRunNotAcknowledged:
                (.conflict, "conflict")
            case .notConfigured, .storeFailure, .labelFailed:
                (.serviceUnavailable, "unavailable")
            case .missingLabValues, .invalidLabValue, .reasonRequired, .computation, .identification, .passwordTooShort,
                .invalidUserName:
                (.unprocessableContent, "invalid")
            }
        var headers: HTTPFields = [:]
        if status == .unauthorized { headers[.wwwAuthenticate] = "Basic realm=\"apheresisd\", charset=\"UTF-8\"" }
        return failure(status, code: code, error.description, headers: headers)
    }
}

// MARK: - Product JSON (edge units in every key)

struct DINJSON: Encodable {
    var thirteenCharacters: String
    var eyeReadable: String
    var flags: String
    var keyboardCheckCharacter: String
    var dataStructure: String
}

struct LabResultJSON: Encodable {
    var version: Int
    var wbcGigaPerLitre: Double
    var cd3Percent: Double?
    var cd3PerMicrolitre: Double?
    var viabilityPercent: Double
    var qcMillilitres: Double
    var recoveryPercent: Double?
    var reducedMillilitres: Double?
    var enteredBy: String
    var enteredAt: Date
    var reason: String?
}

struct UnitJSON: Encodable {
    var id: Int64
    var divisionCode: String
    var productCode: String
    var volumeMillilitres: Double
    var cd3Cells: Double
    var tncCells: Double
    var cd3CellsPerKilogram: Double?
    var doseFlag: String
    var labelPreviews: [String: String]?
}

struct ComputationJSON: Encodable {
    var id: Int64
    var computedAt: Date
    var collectedVolumeMillilitres: Double
    var qcMillilitres: Double
    var volumeAfterQCMillilitres: Double
    var collectedTncCells: Double
    var collectedCd3Cells: Double
    var collectedCd3PerMicrolitre: Double
    var collectionSufficient: Bool
    var sufficientCd3PerMicrolitre: Double
    var recoveryPercent: Double
    var recoveryMeasured: Bool
    var reducedVolumeMillilitres: Double
    var cd3AfterReductionPerMicrolitre: Double
    var unitVolumeMillilitres: Double
    var unitCount: Int
    var remainderVolumeMillilitres: Double
    var unitCd3BandCells: [Double]
    var viabilityPercent: Double
    var patientMassKilograms: Double?
}

struct SignatureJSON: Encodable {
    var id: Int64
    var userName: String
    var userFullName: String
    var meaning: String
    var signedAt: Date
    var signedContentSha256: String
    var computationId: Int64
}

struct LabelPrintJSON: Encodable {
    var id: Int64
    var signatureId: Int64
    /// printed (still valid), voided or superseded.
    var status: String
    /// Why it was voided or superseded, by whom, when; the print that replaced it.
    var statusReason: String?
    var statusBy: String?
    var statusAt: Date?
    var replacedByPrintId: Int64?
    var unitId: Int64
    var printedBy: String
    var printedAt: Date
    var format: String
    var destination: String
    var contentSha256: String
}

struct ProductJSON: Encodable {
    var id: Int64
    /// The store's id of the run (`/api/v1/runs/{run_ref}`).
    var runRef: Int64
    /// The run's id as the separator names it (`RUN-...`), as everywhere in the API.
    var runId: String?
    var din: DINJSON?
    var productName: String
    var status: String
    var collectedVolumeMillilitres: Double
    var collectedAt: Date
    var patientMassKilograms: Double?
    var createdBy: String
    var createdAt: Date
    var labResults: [LabResultJSON]
    var computation: ComputationJSON?
    var units: [UnitJSON]
    var release: SignatureJSON?
    var signatures: [SignatureJSON]
    var labelPrints: [LabelPrintJSON]
    /// What a signer signs (its SHA-256 is kept with the signature): a release must send this hash back.
    var releaseSummary: String
    var releaseSummarySha256: String
    /// How much of the run's telemetry reached the record; a release of an incomplete run needs
    /// `acknowledge_incomplete_run`.
    var runCompleteness: CompletenessJSON?
    var runGaps: [GapJSON]
}

/// A telemetry gap of a run, as stored when it was found.
struct GapJSON: Encodable {
    var id: Int64
    var kind: String
    var missingCount: Int
    var firstMissingSequence: UInt64?
    var lastMissingSequence: UInt64?
    var runTimeBeforeMinutes: Double?
    var runTimeAfterMinutes: Double?
    var description: String
    var detectedAt: Date

    init(_ row: RunGapRow) {
        id = row.id
        kind = row.gap.kind.rawValue
        missingCount = row.gap.missingCount
        firstMissingSequence = row.gap.firstMissingSequence
        lastMissingSequence = row.gap.lastMissingSequence
        runTimeBeforeMinutes = row.gap.runTimeBefore?.minutes
        runTimeAfterMinutes = row.gap.runTimeAfter?.minutes
        description = row.description
        detectedAt = Date(timeIntervalSince1970: Double(row.detectedAtUnixMilliseconds) / 1000)
    }
}

extension ProductJSON {
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    init(_ s: ProductState, timeZone: TimeZone) {
        let p = s.product
        let released = s.release != nil
        func signature(_ g: SignatureRow) -> SignatureJSON {
            SignatureJSON(
                id: g.id, userName: g.userName, userFullName: g.userFullName, meaning: g.meaning,
                signedAt: Self.date(g.signedAtUnixMilliseconds), signedContentSha256: g.signedContentSHA256,
                computationId: g.computationRef)
        }
        self.init(
            id: p.id, runRef: p.runRef, runId: s.run?.runID,
            din: s.din.map {
                DINJSON(
                    thirteenCharacters: $0.thirteenCharacters, eyeReadable: $0.eyeReadable, flags: $0.flags,
                    keyboardCheckCharacter: String($0.keyboardCheckCharacter), dataStructure: $0.dataStructure)
            },
            productName: p.productName, status: s.status.rawValue, collectedVolumeMillilitres: p.collectedVolumeCubicMetres * 1e6,
            collectedAt: Self.date(p.collectedAtUnixMilliseconds), patientMassKilograms: p.patientMassKilograms,
            createdBy: p.createdBy, createdAt: Self.date(p.createdAtUnixMilliseconds),
            labResults: s.labResults.map { l in
                let v = l.values
                return LabResultJSON(
                    version: l.version, wbcGigaPerLitre: v.wbcCellsPerCubicMetre / 1e12, cd3Percent: v.cd3Fraction.map { $0 * 100 },
                    cd3PerMicrolitre: v.cd3CellsPerCubicMetre.map { $0 / 1e9 }, viabilityPercent: v.viabilityFraction * 100,
                    qcMillilitres: v.qcVolumeCubicMetres * 1e6, recoveryPercent: v.recoveryFraction.map { $0 * 100 },
                    reducedMillilitres: v.reducedVolumeCubicMetres.map { $0 * 1e6 }, enteredBy: l.enteredBy,
                    enteredAt: Self.date(l.enteredAtUnixMilliseconds), reason: l.reason)
            },
            computation: s.computation.map { c in
                let v = c.values
                return ComputationJSON(
                    id: c.id, computedAt: Self.date(c.computedAtUnixMilliseconds),
                    collectedVolumeMillilitres: v.collectedVolumeCubicMetres * 1e6, qcMillilitres: v.qcVolumeCubicMetres * 1e6,
                    volumeAfterQCMillilitres: v.volumeAfterQCCubicMetres * 1e6, collectedTncCells: v.collectedTNCCells,
                    collectedCd3Cells: v.collectedCD3Cells, collectedCd3PerMicrolitre: v.collectedCD3CellsPerCubicMetre / 1e9,
                    collectionSufficient: v.collectionSufficient,
                    sufficientCd3PerMicrolitre: v.policySufficientCD3CellsPerCubicMetre / 1e9,
                    recoveryPercent: v.recoveryFraction * 100, recoveryMeasured: v.recoveryMeasured,
                    reducedVolumeMillilitres: v.reducedVolumeCubicMetres * 1e6,
                    cd3AfterReductionPerMicrolitre: v.cd3AfterReductionCellsPerCubicMetre / 1e9,
                    unitVolumeMillilitres: v.unitVolumeCubicMetres * 1e6, unitCount: v.units.count,
                    remainderVolumeMillilitres: v.remainderVolumeCubicMetres * 1e6,
                    unitCd3BandCells: [v.policyUnitCD3MinCells, v.policyUnitCD3MaxCells], viabilityPercent: v.viabilityFraction * 100,
                    patientMassKilograms: v.patientMassKilograms)
            },
            units: s.units.map { u in
                let v = u.values
                let base = "/api/v1/products/\(p.id)/units/\(v.divisionCode)/label"
                return UnitJSON(
                    id: u.id, divisionCode: v.divisionCode, productCode: "=<" + v.productCode,
                    volumeMillilitres: v.volumeCubicMetres * 1e6, cd3Cells: v.cd3Cells, tncCells: v.tncCells,
                    cd3CellsPerKilogram: v.cd3CellsPerKilogram, doseFlag: v.doseFlag,
                    labelPreviews: released ? ["svg": base + ".svg", "pdf": base + ".pdf"] : nil)
            },
            release: s.release.map(signature), signatures: s.signatures.map(signature),
            labelPrints: s.labelPrints.map {
                let fate = s.fate(of: $0)
                return LabelPrintJSON(
                    id: $0.id, signatureId: $0.signatureRef, status: s.labelStatus(of: $0).rawValue, statusReason: fate?.reason,
                    statusBy: fate?.recordedBy, statusAt: fate.map { Self.date($0.recordedAtUnixMilliseconds) },
                    replacedByPrintId: fate?.replacedByPrintRef, unitId: $0.unitRef, printedBy: $0.printedBy, printedAt: Self.date($0.printedAtUnixMilliseconds),
                    format: $0.format, destination: $0.destination, contentSha256: $0.contentSHA256)
            },
            releaseSummary: s.releaseSummary(timeZone: timeZone), releaseSummarySha256: s.releaseSummarySHA256(timeZone: timeZone),
            runCompleteness: s.runCompleteness.map(CompletenessJSON.init), runGaps: s.runGaps.map(GapJSON.init))
    }
}
