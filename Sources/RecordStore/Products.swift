import Foundation
import GRDB

// Products, units, users, signatures and label prints (schema v2). Every write is one
// transaction that also appends its audit entries, so a record and its evidence land together.

public enum UserRole: String, Hashable, Sendable, CaseIterable, Codable {
    case `operator`, lab, supervisor
}

public struct UserRow: Hashable, Sendable {
    public var id: Int64
    public var name: String
    public var fullName: String
    public var role: UserRole
    public var passwordHash: String
    public var createdAtUnixMilliseconds: Int64
    public var createdBy: String?
    public var disabledAtUnixMilliseconds: Int64?
    public var isActive: Bool { disabledAtUnixMilliseconds == nil }
}

public struct ProductRow: Hashable, Sendable {
    public var id: Int64
    public var runRef: Int64
    /// The 13 DIN characters (facility, year, sequence), without flags or check character.
    public var din: String
    public var facility: String
    public var dinYear: Int
    public var dinSequence: Int
    public var dinFlags: String
    public var productDescriptionCode: String
    public var typeOfCollection: String
    public var productName: String
    public var collectedVolumeCubicMetres: Double
    public var collectedAtUnixMilliseconds: Int64
    public var patientID: String?
    /// "FAMILY, Given", as on the label.
    public var patientName: String?
    /// YYYYMMDD, as the separator sent it.
    public var patientBirthDate: String?
    public var patientMassKilograms: Double?
    public var createdAtUnixMilliseconds: Int64
    public var createdBy: String
}

/// A product and everything recorded about it, read in one transaction (one consistent moment).
public struct ProductSnapshot: Sendable {
    public var product: ProductRow
    public var run: RunRow?
    public var labResults: [LabResultRow]
    public var computation: ComputationRow?
    public var units: [UnitRow]
    public var release: SignatureRow?
    public var signatures: [SignatureRow]
    public var labelPrints: [LabelPrintRow]
    /// What became of prints that are no longer valid (voided or superseded), oldest first.
    public var labelPrintFates: [LabelPrintFateRow] = []
}

/// Lab values as stored: SI, with the unit in each name.
public struct LabResultInput: Hashable, Sendable {
    public var wbcCellsPerCubicMetre: Double
    public var cd3Fraction: Double?
    public var cd3CellsPerCubicMetre: Double?
    public var viabilityFraction: Double
    public var qcVolumeCubicMetres: Double
    public var recoveryFraction: Double?
    public var reducedVolumeCubicMetres: Double?
    public init(
        wbcCellsPerCubicMetre: Double, cd3Fraction: Double?, cd3CellsPerCubicMetre: Double?, viabilityFraction: Double,
        qcVolumeCubicMetres: Double, recoveryFraction: Double?, reducedVolumeCubicMetres: Double?
    ) {
        self.wbcCellsPerCubicMetre = wbcCellsPerCubicMetre
        self.cd3Fraction = cd3Fraction
        self.cd3CellsPerCubicMetre = cd3CellsPerCubicMetre
        self.viabilityFraction = viabilityFraction
        self.qcVolumeCubicMetres = qcVolumeCubicMetres
        self.recoveryFraction = recoveryFraction
        self.reducedVolumeCubicMetres = reducedVolumeCubicMetres
    }
}

public struct LabResultRow: Hashable, Sendable {
    public var id: Int64
    public var productRef: Int64
    public var version: Int
    public var values: LabResultInput
    public var enteredAtUnixMilliseconds: Int64
    public var enteredBy: String
    public var reason: String?
}

