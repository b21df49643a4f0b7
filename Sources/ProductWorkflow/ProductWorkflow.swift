import ApheresisCore
import Credentials
import Foundation
import ISBT128
import Quantities
import RecordStore
import WorkflowSettings

/// The cell lab's workflow over the record store: product from a closed run, lab values and the
/// computation, release by electronic signature, labels. Shared by `apheresisctl` and the daemon's API,
/// so both refuse the same things for the same reasons. Each step is one store transaction with its
/// audit entries; refusals that matter as evidence (a wrong password at a signature) are audited too.
public struct ProductWorkflow: Sendable {
    public let store: RecordStore
    public let settings: ProductSettings
    let now: @Sendable () -> Int64

    public init(store: RecordStore, settings: ProductSettings, now: @escaping @Sendable () -> Int64 = ProductWorkflow.wallClock) {
        self.store = store
        self.settings = settings
        self.now = now
    }

    public static let wallClock: @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    var timeZone: TimeZone { settings.timeZone.flatMap(TimeZone.init(identifier:)) ?? .current }

    // MARK: People

    /// Creates a user. With no users yet, the first must be a supervisor and needs no signer
    /// (whoever can write the database file is trusted with that); afterwards a supervisor signs.
    public func createUser(
        name: String, fullName: String, role: UserRole, password: String, by signer: Credential?, reason: String? = nil
    ) async throws(ProductWorkflowError) -> UserRow {
        guard Self.isValidUserName(name) else { throw .invalidUserName(name) }
        guard password.count >= PasswordHash.minimumLength else { throw .passwordTooShort(minimum: PasswordHash.minimumLength) }
        let existing = try await wrap { try await store.users() }
        var creator: String? = nil
        if existing.isEmpty {
            guard role == .supervisor else { throw .firstUserMustBeSupervisor }
        } else {
            guard let signer else { throw .signerRequired }
            creator = try await authenticate(signer, for: .manageUsers, entity: "user", entityID: name).name
        }
        let hash: String
        do { hash = try await PasswordHash.hash(password) } catch { throw .invalidLabValue(field: "password", reason: error.description) }
        return try await wrap {
            try await store.createUser(
                name: name, fullName: fullName, role: role, passwordHash: hash, createdBy: creator, reason: reason,
                atUnixMilliseconds: now())
        }
    }

    public func disableUser(name: String, by signer: Credential, reason: String) async throws(ProductWorkflowError) -> UserRow {
        guard !reason.isEmpty else { throw .reasonRequired(action: "disabling a user") }
        let actor = try await authenticate(signer, for: .manageUsers, entity: "user", entityID: name)
        return try await wrap { try await store.disableUser(name: name, by: actor.name, reason: reason, atUnixMilliseconds: now()) }
    }

    /// 10 L: far beyond any collection bag; a larger figure is a device or file error.
    static let largestPlausibleCollectionMillilitres = 10_000.0

    /// A well-formed Argon2id hash with the same parameters as real ones; the result of checking it is ignored.
    static let timingDecoy = "$argon2id$v=19$m=65536,t=2,p=1$G1iSItTDO8saBxizvhrEug$1PgB+UWVFIsy9CRP42xQXaypRZnGObaZ1XSZxSOQRrs"

