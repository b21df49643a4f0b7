import PropertyBased
import SeparatorProtocol

/// Small, seedable generator so fuzz and loop tests replay exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func ts(_ wire: String) -> DeviceTimestamp { DeviceTimestamp(wire: wire)! }

let device = DeviceIdentity(model: "OPTIA-SIM", softwareVersion: "1.0", serialNumber: "1OPT00417")

/// The spec's section 4 TICK, without its elided records.
let specTickText =
    "H|\\^&|1042||OPTIA-SIM^1.0^1OPT00417|||||APHERESISD||P|LIS2-A2|20261124101500\r"
    + "M|1|OSTI|TICK|1\r"
    + "O|1|RUN-1OPT00417-0007||^^^CMNC|||20261124091500\r"
    + "R|1|^^^RUN_TIME|60.0|min||||F||||20261124101500\r"
    + "R|2|^^^INLET_VOL|1950.0|mL||||F||||20261124101500\r"
    + "R|3|^^^AC_VOL|150.0|mL||||F||||20261124101500\r"
    + "L|1|N\r"

func specTick() -> SeparatorMessage {
    let time = ts("20261124101500")
    return SeparatorMessage(
        sequenceNumber: 1042, device: device, timestamp: time, kind: .tick,
        order: Order(runID: "RUN-1OPT00417-0007", procedure: .cmnc, runStart: ts("20261124091500")),
        results: [
            ResultRecord(sequence: 1, code: .runTime, value: .number(60), unit: "min", timestamp: time),
            ResultRecord(sequence: 2, code: .inletVolume, value: .number(1950), unit: "mL", timestamp: time),
            ResultRecord(sequence: 3, code: .acVolume, value: .number(150), unit: "mL", timestamp: time),
        ])
}

let samplePatient = Patient(
    id: "P-001", familyName: "Doe", givenName: "Jane", birthDate: CalendarDate(year: 1970, month: 5, day: 17), sex: .female,
    heightCentimetres: 165, weightKilograms: 62.5)

/// A complete run: RUN_START, ticks, an alarm, an event, RUN_END.
func sampleRun(ticks: Int = 3) -> [SeparatorMessage] {
    let start = ts("20261124091500")
    let order = Order(runID: "RUN-1OPT00417-0007", procedure: .cmnc, runStart: start)
    var sequence: UInt64 = 100
    func next() -> UInt64 {
        sequence += 1
        return sequence
    }
    var messages: [SeparatorMessage] = []
    let settings: [(ParameterCode, ResultValue)] = [
        (.totalBloodVolume, .number(4800)), (.preHematocrit, .number(41)), (.acRatioSet, .number(12)),
        (.acdaLot, .text("LOT, \"A\"^7|&")), (.operatorID, .text("op1")),
    ]
    messages.append(
        SeparatorMessage(
            sequenceNumber: next(), device: device, timestamp: start, kind: .runStart, patient: samplePatient, order: order,
            results: settings.enumerated().map { i, s in
                ResultRecord(sequence: i + 1, code: s.0, value: s.1, unit: s.0.definition!.unit, timestamp: start)
            }))
    func telemetry(_ i: Int, at time: DeviceTimestamp) -> [ResultRecord] {
        ParameterDefinition.telemetry.enumerated().map { index, definition in
            ResultRecord(
                sequence: index + 1, code: definition.code, value: .number(Double(i * 10 + index) / 4), unit: definition.unit,
                timestamp: time)
        }
    }
    for i in 1...ticks {
        let time = start.adding(seconds: Int64(5 * i))
        messages.append(
            SeparatorMessage(sequenceNumber: next(), device: device, timestamp: time, kind: .tick, order: order, results: telemetry(i, at: time)))
        if i == 1 {
            messages.append(
                SeparatorMessage(
                    sequenceNumber: next(), device: device, timestamp: time, kind: .alarm, order: order,
                    comments: [CommentRecord(sequence: 1, code: "ACCESS_LOW", text: "Access pressure low, check ^ line", severity: .alarm)]))
        }
        if i == 2 {
            messages.append(
                SeparatorMessage(
                    sequenceNumber: next(), device: device, timestamp: time, kind: .event, order: order,
                    comments: [CommentRecord(sequence: 1, code: "PAUSE", text: "", severity: .info)]))
        }
    }
    let end = start.adding(seconds: Int64(5 * ticks + 5))
    messages.append(
        SeparatorMessage(
            sequenceNumber: next(), device: device, timestamp: end, kind: .runEnd, patient: samplePatient, order: order,
            results: telemetry(ticks + 1, at: end)))
    return messages
}

// MARK: Random messages

private let awkwardPieces = ["|", "\\", "^", "&", "&F&", "&X", "\r", "\n", "\t", "é", "日本", "\u{7F}", "a", "Z", "0", " ", ",", "\"", "="]

func randomText(_ rng: inout some RandomNumberGenerator, maxPieces: Int = 6) -> String {
    var text = ""
    for _ in 0..<Int.random(in: 0...maxPieces, using: &rng) {
        text += awkwardPieces.randomElement(using: &rng)!
    }
    return text
}