/// A computation as stored (columns named with their SI unit). Mirrors ApheresisCore's
/// ProductComputation; the store does not compute.
public struct ComputationInput: Hashable, Sendable {
    public var policyReducedVolumeCubicMetres: Double
    public var policyUnitVolumeCubicMetres: Double
    public var policyUnitCD3MinCells: Double
    public var policyUnitCD3MaxCells: Double
    public var policySufficientCD3CellsPerCubicMetre: Double
    public var collectedVolumeCubicMetres: Double
    public var qcVolumeCubicMetres: Double
    public var volumeAfterQCCubicMetres: Double
    public var collectedTNCCells: Double
    public var collectedCD3Cells: Double
    public var collectedCD3CellsPerCubicMetre: Double
    public var collectionSufficient: Bool
    public var tncBeforeReductionCells: Double
    public var cd3BeforeReductionCells: Double
    public var recoveryFraction: Double
    public var recoveryMeasured: Bool
    public var reducedVolumeCubicMetres: Double
    public var cd3AfterReductionCellsPerCubicMetre: Double
    public var tncAfterReductionCellsPerCubicMetre: Double
    public var unitVolumeCubicMetres: Double
    public var remainderVolumeCubicMetres: Double
    public var viabilityFraction: Double
    public var patientMassKilograms: Double?
    public var units: [UnitInput]
    public init(
        policyReducedVolumeCubicMetres: Double, policyUnitVolumeCubicMetres: Double, policyUnitCD3MinCells: Double,
        policyUnitCD3MaxCells: Double, policySufficientCD3CellsPerCubicMetre: Double, collectedVolumeCubicMetres: Double,
        qcVolumeCubicMetres: Double, volumeAfterQCCubicMetres: Double, collectedTNCCells: Double, collectedCD3Cells: Double,
        collectedCD3CellsPerCubicMetre: Double, collectionSufficient: Bool, tncBeforeReductionCells: Double,
        cd3BeforeReductionCells: Double, recoveryFraction: Double, recoveryMeasured: Bool, reducedVolumeCubicMetres: Double,
        cd3AfterReductionCellsPerCubicMetre: Double, tncAfterReductionCellsPerCubicMetre: Double, unitVolumeCubicMetres: Double,
        remainderVolumeCubicMetres: Double, viabilityFraction: Double, patientMassKilograms: Double?, units: [UnitInput]
    ) {
        self.policyReducedVolumeCubicMetres = policyReducedVolumeCubicMetres
        self.policyUnitVolumeCubicMetres = policyUnitVolumeCubicMetres
        self.policyUnitCD3MinCells = policyUnitCD3MinCells
        self.policyUnitCD3MaxCells = policyUnitCD3MaxCells
        self.policySufficientCD3CellsPerCubicMetre = policySufficientCD3CellsPerCubicMetre
        self.collectedVolumeCubicMetres = collectedVolumeCubicMetres
        self.qcVolumeCubicMetres = qcVolumeCubicMetres
        self.volumeAfterQCCubicMetres = volumeAfterQCCubicMetres
        self.collectedTNCCells = collectedTNCCells
        self.collectedCD3Cells = collectedCD3Cells
        self.collectedCD3CellsPerCubicMetre = collectedCD3CellsPerCubicMetre
        self.collectionSufficient = collectionSufficient
        self.tncBeforeReductionCells = tncBeforeReductionCells
        self.cd3BeforeReductionCells = cd3BeforeReductionCells
        self.recoveryFraction = recoveryFraction
        self.recoveryMeasured = recoveryMeasured
        self.reducedVolumeCubicMetres = reducedVolumeCubicMetres
        self.cd3AfterReductionCellsPerCubicMetre = cd3AfterReductionCellsPerCubicMetre
        self.tncAfterReductionCellsPerCubicMetre = tncAfterReductionCellsPerCubicMetre
        self.unitVolumeCubicMetres = unitVolumeCubicMetres
        self.remainderVolumeCubicMetres = remainderVolumeCubicMetres
        self.viabilityFraction = viabilityFraction
        self.patientMassKilograms = patientMassKilograms
        self.units = units
    }
}

public struct UnitInput: Hashable, Sendable {
    public var index: Int
    public var divisionCode: String
    /// The 8 characters of the product code data structure after `=<`.
    public var productCode: String
    public var volumeCubicMetres: Double
    public var cd3Cells: Double
    public var tncCells: Double
    public var cd3CellsPerKilogram: Double?
    public var doseFlag: String
    public init(
        index: Int, divisionCode: String, productCode: String, volumeCubicMetres: Double, cd3Cells: Double, tncCells: Double,
        cd3CellsPerKilogram: Double?, doseFlag: String
    ) {
        self.index = index
        self.divisionCode = divisionCode
        self.productCode = productCode
        self.volumeCubicMetres = volumeCubicMetres
        self.cd3Cells = cd3Cells
        self.tncCells = tncCells
        self.cd3CellsPerKilogram = cd3CellsPerKilogram
        self.doseFlag = doseFlag
    }
}

public struct ComputationRow: Hashable, Sendable {
    public var id: Int64
    public var productRef: Int64
    public var labResultRef: Int64
    public var computedAtUnixMilliseconds: Int64
    public var values: ComputationInput
}

public struct UnitRow: Hashable, Sendable {
    public var id: Int64
    public var computationRef: Int64
    public var productRef: Int64
    public var values: UnitInput
}

public struct SignatureRow: Hashable, Sendable {
    public var id: Int64
    public var productRef: Int64
    public var computationRef: Int64
    public var userRef: Int64
    public var userName: String
    public var userFullName: String
    public var meaning: String
    public var signedAtUnixMilliseconds: Int64
    public var signedContentSHA256: String
}

public struct LabelPrintRow: Hashable, Sendable {
    public var id: Int64
    public var unitRef: Int64
    public var signatureRef: Int64
    public var printedAtUnixMilliseconds: Int64
    public var printedBy: String
    public var format: String
    public var destination: String
    public var contentSHA256: String
}

/// The end of a print's labels (schema v4): destroyed (`voided`) or replaced by a reprint (`superseded`).
public struct LabelPrintFateRow: Hashable, Sendable {
    public enum Fate: String, Hashable, Sendable {
        case voided, superseded
    }
    public var id: Int64
    public var labelPrintRef: Int64
    public var fate: Fate
    /// The print that replaced it (superseded only).
    public var replacedByPrintRef: Int64?
    public var reason: String
    public var recordedBy: String
    public var recordedAtUnixMilliseconds: Int64
}