    static func isValidUserName(_ name: String) -> Bool {
        (2...32).contains(name.count)
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }
    }

    /// Checks the password and the role. A failure is audited (who tried what) and thrown.
    public func authenticate(
        _ credential: Credential, for permission: Permission, entity: String, entityID: String
    ) async throws(ProductWorkflowError) -> UserRow {
        let user = try await wrap { try await store.user(named: credential.userName) }
        let refusal: ProductWorkflowError?
        // The reply never says whether the name or the password was wrong; the audit entry does.
        var auditReason: String? = nil
        if let user {
            if credential.isSession, permission == .release {
                refusal = .passwordRequiredToSign
            } else if !credential.isSession, await !PasswordHash.verify(credential.password, against: user.passwordHash) {
                refusal = .notAuthenticated
                auditReason = "wrong password for \(user.name)"
            } else if !user.isActive {
                refusal = .userDisabled(user.name)
            } else if !permission.allowedRoles.contains(user.role) {
                refusal = .roleNotAllowed(
                    user: user.name, role: user.role, action: permission.rawValue, allowed: permission.allowedRoles)
            } else {
                return user
            }
        } else {
            // As slow as a real check, so the answer time does not tell which user names exist.
            _ = await PasswordHash.verify(credential.password, against: Self.timingDecoy)
            refusal = .notAuthenticated
            auditReason = "no user named \(credential.userName)"
        }
        let reason = auditReason ?? refusal!.description
        try? await store.recordRefusal(
            actor: credential.userName, action: "refused." + String(describing: permission), entity: entity, entityID: entityID,
            reason: reason, atUnixMilliseconds: now())
        throw refusal!
    }

    // MARK: Products

    /// A product (and its DIN) for a closed run.
    public func createProduct(runRef: Int64, by credential: Credential) async throws(ProductWorkflowError) -> ProductRow {
        guard let facility = settings.facilityIdentificationNumber else {
            throw .notConfigured(key: "product.facility_identification_number")
        }
        guard let descriptionCode = settings.productDescriptionCode else {
            throw .notConfigured(key: "product.product_description_code")
        }
        let actor = try await authenticate(credential, for: .createProduct, entity: "run", entityID: String(runRef))
        guard let run = try await wrap({ try await store.run(id: runRef) }) else { throw .unknownRun(runRef) }
        let samples = try await wrap { try await store.samples(runRef: runRef) }
        // The device's last word on the bag; a value no apheresis bag can hold is not a volume.
        guard let collected = samples.compactMap(\.collectVolumeMillilitres).filter({ $0.isFinite }).max(), collected > 0 else {
            throw .runHasNoCollectedVolume(runRef: runRef, runID: run.runID)
        }
        guard collected <= Self.largestPlausibleCollectionMillilitres else {
            throw .implausibleRunValue(runRef: runRef, what: "collected volume \(collected) mL")
        }
        let weight = run.weightKilograms.flatMap { $0.isFinite && $0 > 0 && $0 < 500 ? $0 : nil }
        let family = run.patientFamilyName?.uppercased()
        let patientName = [family, run.patientGivenName].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        let collectedAt = collectionTime(run)
        // The DIN's year is that of the local collection date (a collection at 00:30 on 1 January local
        // time belongs to the new year, though it is still 31 December in UTC).
        let year = Calendar.gregorian(timeZone).component(.year, from: Date(timeIntervalSince1970: Double(collectedAt) / 1000))
        let dinYear = year % 100
        let flags = settings.dinFlags
        let fin: FacilityIdentificationNumber
        do { fin = try FacilityIdentificationNumber(facility) } catch { throw .identification(error.description) }
        return try await wrap {
            try await store.createProduct(
                runRef: runRef, facility: facility, dinYear: dinYear, dinFlags: flags, productDescriptionCode: descriptionCode,
                typeOfCollection: String(TypeOfCollection.forAutologousUseOnly.code), productName: settings.productName,
                collectedVolumeCubicMetres: Volume.millilitres(collected).cubicMetres, collectedAtUnixMilliseconds: collectedAt,
                patientID: run.patientID, patientName: patientName.isEmpty ? nil : patientName,
                patientBirthDate: run.birthDate, patientMassKilograms: weight, by: actor.name, atUnixMilliseconds: now(),
                din: { sequence in
                    try DonationIdentificationNumber(facility: fin, year: dinYear, sequence: sequence, flags: flags)
                        .thirteenCharacters
                })
        }
    }

    /// When the collection ended: the device's clock at RUN_END, else when the daemon saw the run close.
    /// The separator's timestamps are UTC (separator-interface.md), whatever zone the facility is in:
    /// `product.time_zone` only decides how the instant is shown and encoded on the label.
    func collectionTime(_ run: RunRow) -> Int64 {
        if let end = run.endDeviceTimestamp ?? run.startDeviceTimestamp {
            return end.secondsSinceEpoch * 1000
        }
        return run.closedAtUnixMilliseconds ?? run.openedAtUnixMilliseconds
    }

    /// A product by id or by its 13 DIN characters (a typed DIN with its check character works too).
    public func findProduct(_ text: String) async throws(ProductWorkflowError) -> ProductRow {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        if let id = Int64(trimmed), let p = try await wrap({ try await store.product(id: id) }) { return p }
        let thirteen = trimmed.replacingOccurrences(of: " ", with: "")
        if thirteen.count == 14, let din = try? DonationIdentificationNumber(keyboardEntry: thirteen),
            let p = try await wrap({ try await store.product(din: din.thirteenCharacters) })
        {
            return p
        }
        if let p = try await wrap({ try await store.product(din: thirteen) }) { return p }
        throw .unknownProduct(text)
    }

    // MARK: Lab values

    /// Stores the lab values and the computation made from them. A second entry corrects the first:
    /// it needs a reason, keeps the old values readable, and takes away any release.
    public func enterLabValues(
        product: ProductRow, values: LabValues, by credential: Credential, reason: String? = nil
    ) async throws(ProductWorkflowError) -> ProductState {
        let actor = try await authenticate(credential, for: .enterLabValues, entity: "product", entityID: String(product.id))
        // Values no product can have are refused before anything is stored, and the refusal stays on record.
        let implausible = LabPlausibility.problems(values)
        if !implausible.isEmpty {
            var fields: [String] = []
            for field in implausible.flatMap(\.fields) where !fields.contains(field) { fields.append(field) }
            let refusal = ProductWorkflowError.invalidLabValue(
                field: fields.joined(separator: ", "), reason: "implausible: " + implausible.map(\.reason).joined(separator: "; "))
            try? await store.recordRefusal(
                actor: actor.name, action: "refused.enterLabValues", entity: "product", entityID: String(product.id),
                reason: refusal.description, atUnixMilliseconds: now())
            throw refusal
        }
        let previous = try await wrap { try await store.labResults(productRef: product.id) }
        if !previous.isEmpty, (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw .reasonRequired(action: "correcting lab values")
        }
        let computation: ProductComputation
        do {
            computation = try ProductComputation.compute(
                collectedVolume: Volume(cubicMetres: product.collectedVolumeCubicMetres), lab: values,
                patientMass: product.patientMassKilograms.map { Mass(kilograms: $0) }, policy: settings.policy)
        } catch {
            throw .computation(error)
        }
        let units = try computation.units.map { unit throws(ProductWorkflowError) in
            let code = try productCode(product, unitIndex: unit.index)
            return UnitInput(
                index: unit.index, divisionCode: code.division.text,
                productCode: String(code.dataStructure.dropFirst(2)), volumeCubicMetres: unit.volume.cubicMetres,
                cd3Cells: unit.cd3Cells.cells, tncCells: unit.totalNucleatedCells.cells,
                cd3CellsPerKilogram: unit.cd3PerPatientMass?.cellsPerKilogram, doseFlag: unit.flag.rawValue)
        }
        _ = try await wrap {
            try await store.recordLabResult(
                productRef: product.id, values: Self.stored(values), computation: Self.stored(computation, policy: settings.policy, units: units),
                by: actor.name, reason: reason, atUnixMilliseconds: now())
        }
        return try await state(of: product)
    }

    func productCode(_ product: ProductRow, unitIndex: Int) throws(ProductWorkflowError) -> ProductCode {
        do {
            return try ProductCode(
                descriptionCode: product.productDescriptionCode,
                typeOfCollection: TypeOfCollection(code: Character(product.typeOfCollection)),
                division: DivisionCode.firstLevel(unitIndex))
        } catch {
            throw .identification(error.description)
        }
    }

    static func stored(_ v: LabValues) -> LabResultInput {
        var fraction: Double? = nil
        var absolute: Double? = nil
        switch v.cd3 {
        case .fractionOfLeukocytes(let f): fraction = f.value
        case .absolute(let c): absolute = c.cellsPerCubicMetre
        }
        return LabResultInput(
            wbcCellsPerCubicMetre: v.whiteCellConcentration.cellsPerCubicMetre, cd3Fraction: fraction,
            cd3CellsPerCubicMetre: absolute, viabilityFraction: v.viability.value,
            qcVolumeCubicMetres: v.qcSampleVolume.cubicMetres, recoveryFraction: v.postReductionRecovery?.value,
            reducedVolumeCubicMetres: v.reducedVolume?.cubicMetres)
    }

    static func stored(_ c: ProductComputation, policy: ProductPolicy, units: [UnitInput]) -> ComputationInput {
        ComputationInput(
            policyReducedVolumeCubicMetres: policy.reducedVolume.cubicMetres,
            policyUnitVolumeCubicMetres: policy.unitVolume.cubicMetres,
            policyUnitCD3MinCells: policy.unitCD3Band.lowerBound.cells, policyUnitCD3MaxCells: policy.unitCD3Band.upperBound.cells,
            policySufficientCD3CellsPerCubicMetre: policy.sufficientCD3Concentration.cellsPerCubicMetre,
            collectedVolumeCubicMetres: c.collectedVolume.cubicMetres, qcVolumeCubicMetres: c.qcSampleVolume.cubicMetres,
            volumeAfterQCCubicMetres: c.volumeAfterQC.cubicMetres, collectedTNCCells: c.collectedTotalNucleatedCells.cells,
            collectedCD3Cells: c.collectedCD3Cells.cells,
            collectedCD3CellsPerCubicMetre: c.collectedCD3Concentration.cellsPerCubicMetre,
            collectionSufficient: c.collectionSufficient, tncBeforeReductionCells: c.totalNucleatedCellsBeforeReduction.cells,
            cd3BeforeReductionCells: c.cd3CellsBeforeReduction.cells, recoveryFraction: c.recovery.value,
            recoveryMeasured: c.recoveryMeasured, reducedVolumeCubicMetres: c.reducedVolume.cubicMetres,
            cd3AfterReductionCellsPerCubicMetre: c.cd3ConcentrationAfterReduction.cellsPerCubicMetre,
            tncAfterReductionCellsPerCubicMetre: c.tncConcentrationAfterReduction.cellsPerCubicMetre,
            unitVolumeCubicMetres: c.unitVolume.cubicMetres, remainderVolumeCubicMetres: c.remainderVolume.cubicMetres,
            viabilityFraction: c.viability.value, patientMassKilograms: c.patientMass?.kilograms, units: units)
    }

    // MARK: State and release

    /// Everything known about a product now.
    /// Everything known about a product now, read in one transaction.
    public func state(of product: ProductRow) async throws(ProductWorkflowError) -> ProductState {
        guard let snapshot = try await wrap({ try await store.productSnapshot(productRef: product.id) }) else {
            throw .unknownProduct(String(product.id))
        }
        var state = ProductState(snapshot, settings: settings)
        if let run = snapshot.run {
            // Replayed through the live watcher's own count, so the product and the run agree.
            state.runCompleteness = try await wrap { try await store.telemetryCompleteness(runRef: run.id) }
            state.runGaps = try await wrap { try await store.gaps(runRef: run.id) }
        }
        return state
    }

    /// The electronic signature: the signer's password again, the meaning "released", the time, and the
    /// SHA-256 of exactly the summary the signer was shown (`ProductState.releaseSummary`).
    /// `shownSummarySHA256` is the hash of what the signer read: if the record changed since (new lab
    /// values, a changed configuration), the signature is refused rather than applied to text nobody saw.
    public func release(
        product: ProductRow, shownSummarySHA256: String, by credential: Credential, acknowledgingIncompleteRun: String? = nil
    ) async throws(ProductWorkflowError) -> SignatureRow {
        let signer = try await authenticate(credential, for: .release, entity: "product", entityID: String(product.id))
        let state = try await state(of: product)
        guard let computation = state.computation else { throw .noLabValues(product: product.din) }
        var acknowledgement: String?
        if let completeness = state.runCompleteness, !completeness.isComplete {
            let reason = acknowledgingIncompleteRun?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard !reason.isEmpty else {
                try? await store.recordRefusal(
                    actor: signer.name, action: "refused.release", entity: "product", entityID: String(product.id),
                    reason: "run telemetry incomplete (\(completeness.summary)) and not acknowledged", atUnixMilliseconds: now())
                throw .incompleteRunNotAcknowledged(product: product.din, completeness: completeness.summary)
            }
            acknowledgement = "\(reason) [run telemetry: \(completeness.summary)]"
        }
        let digest = state.releaseSummarySHA256(timeZone: timeZone)
        guard digest == shownSummarySHA256.lowercased() else {
            try? await store.recordRefusal(
                actor: signer.name, action: "refused.release", entity: "product", entityID: String(product.id),
                reason: "the record changed after it was shown for signing", atUnixMilliseconds: now())
            throw .changedSinceShown(product: product.din)
        }
        // The store checks again, inside its transaction, that this computation is still the current one.
        return try await wrap {
            try await store.recordRelease(
                productRef: product.id, computationRef: computation.id, user: signer, signedContentSHA256: digest,
                incompleteRunAcknowledgement: acknowledgement, atUnixMilliseconds: now())
        }
    }

    func wrap<T>(_ body: () async throws -> T) async throws(ProductWorkflowError) -> T {
        do {
            return try await body()
        } catch let error as ProductStoreError {
            throw .store(error)
        } catch let error as ProductWorkflowError {
            throw error
        } catch let error as ISBT128Error {
            throw .identification(error.description)
        } catch {
            throw .storeFailure("\(error)")
        }
    }
}

extension Calendar {
    static func gregorian(_ timeZone: TimeZone) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }
}
