import Foundation
import Monitor
import RecordStore
import SeparatorProtocol

/// What the live stream says about a stored message (docs/api.md, "live stream").
enum LiveEvents {
    struct Value: Encodable {
        var value: Double
        var unit: String
    }

    struct Sample: Encodable {
        var device: String
        var deviceSerial: String
        var runId: String
        var kind: String
        var deviceTime: String
        var receivedAt: Date
        var runTimeMinutes: Double?
        var values: [String: Value]
        var qualityFlags: [String]
        /// The watcher's view after this sample (no series: the sample is the next point).
        var watch: RunWatch?
    }

    struct Presets: Encodable {
        var device: String
        var deviceSerial: String
        var runId: String
        var changedBy: String
        var reason: String
        var watch: RunWatch
        var at: Date
    }

    struct Run: Encodable {
        var device: String
        var deviceSerial: String
        var runId: String
        var procedure: String
        var patientId: String?
        var at: Date
    }

    struct Alarm: Encodable {
        /// The store's id (acknowledge by it); nil only if the store could not be read.
        var alarmId: Int64?
        var device: String
        var deviceSerial: String
        var runId: String
        var change: String
        var code: String
        var level: String
        var value: Double?
        var limit: Double?
        var unit: String?
        var message: String?
        /// Who acknowledged (change "acknowledged").
        var by: String?
        var runTimeMinutes: Double?
        var at: Date
    }

    static func publishAlarms(
        _ feed: LiveFeed, device: String, deviceSerial: String, runID: String, alarms: [AlarmChange], alarmIDs: [String: Int64], at: Date
    ) {
        for a in alarms {
            feed.publish(
                "alarm",
                Alarm(
                    alarmId: alarmIDs[a.code], device: device, deviceSerial: deviceSerial, runId: runID, change: a.kind.rawValue, code: a.code,
                    level: a.level, value: a.value, limit: a.limit, unit: a.unit, message: a.message, by: a.by,
                    runTimeMinutes: a.runTimeMinutes, at: at))
        }
    }

    static func publish(
        _ feed: LiveFeed, device: String, message: SeparatorMessage, quality: [String], alarms: [AlarmChange], alarmIDs: [String: Int64], watch: RunWatch?, at: Date
    ) {
        let serial = message.device.serialNumber
        let runID = message.order.runID
        if message.kind == .runStart {
            feed.publish(
                "run_start",
                Run(device: device, deviceSerial: serial, runId: runID, procedure: message.order.procedure.rawValue,
                    patientId: message.patient?.id, at: at))
        }
        if message.kind == .tick || message.kind == .runEnd {
            var values: [String: Value] = [:]
            for r in message.results {
                if let number = r.value.number { values[r.code.rawValue] = Value(value: number, unit: r.unit) }
            }
            feed.publish(
                "sample",
                Sample(
                    device: device, deviceSerial: serial, runId: runID, kind: message.kind.rawValue, deviceTime: message.timestamp.wire,
                    receivedAt: at, runTimeMinutes: message.result(.runTime)?.value.number, values: values, qualityFlags: quality, watch: watch))
        }
        publishAlarms(feed, device: device, deviceSerial: serial, runID: runID, alarms: alarms, alarmIDs: alarmIDs, at: at)

        if message.kind == .runEnd {
            feed.publish(
                "run_end",
                Run(device: device, deviceSerial: serial, runId: runID, procedure: message.order.procedure.rawValue,
                    patientId: message.patient?.id, at: at))
        }
    }
}