/// Refusals of the product workflow that the store itself enforces (inside the transaction).
public enum ProductStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    case userExists(String)
    case unknownUser(String)
    case unknownRun(Int64)
    case runNotClosed(runRef: Int64, runID: String)
    case productExists(runRef: Int64, din: String)
    case unknownProduct(Int64)
    case dinSequencesExhausted(facility: String, year: Int)
    /// Central DINs (docs/central.md): every block the central database reserved for this
    /// workstation is used up, and no new one could be reserved yet.
    case noDINBlock(facility: String, year: Int, lastIssued: Int)
    case computationSuperseded(productRef: Int64, signed: Int64, current: Int64?)
    case signatureNotCurrent(productRef: Int64)
    case printSuperseded(productRef: Int64, signatureRef: Int64)
    case unitNotInRelease(unitRef: Int64, signatureRef: Int64)
    case reasonRequired(productRef: Int64, version: Int)
    case signerRequired
    /// Labels of these prints are still valid for the current values: printing again is a reprint.
    case reprintReasonRequired(productRef: Int64, validPrints: [Int64])
    case unknownPrint(productRef: Int64, printRef: Int64)
    case printEnded(printRef: Int64, fate: String)
    case noValidPrints(productRef: Int64)
    case voidReasonRequired(productRef: Int64)

    public var description: String {
        switch self {
        case .userExists(let name): "a user named \(name) already exists"
        case .unknownUser(let name): "no user named \(name)"
        case .unknownRun(let id): "no run with id \(id)"
        case .runNotClosed(let ref, let runID): "run \(ref) (\(runID)) has not ended; a product is made from a closed run"
        case .productExists(let ref, let din): "run \(ref) already has product \(din)"
        case .unknownProduct(let id): "no product with id \(id)"
        case .noDINBlock(let facility, let year, let last):
            "no DIN sequence is reserved for facility \(facility), year \(String(format: "%02d", year)): this workstation takes DINs from blocks the central database reserves (docs/central.md), every block it holds is used up (last issued: \(last)), and the central database has not been reachable to reserve another; restore the connection to it (apheresisctl central status) and try again"
        case .dinSequencesExhausted(let facility, let year):
            "all 999999 DIN sequences of facility \(facility) for year \(year) are used"
        case .computationSuperseded(let product, let signed, let current):
            "product \(product): the values shown for signing (computation \(signed)) are no longer current"
                + (current.map { " (now computation \($0)); review and sign again" } ?? "")
        case .signatureNotCurrent(let product):
            "product \(product) has no release signature for its current values"
        case .printSuperseded(let product, let signature):
            "product \(product): release \(signature) no longer applies (new lab values or a new release); labels from it were not recorded"
        case .unitNotInRelease(let unit, let signature):
            "unit \(unit) is not part of what release \(signature) signed"
        case .reasonRequired(let product, let version):
            "product \(product): lab values version \(version) corrects recorded evidence and needs a reason"
        case .signerRequired:
            "users exist already: a supervisor must sign for a new user"
        case .reprintReasonRequired(let product, let prints):
            "product \(product): labels of print\(prints.count == 1 ? "" : "s") \(prints.map(String.init).joined(separator: ", ")) "
                + "are still valid for these values; printing again is a reprint: give its reason (--reprint --reason), "
                + "or void the labels first"
        case .unknownPrint(let product, let print): "product \(product) has no label print \(print)"
        case .printEnded(let print, let fate): "label print \(print) is already \(fate)"
        case .noValidPrints(let product): "product \(product) has no valid label prints to void"
        case .voidReasonRequired(let product): "product \(product): voiding labels changes recorded evidence; give a reason"
        }
    }
}

extension RecordStore {
    // MARK: Users