func randomNumber(_ rng: inout some RandomNumberGenerator) -> Double {
    switch Int.random(in: 0..<4, using: &rng) {
    case 0: return Double(Int.random(in: -100_000...100_000, using: &rng)) / 10
    case 1: return -0.0
    case 2:
        while true {
            let value = Double(bitPattern: rng.next())
            if value.isFinite { return value }
        }
    default: return Double.random(in: -1e6...1e6, using: &rng)
    }
}

func randomTimestamp(_ rng: inout some RandomNumberGenerator) -> DeviceTimestamp {
    DeviceTimestamp(secondsSinceEpoch: Int64.random(in: 0...4_000_000_000, using: &rng))
}

func randomMessage(_ rng: inout some RandomNumberGenerator, maxRecords: Int = 12) -> SeparatorMessage {
    let kind = MessageKind.allCases.randomElement(using: &rng)!
    let device = DeviceIdentity(
        model: randomText(&rng), softwareVersion: randomText(&rng), serialNumber: "S" + randomText(&rng))
    var patient: Patient?
    if kind == .runStart || kind == .runEnd {
        patient = Patient(
            id: randomText(&rng), familyName: randomText(&rng), givenName: randomText(&rng),
            birthDate: Bool.random(using: &rng) ? randomTimestamp(&rng).date : nil, sex: Sex.allCases.randomElement(using: &rng)!,
            heightCentimetres: Bool.random(using: &rng) ? randomNumber(&rng) : nil,
            weightKilograms: Bool.random(using: &rng) ? randomNumber(&rng) : nil)
    }
    let order = Order(
        runID: randomText(&rng), procedure: Procedure(rawValue: "P" + randomText(&rng)),
        runStart: Bool.random(using: &rng) ? randomTimestamp(&rng) : nil)
    var results: [ResultRecord] = []
    var comments: [CommentRecord] = []
    let count = Int.random(in: 1...maxRecords, using: &rng)
    for index in 1...count {
        if kind == .alarm || kind == .event {
            comments.append(
                CommentRecord(
                    sequence: index, source: randomText(&rng), code: randomText(&rng), text: randomText(&rng, maxPieces: 30),
                    severity: Severity.allCases.randomElement(using: &rng)!, type: randomText(&rng)))
            continue
        }
        let code: ParameterCode
        let value: ResultValue
        let unit: String
        if Int.random(in: 0..<4, using: &rng) == 0 {
            // Unknown code: a value that is no number stays text.
            code = ParameterCode("Z" + randomText(&rng))
            value = Bool.random(using: &rng) ? .number(randomNumber(&rng)) : .text("t" + randomText(&rng))
            unit = randomText(&rng)
        } else {
            let definition = ParameterDefinition.all.randomElement(using: &rng)!
            code = definition.code
            value = definition.isNumeric ? .number(randomNumber(&rng)) : .text(randomText(&rng, maxPieces: 20))
            unit = definition.unit
        }
        results.append(
            ResultRecord(
                sequence: Int.random(in: 1...1_000_000, using: &rng), code: code, value: value, unit: unit,
                status: randomText(&rng), timestamp: Bool.random(using: &rng) ? randomTimestamp(&rng) : nil))
    }
    return SeparatorMessage(
        sequenceNumber: UInt64.random(in: 1...UInt64.max, using: &rng), device: device, receiverID: randomText(&rng),
        processingID: randomText(&rng), version: randomText(&rng), timestamp: randomTimestamp(&rng), kind: kind,
        interfaceVersion: randomText(&rng), patient: patient, order: order, results: results, comments: comments)
}

let messageGen = Generator<SeparatorMessage, Shrink.None<SeparatorMessage>>(run: { rng in randomMessage(&rng) })
let longMessageGen = Generator<SeparatorMessage, Shrink.None<SeparatorMessage>>(run: { rng in randomMessage(&rng, maxRecords: 60) })

// MARK: Receiver helpers

extension [E1381Receiver.Action] {
    var sent: [UInt8] {
        flatMap { action -> [UInt8] in
            if case .send(let b) = action { return b }
            return []
        }
    }
    var messages: [[UInt8]] { compactMap { if case .messageReceived(let m) = $0 { m } else { nil } } }
    var events: [ReceiverEvent] { compactMap { if case .event(let e) = $0 { e } else { nil } } }
}

extension [E1381Sender.Action] {
    var sent: [[UInt8]] { compactMap { if case .send(let b) = $0 { b } else { nil } } }
    var delivered: [UInt64] { compactMap { if case .delivered(let id) = $0 { id } else { nil } } }
    var events: [SenderEvent] { compactMap { if case .event(let e) = $0 { e } else { nil } } }
}

let ENQ: [UInt8] = [ASCIIControl.enq]
let ACK: [UInt8] = [ASCIIControl.ack]
let NAK: [UInt8] = [ASCIIControl.nak]
let EOT: [UInt8] = [ASCIIControl.eot]

func frame(_ number: Int, _ text: String, final: Bool = true) -> [UInt8] {
    E1381.frame(number: number, text: bytes(text), isFinal: final)
}

extension Duration {
    static func s(_ seconds: Int) -> Duration { .seconds(seconds) }
}
