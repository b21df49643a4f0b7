import Foundation
import Labels

/// A unit from the reference practice: the first of four 35 mL units of autologous CD3+ cells.
enum Sample {
    static let content = LabelContent(
        din: Barcoded(dataStructure: "=G12341765432100", eyeReadable: "G1234 17 654321"),
        dinFlags: "00",
        dinCheckCharacter: "A",
        productCode: Barcoded(dataStructure: "=<S12341A0", eyeReadable: "S1234 1 A0"),
        productName: "HPC, Apheresis | CD3+ cells, volume reduced | DMSO 10 %, cryopreserved",
        collection: Barcoded(dataStructure: "&*0263291430", eyeReadable: "25 NOV 2026 14:30"),
        expiration: Barcoded(dataStructure: "&>0363301430", eyeReadable: "25 NOV 2036 14:30"),
        unitLine: "Unit 1 of 4",
        volume: "35 mL",
        cellLines: ["CD3+ 31.2 x 10^6 cells", "TNC 70.0 x 10^6 cells", "Viability 97 %"],
        storage: "Store in liquid nitrogen vapour at or below -150 C",
        intendedUse: "FOR AUTOLOGOUS USE ONLY",
        warnings: ["NOT EVALUATED FOR INFECTIOUS SUBSTANCES", "Do Not Irradiate"],
        patientName: "MÜLLER, Anna",
        patientID: "MRN 0012345",
        patientBirthDate: "03 MAR 2015",
        facilityName: "Children's Hospital Apheresis Unit",
        facilityAddress: ["1 Example Street", "12345 Springfield"]
    )

    static func content(_ change: (inout LabelContent) -> Void) -> LabelContent {
        var copy = content
        change(&copy)
        return copy
    }

    static func stock(_ resolution: PrinterResolution) -> LabelStock {
        LabelStock(resolution: resolution)
    }
}

/// A directory under the system's temporary directory, removed by `remove()`.
struct ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("labels-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a command-line tool as a child process. Standard output goes to `output` (or is
/// discarded), standard error is discarded (zbarimg prints harmless dbus noise there).
/// The exit is awaited through the termination handler, so no thread waits on it.
@discardableResult
func runTool(_ path: String, _ arguments: [String], output: URL? = nil) async throws -> Int32 {
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw ToolFailure(description: "\(path) is not installed (apt: zbar-tools, poppler-utils)")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    var outputHandle: FileHandle?
    if let output {
        guard FileManager.default.createFile(atPath: output.path, contents: nil) else {
            throw ToolFailure(description: "cannot create \(output.path)")
        }
        outputHandle = try FileHandle(forWritingTo: output)
        process.standardOutput = outputHandle
    } else {
        process.standardOutput = FileHandle.nullDevice
    }
    defer { try? outputHandle?.close() }
    let status: Int32 = try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { finished in continuation.resume(returning: finished.terminationStatus) }
        do {
            try process.run()
        } catch {
            process.terminationHandler = nil
            continuation.resume(throwing: error)
        }
    }
    return status
}

extension String {
    /// Runs of white space as one space.
    var collapsingWhitespace: String {
        split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}