    public func users() async throws -> [UserRow] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY id").map(ProductReader.user) }
    }

    public func user(named name: String) async throws -> UserRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE name = ?", arguments: [name]).map(ProductReader.user)
        }
    }

    /// `createdBy` nil only for the first user (bootstrap); the caller enforces who may create whom.
    public func createUser(
        name: String, fullName: String, role: UserRole, passwordHash: String, createdBy: String?, reason: String?,
        atUnixMilliseconds at: Int64
    ) async throws -> UserRow {
        try await pool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [name]) == true {
                throw ProductStoreError.userExists(name)
            }
            // Checked inside the transaction: two first users at once cannot both skip the signature.
            if createdBy == nil, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM users") ?? 0 > 0 {
                throw ProductStoreError.signerRequired
            }
            try db.execute(
                sql: """
                    INSERT INTO users (name, full_name, role, password_hash, created_at_unix_ms, created_by)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [name, fullName, role.rawValue, passwordHash, at, createdBy])
            let id = db.lastInsertedRowID
            try Audit.record(
                db, table: "users", id: id, action: "user.create", actor: createdBy ?? name, at: at, reason: reason)
            return try ProductReader.user(Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [id])!)
        }
    }

    public func disableUser(name: String, by actor: String, reason: String, atUnixMilliseconds at: Int64) async throws -> UserRow {
        try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE name = ?", arguments: [name]) else {
                throw ProductStoreError.unknownUser(name)
            }
            let id: Int64 = row["id"]
            let old = Audit.canonicalJSON(row, excluded: ["password_hash"])
            try db.execute(
                sql: "UPDATE users SET disabled_at_unix_ms = ? WHERE id = ? AND disabled_at_unix_ms IS NULL", arguments: [at, id])
            if db.changesCount > 0 {
                try Audit.record(db, table: "users", id: id, action: "user.disable", actor: actor, at: at, old: old, reason: reason)
            }
            return try ProductReader.user(Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [id])!)
        }
    }

    // MARK: Products

    /// Assigns the next DIN sequence of (facility, year) and creates the product, in one transaction:
    /// a crash before the commit issues nothing, after it the sequence is spent for good.
    /// `din` builds the 13 DIN characters from a sequence number.
    public func createProduct(
        runRef: Int64, facility: String, dinYear: Int, dinFlags: String, productDescriptionCode: String,
        typeOfCollection: String, productName: String, collectedVolumeCubicMetres: Double, collectedAtUnixMilliseconds: Int64,
        patientID: String? = nil, patientName: String? = nil, patientBirthDate: String? = nil,
        patientMassKilograms: Double?, by actor: String, atUnixMilliseconds at: Int64,
        din: @escaping @Sendable (Int) throws -> String
    ) async throws -> ProductRow {
        try await pool.write { db in
            guard let run = try Row.fetchOne(db, sql: "SELECT id, run_id, state FROM runs WHERE id = ?", arguments: [runRef]) else {
                throw ProductStoreError.unknownRun(runRef)
            }
            guard (run["state"] as String) == "closed" else {
                throw ProductStoreError.runNotClosed(runRef: runRef, runID: run["run_id"])
            }
            if let existing = try String.fetchOne(db, sql: "SELECT din FROM products WHERE run_ref = ?", arguments: [runRef]) {
                throw ProductStoreError.productExists(runRef: runRef, din: existing)
            }
            let last = try Int.fetchOne(
                db, sql: "SELECT last_sequence FROM din_sequences WHERE facility = ? AND din_year = ?",
                arguments: [facility, dinYear])
            let sequence = try DINBlocks.nextSequence(db, facility: facility, dinYear: dinYear, lastIssued: last ?? 0)
            guard sequence <= 999_999 else { throw ProductStoreError.dinSequencesExhausted(facility: facility, year: dinYear) }
            if last == nil {
                try db.execute(
                    sql: "INSERT INTO din_sequences (facility, din_year, last_sequence) VALUES (?, ?, ?)",
                    arguments: [facility, dinYear, sequence])
            } else {
                try db.execute(
                    sql: "UPDATE din_sequences SET last_sequence = ? WHERE facility = ? AND din_year = ?",
                    arguments: [sequence, facility, dinYear])
            }
            let thirteen = try din(sequence)
            try db.execute(
                sql: """
                    INSERT INTO products (run_ref, din, facility, din_year, din_sequence, din_flags, product_description_code,
                        type_of_collection, product_name, collected_volume_m3, collected_at_unix_ms, patient_id, patient_name,
                        patient_birth_date, patient_mass_kg, created_at_unix_ms, created_by)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    runRef, thirteen, facility, dinYear, sequence, dinFlags, productDescriptionCode, typeOfCollection,
                    productName, collectedVolumeCubicMetres, collectedAtUnixMilliseconds, patientID, patientName,
                    patientBirthDate, patientMassKilograms, at, actor,
                ])
            let id = db.lastInsertedRowID
            try Audit.record(db, table: "products", id: id, action: "product.create", actor: actor, at: at)
            return try ProductReader.product(Row.fetchOne(db, sql: "SELECT * FROM products WHERE id = ?", arguments: [id])!)
        }
    }

    public func products() async throws -> [ProductRow] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM products ORDER BY id").map(ProductReader.product) }
    }

    public func product(id: Int64) async throws -> ProductRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM products WHERE id = ?", arguments: [id]).map(ProductReader.product)
        }
    }

    public func product(din: String) async throws -> ProductRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM products WHERE din = ?", arguments: [din]).map(ProductReader.product)
        }
    }

    public func product(runRef: Int64) async throws -> ProductRow? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM products WHERE run_ref = ?", arguments: [runRef]).map(ProductReader.product)
        }
    }

    // MARK: Lab values and computation

    /// Stores a new version of the lab values and the computation made from them, with its units.
    /// A version after the first needs a reason (it corrects evidence), and supersedes any release.
    public func recordLabResult(
        productRef: Int64, values: LabResultInput, computation: ComputationInput, by actor: String, reason: String?,
        atUnixMilliseconds at: Int64
    ) async throws -> (LabResultRow, ComputationRow, [UnitRow]) {
        try await pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM products WHERE id = ?", arguments: [productRef]) == true else {
                throw ProductStoreError.unknownProduct(productRef)
            }
            let previous = try Row.fetchOne(
                db, sql: "SELECT * FROM lab_results WHERE product_ref = ? ORDER BY version DESC LIMIT 1", arguments: [productRef])
            let version = (previous?["version"] as Int? ?? 0) + 1
            if version > 1, (reason ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
                throw ProductStoreError.reasonRequired(productRef: productRef, version: version)
            }
            try db.execute(
                sql: """
                    INSERT INTO lab_results (product_ref, version, wbc_cells_per_m3, cd3_fraction, cd3_cells_per_m3,
                        viability_fraction, qc_volume_m3, recovery_fraction, reduced_volume_m3, entered_at_unix_ms, entered_by, reason)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    productRef, version, values.wbcCellsPerCubicMetre, values.cd3Fraction, values.cd3CellsPerCubicMetre,
                    values.viabilityFraction, values.qcVolumeCubicMetres, values.recoveryFraction,
                    values.reducedVolumeCubicMetres, at, actor, reason,
                ])
            let labID = db.lastInsertedRowID
            // The old version's values stay readable: in lab_results itself, and as the entry's old value.
            try Audit.record(
                db, table: "lab_results", id: labID, action: version == 1 ? "lab.enter" : "lab.correct", actor: actor, at: at,
                old: previous.map { Audit.canonicalJSON($0, excluded: []) }, reason: reason)
            let c = computation
            try db.execute(
                sql: """
                    INSERT INTO computations (product_ref, lab_result_ref, computed_at_unix_ms, policy_reduced_volume_m3,
                        policy_unit_volume_m3, policy_unit_cd3_min_cells, policy_unit_cd3_max_cells,
                        policy_sufficient_cd3_cells_per_m3, collected_volume_m3, qc_volume_m3, volume_after_qc_m3,
                        collected_tnc_cells, collected_cd3_cells, collected_cd3_cells_per_m3, collection_sufficient,
                        tnc_before_reduction_cells, cd3_before_reduction_cells, recovery_fraction, recovery_measured,
                        reduced_volume_m3, cd3_after_reduction_cells_per_m3, tnc_after_reduction_cells_per_m3, unit_volume_m3,
                        unit_count, remainder_volume_m3, viability_fraction, patient_mass_kg)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: StatementArguments([
                    productRef, labID, at, c.policyReducedVolumeCubicMetres, c.policyUnitVolumeCubicMetres,
                    c.policyUnitCD3MinCells, c.policyUnitCD3MaxCells, c.policySufficientCD3CellsPerCubicMetre,
                    c.collectedVolumeCubicMetres, c.qcVolumeCubicMetres, c.volumeAfterQCCubicMetres, c.collectedTNCCells,
                    c.collectedCD3Cells, c.collectedCD3CellsPerCubicMetre, c.collectionSufficient ? 1 : 0,
                    c.tncBeforeReductionCells, c.cd3BeforeReductionCells, c.recoveryFraction, c.recoveryMeasured ? 1 : 0,
                    c.reducedVolumeCubicMetres, c.cd3AfterReductionCellsPerCubicMetre, c.tncAfterReductionCellsPerCubicMetre,
                    c.unitVolumeCubicMetres, c.units.count, c.remainderVolumeCubicMetres, c.viabilityFraction,
                    c.patientMassKilograms,
                ] as [(any DatabaseValueConvertible)?]))
            let computationID = db.lastInsertedRowID
            try Audit.record(db, table: "computations", id: computationID, action: "computation.create", actor: actor, at: at)
            for unit in c.units {
                try db.execute(
                    sql: """
                        INSERT INTO units (computation_ref, product_ref, unit_index, division_code, product_code, volume_m3,
                            cd3_cells, tnc_cells, cd3_cells_per_kg, dose_flag)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        computationID, productRef, unit.index, unit.divisionCode, unit.productCode, unit.volumeCubicMetres,
                        unit.cd3Cells, unit.tncCells, unit.cd3CellsPerKilogram, unit.doseFlag,
                    ])
                try Audit.record(db, table: "units", id: db.lastInsertedRowID, action: "unit.create", actor: actor, at: at)
            }
            return try (
                ProductReader.labResult(Row.fetchOne(db, sql: "SELECT * FROM lab_results WHERE id = ?", arguments: [labID])!),
                ProductReader.computation(
                    Row.fetchOne(db, sql: "SELECT * FROM computations WHERE id = ?", arguments: [computationID])!,
                    units: ProductReader.units(db, computationRef: computationID)),
                ProductReader.units(db, computationRef: computationID).map(ProductReader.unit)
            )
        }
    }

    public func labResults(productRef: Int64) async throws -> [LabResultRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM lab_results WHERE product_ref = ? ORDER BY version", arguments: [productRef])
                .map(ProductReader.labResult)
        }
    }

    /// The computation made from the newest lab values, with its units.
    public func currentComputation(productRef: Int64) async throws -> (ComputationRow, [UnitRow])? {
        try await pool.read { db in try ProductReader.currentComputation(db, productRef: productRef) }
    }

    // MARK: Release and labels

    /// Records a release signature bound to `computationRef`, refusing when that is no longer the
    /// product's current computation (new lab values arrived while the signer was reading).
    public func recordRelease(
        productRef: Int64, computationRef: Int64, user: UserRow, signedContentSHA256: String,
        incompleteRunAcknowledgement: String? = nil, atUnixMilliseconds at: Int64
    ) async throws -> SignatureRow {
        try await pool.write { db in
            let current = try ProductReader.currentComputation(db, productRef: productRef)?.0.id
            guard current == computationRef else {
                throw ProductStoreError.computationSuperseded(productRef: productRef, signed: computationRef, current: current)
            }
            try db.execute(
                sql: """
                    INSERT INTO signatures (product_ref, computation_ref, user_ref, user_name, user_full_name, meaning,
                        signed_at_unix_ms, signed_content_sha256)
                    VALUES (?, ?, ?, ?, ?, 'released', ?, ?)
                    """,
                arguments: [productRef, computationRef, user.id, user.name, user.fullName, at, signedContentSHA256])
            let id = db.lastInsertedRowID
            if let incompleteRunAcknowledgement {
                // In the release's own transaction: no release of an incomplete run without it on the chain.
                try Audit.append(
                    db, at: at, actor: user.name, action: "product.release.incomplete_run_acknowledged", entity: "product",
                    entityID: String(productRef), old: nil, new: nil, reason: incompleteRunAcknowledgement)
            }
            try Audit.record(db, table: "signatures", id: id, action: "product.release", actor: user.name, at: at)
            try self.queueRelease(db, signatureRef: id, at: at)
            return try ProductReader.signature(Row.fetchOne(db, sql: "SELECT * FROM signatures WHERE id = ?", arguments: [id])!)
        }
    }

    /// The release that applies now: a signature on the current computation, or nil.
    public func currentRelease(productRef: Int64) async throws -> SignatureRow? {
        try await pool.read { db in try ProductReader.currentRelease(db, productRef: productRef) }
    }

    /// Records that labels were produced for units of the current, released computation.
    /// `signatureRef` is the release the labels were rendered from: refused (and nothing recorded) when
    /// it is no longer the current one, or when a unit is not part of what it signed.
    ///
    /// Prints still valid (neither voided nor superseded) end here, superseded by the new print of
    /// the same division: those of the current values only with a `reprintReason` (refused without
    /// one), those of values since corrected automatically, the correction named as the reason.
    public func recordLabelPrints(
        productRef: Int64, signatureRef: Int64, prints: [(unitRef: Int64, contentSHA256: String)], format: String,
        destination: String, by actor: String, reprintReason: String? = nil, atUnixMilliseconds at: Int64
    ) async throws -> [LabelPrintRow] {
        try await pool.write { db in
            guard let release = try ProductReader.currentRelease(db, productRef: productRef) else {
                throw ProductStoreError.signatureNotCurrent(productRef: productRef)
            }
            guard release.id == signatureRef else {
                throw ProductStoreError.printSuperseded(productRef: productRef, signatureRef: signatureRef)
            }
            for p in prints {
                let computation = try Int64.fetchOne(db, sql: "SELECT computation_ref FROM units WHERE id = ?", arguments: [p.unitRef])
                guard computation == release.computationRef else {
                    throw ProductStoreError.unitNotInRelease(unitRef: p.unitRef, signatureRef: signatureRef)
                }
            }
            let valid = try ProductReader.validPrints(db, productRef: productRef)
            let reprint = reprintReason.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : $0 }
            let sameValues = valid.filter { $0.computationRef == release.computationRef }
            if !sameValues.isEmpty, reprint == nil {
                throw ProductStoreError.reprintReasonRequired(productRef: productRef, validPrints: sameValues.map(\.print.id))
            }
            var rows: [LabelPrintRow] = []
            for p in prints {
                try db.execute(
                    sql: """
                        INSERT INTO label_prints (unit_ref, signature_ref, printed_at_unix_ms, printed_by, format, destination,
                            content_sha256)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [p.unitRef, release.id, at, actor, format, destination, p.contentSHA256])
                let id = db.lastInsertedRowID
                try Audit.record(db, table: "label_prints", id: id, action: "label.print", actor: actor, at: at)
                rows.append(
                    try ProductReader.labelPrint(Row.fetchOne(db, sql: "SELECT * FROM label_prints WHERE id = ?", arguments: [id])!))
            }
            guard !rows.isEmpty else { return rows }
            var divisionOfNew: [String: Int64] = [:]
            for row in rows {
                if let division = try String.fetchOne(db, sql: "SELECT division_code FROM units WHERE id = ?", arguments: [row.unitRef]),
                    divisionOfNew[division] == nil
                {
                    divisionOfNew[division] = row.id
                }
            }
            let correction = try Row.fetchOne(
                db, sql: "SELECT version, entered_by, reason FROM lab_results WHERE product_ref = ? ORDER BY version DESC LIMIT 1",
                arguments: [productRef])
            for old in valid {
                let replacement = divisionOfNew[old.divisionCode]
                var reason: String
                if old.computationRef == release.computationRef {
                    reason = "reprint: " + (reprint ?? "")
                } else {
                    let version: Int = correction?["version"] ?? 0
                    let by: String = correction?["entered_by"] ?? "?"
                    let why: String? = correction?["reason"]
                    reason = "lab values corrected (version \(version) by \(by)\(why.map { ": \($0)" } ?? "")), released again as signature \(release.id)"
                    if let reprint { reason += "; reprint: \(reprint)" }
                }
                guard let replacement else {
                    // Nothing replaces a unit the corrected product no longer has: its labels must be
                    // destroyed, so they are recorded as voided, not as replaced by another unit's print.
                    try Self.insertFate(
                        db, printRef: old.print.id, fate: .voided, replacedBy: nil,
                        reason: reason + "; unit \(old.divisionCode) is not part of the corrected product: destroy its labels",
                        by: actor, at: at)
                    continue
                }
                try Self.insertFate(
                    db, printRef: old.print.id, fate: .superseded, replacedBy: replacement, reason: reason, by: actor, at: at)
            }
            return rows
        }
    }

    /// Records that the labels of these prints (nil: every valid print of the product) were destroyed.
    /// Refused, with nothing recorded, if any of them is not this product's or has already ended.
    public func voidLabelPrints(
        productRef: Int64, printRefs: [Int64]?, reason: String, by actor: String, atUnixMilliseconds at: Int64
    ) async throws -> [LabelPrintFateRow] {
        try await pool.write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM products WHERE id = ?", arguments: [productRef]) == true else {
                throw ProductStoreError.unknownProduct(productRef)
            }
            let why = reason.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !why.isEmpty else { throw ProductStoreError.voidReasonRequired(productRef: productRef) }
            let all = try ProductReader.labelPrints(db, productRef: productRef).map(\.id)
            let ended = Dictionary(
                uniqueKeysWithValues: try ProductReader.labelPrintFates(db, productRef: productRef).map { ($0.labelPrintRef, $0) })
            let targets: [Int64]
            if let printRefs {
                for ref in printRefs {
                    guard all.contains(ref) else { throw ProductStoreError.unknownPrint(productRef: productRef, printRef: ref) }
                    if let fate = ended[ref] { throw ProductStoreError.printEnded(printRef: ref, fate: fate.fate.rawValue) }
                }
                targets = Array(Set(printRefs)).sorted()
            } else {
                targets = all.filter { ended[$0] == nil }
            }
            guard !targets.isEmpty else { throw ProductStoreError.noValidPrints(productRef: productRef) }
            return try targets.map { ref in
                try Self.insertFate(db, printRef: ref, fate: .voided, replacedBy: nil, reason: why, by: actor, at: at)
            }
        }
    }

    @discardableResult
    static func insertFate(
        _ db: Database, printRef: Int64, fate: LabelPrintFateRow.Fate, replacedBy: Int64?, reason: String, by actor: String, at: Int64
    ) throws -> LabelPrintFateRow {
        try db.execute(
            sql: """
                INSERT INTO label_print_fates (label_print_ref, fate, replaced_by_print_ref, reason, recorded_by, recorded_at_unix_ms)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [printRef, fate.rawValue, replacedBy, reason, actor, at])
        let id = db.lastInsertedRowID
        try Audit.record(
            db, table: "label_print_fates", id: id, action: fate == .voided ? "label.void" : "label.supersede", actor: actor, at: at,
            reason: reason)
        return ProductReader.labelPrintFate(try Row.fetchOne(db, sql: "SELECT * FROM label_print_fates WHERE id = ?", arguments: [id])!)
    }

    /// Everything about a product in one read transaction.
    public func productSnapshot(productRef: Int64) async throws -> ProductSnapshot? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM products WHERE id = ?", arguments: [productRef]) else {
                return nil
            }
            let product = ProductReader.product(row)
            let run = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [product.runRef]).map(Reader.run)
            let labs = try Row.fetchAll(
                db, sql: "SELECT * FROM lab_results WHERE product_ref = ? ORDER BY version", arguments: [productRef]
            ).map(ProductReader.labResult)
            let current = try ProductReader.currentComputation(db, productRef: productRef)
            let release = try ProductReader.currentRelease(db, productRef: productRef)
            let signatures = try Row.fetchAll(
                db, sql: "SELECT * FROM signatures WHERE product_ref = ? ORDER BY id", arguments: [productRef]
            ).map(ProductReader.signature)
            let prints = try ProductReader.labelPrints(db, productRef: productRef)
            return ProductSnapshot(
                product: product, run: run, labResults: labs, computation: current?.0, units: current?.1 ?? [],
                release: release, signatures: signatures, labelPrints: prints,
                labelPrintFates: try ProductReader.labelPrintFates(db, productRef: productRef))
        }
    }
}

enum ProductReader {
    static func user(_ row: Row) -> UserRow {
        UserRow(
            id: row["id"], name: row["name"], fullName: row["full_name"], role: UserRole(rawValue: row["role"]) ?? .operator,
            passwordHash: row["password_hash"], createdAtUnixMilliseconds: row["created_at_unix_ms"],
            createdBy: row["created_by"], disabledAtUnixMilliseconds: row["disabled_at_unix_ms"])
    }

    static func product(_ row: Row) -> ProductRow {
        ProductRow(
            id: row["id"], runRef: row["run_ref"], din: row["din"], facility: row["facility"], dinYear: row["din_year"],
            dinSequence: row["din_sequence"], dinFlags: row["din_flags"],
            productDescriptionCode: row["product_description_code"], typeOfCollection: row["type_of_collection"],
            productName: row["product_name"], collectedVolumeCubicMetres: row["collected_volume_m3"],
            collectedAtUnixMilliseconds: row["collected_at_unix_ms"], patientID: row["patient_id"],
            patientName: row["patient_name"], patientBirthDate: row["patient_birth_date"],
            patientMassKilograms: row["patient_mass_kg"],
            createdAtUnixMilliseconds: row["created_at_unix_ms"], createdBy: row["created_by"])
    }

    static func labResult(_ row: Row) -> LabResultRow {
        LabResultRow(
            id: row["id"], productRef: row["product_ref"], version: row["version"],
            values: LabResultInput(
                wbcCellsPerCubicMetre: row["wbc_cells_per_m3"], cd3Fraction: row["cd3_fraction"],
                cd3CellsPerCubicMetre: row["cd3_cells_per_m3"], viabilityFraction: row["viability_fraction"],
                qcVolumeCubicMetres: row["qc_volume_m3"], recoveryFraction: row["recovery_fraction"],
                reducedVolumeCubicMetres: row["reduced_volume_m3"]),
            enteredAtUnixMilliseconds: row["entered_at_unix_ms"], enteredBy: row["entered_by"], reason: row["reason"])
    }

    static func units(_ db: Database, computationRef: Int64) throws -> [Row] {
        try Row.fetchAll(db, sql: "SELECT * FROM units WHERE computation_ref = ? ORDER BY unit_index", arguments: [computationRef])
    }

    static func unitInput(_ row: Row) -> UnitInput {
        UnitInput(
            index: row["unit_index"], divisionCode: row["division_code"], productCode: row["product_code"],
            volumeCubicMetres: row["volume_m3"], cd3Cells: row["cd3_cells"], tncCells: row["tnc_cells"],
            cd3CellsPerKilogram: row["cd3_cells_per_kg"], doseFlag: row["dose_flag"])
    }

    static func unit(_ row: Row) -> UnitRow {
        UnitRow(id: row["id"], computationRef: row["computation_ref"], productRef: row["product_ref"], values: unitInput(row))
    }

    static func computation(_ row: Row, units: [Row]) -> ComputationRow {
        ComputationRow(
            id: row["id"], productRef: row["product_ref"], labResultRef: row["lab_result_ref"],
            computedAtUnixMilliseconds: row["computed_at_unix_ms"],
            values: ComputationInput(
                policyReducedVolumeCubicMetres: row["policy_reduced_volume_m3"],
                policyUnitVolumeCubicMetres: row["policy_unit_volume_m3"],
                policyUnitCD3MinCells: row["policy_unit_cd3_min_cells"], policyUnitCD3MaxCells: row["policy_unit_cd3_max_cells"],
                policySufficientCD3CellsPerCubicMetre: row["policy_sufficient_cd3_cells_per_m3"],
                collectedVolumeCubicMetres: row["collected_volume_m3"], qcVolumeCubicMetres: row["qc_volume_m3"],
                volumeAfterQCCubicMetres: row["volume_after_qc_m3"], collectedTNCCells: row["collected_tnc_cells"],
                collectedCD3Cells: row["collected_cd3_cells"], collectedCD3CellsPerCubicMetre: row["collected_cd3_cells_per_m3"],
                collectionSufficient: (row["collection_sufficient"] as Int) == 1,
                tncBeforeReductionCells: row["tnc_before_reduction_cells"],
                cd3BeforeReductionCells: row["cd3_before_reduction_cells"], recoveryFraction: row["recovery_fraction"],
                recoveryMeasured: (row["recovery_measured"] as Int) == 1, reducedVolumeCubicMetres: row["reduced_volume_m3"],
                cd3AfterReductionCellsPerCubicMetre: row["cd3_after_reduction_cells_per_m3"],
                tncAfterReductionCellsPerCubicMetre: row["tnc_after_reduction_cells_per_m3"],
                unitVolumeCubicMetres: row["unit_volume_m3"], remainderVolumeCubicMetres: row["remainder_volume_m3"],
                viabilityFraction: row["viability_fraction"], patientMassKilograms: row["patient_mass_kg"],
                units: units.map(unitInput)))
    }

    static func currentComputation(_ db: Database, productRef: Int64) throws -> (ComputationRow, [UnitRow])? {
        guard
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT computations.* FROM computations JOIN lab_results ON lab_results.id = computations.lab_result_ref
                    WHERE computations.product_ref = ? ORDER BY lab_results.version DESC LIMIT 1
                    """, arguments: [productRef])
        else { return nil }
        let unitRows = try units(db, computationRef: row["id"])
        return (computation(row, units: unitRows), unitRows.map(unit))
    }

    static func signature(_ row: Row) -> SignatureRow {
        SignatureRow(
            id: row["id"], productRef: row["product_ref"], computationRef: row["computation_ref"], userRef: row["user_ref"],
            userName: row["user_name"], userFullName: row["user_full_name"], meaning: row["meaning"],
            signedAtUnixMilliseconds: row["signed_at_unix_ms"], signedContentSHA256: row["signed_content_sha256"])
    }

    static func currentRelease(_ db: Database, productRef: Int64) throws -> SignatureRow? {
        guard let current = try currentComputation(db, productRef: productRef)?.0.id else { return nil }
        return try Row.fetchOne(
            db,
            sql: "SELECT * FROM signatures WHERE product_ref = ? AND computation_ref = ? AND meaning = 'released' ORDER BY id DESC LIMIT 1",
            arguments: [productRef, current]
        ).map(signature)
    }

    static func labelPrints(_ db: Database, productRef: Int64) throws -> [LabelPrintRow] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT label_prints.* FROM label_prints JOIN units ON units.id = label_prints.unit_ref
                WHERE units.product_ref = ? ORDER BY label_prints.id
                """, arguments: [productRef]
        ).map(labelPrint)
    }

    static func labelPrintFates(_ db: Database, productRef: Int64) throws -> [LabelPrintFateRow] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT label_print_fates.* FROM label_print_fates
                JOIN label_prints ON label_prints.id = label_print_fates.label_print_ref
                JOIN units ON units.id = label_prints.unit_ref
                WHERE units.product_ref = ? ORDER BY label_print_fates.id
                """, arguments: [productRef]
        ).map(labelPrintFate)
    }

    /// Prints of the product whose labels are still valid, with their unit's computation and division.
    static func validPrints(_ db: Database, productRef: Int64) throws -> [(print: LabelPrintRow, computationRef: Int64, divisionCode: String)] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT label_prints.*, units.computation_ref AS unit_computation_ref, units.division_code AS unit_division_code
                FROM label_prints JOIN units ON units.id = label_prints.unit_ref
                WHERE units.product_ref = ?
                  AND NOT EXISTS (SELECT 1 FROM label_print_fates WHERE label_print_fates.label_print_ref = label_prints.id)
                ORDER BY label_prints.id
                """, arguments: [productRef]
        ).map { (labelPrint($0), $0["unit_computation_ref"], $0["unit_division_code"]) }
    }

    static func labelPrintFate(_ row: Row) -> LabelPrintFateRow {
        LabelPrintFateRow(
            id: row["id"], labelPrintRef: row["label_print_ref"],
            fate: LabelPrintFateRow.Fate(rawValue: row["fate"]) ?? .voided, replacedByPrintRef: row["replaced_by_print_ref"],
            reason: row["reason"], recordedBy: row["recorded_by"], recordedAtUnixMilliseconds: row["recorded_at_unix_ms"])
    }

    static func labelPrint(_ row: Row) -> LabelPrintRow {
        LabelPrintRow(
            id: row["id"], unitRef: row["unit_ref"], signatureRef: row["signature_ref"],
            printedAtUnixMilliseconds: row["printed_at_unix_ms"], printedBy: row["printed_by"], format: row["format"],
            destination: row["destination"], contentSHA256: row["content_sha256"])
    }
}
