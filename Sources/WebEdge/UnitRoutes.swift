import Foundation
import ApheresisCore
import Hummingbird
import ProductWorkflow
import RecordStore
import SeparatorProtocol
import LiveState

/// `/api/v1` for the collection unit: devices and their links, runs, samples, alarms and events.
/// Every value that can go stale carries its age; a device whose link is down says so.
struct UnitRoutes: Sendable {
    let workflow: ProductWorkflow
    let live: any LiveStatus
    let watches: RunWatchBoard
    let control: any RunControl
    let sessions: SessionBook
    let feed: LiveFeed
    let now: @Sendable () -> Int64

    var store: RecordStore { workflow.store }

    func register(on router: Router<BasicRequestContext>) {
        let v1 = router.group("api/v1")
        v1.get("devices") { _, _ in await guarded { Reply.json(live.devices()) } }
        v1.get("runs") { _, _ in await guarded { try await runs() } }
        v1.get("runs/:run") { _, context in await guarded { try await run(context) } }
        v1.get("runs/:run/samples") { request, context in await guarded { try await samples(request, context) } }
        v1.get("runs/:run/watch") { _, context in await guarded { try await watch(context) } }
        v1.post("runs/:run/presets") { request, context in await guarded { try await changePresets(request, context) } }
        v1.get("alarms") { request, _ in await guarded { try await alarms(request) } }
        v1.post("alarms/:alarm/acknowledge") { request, context in await guarded { try await acknowledge(request, context) } }
        v1.get("events") { request, _ in await guarded { try await events(request) } }
    }

    // MARK: JSON

    struct PatientJSON: Encodable {
        var id: String?
        var familyName: String?
        var givenName: String?
        var birthDate: String?
        var sex: String?
        var heightCentimetres: Double?
        var weightKilograms: Double?
    }

    struct RunJSON: Encodable {
        var id: Int64
        var deviceSerial: String
        var runId: String
        var procedure: String
        var state: String
        var profile: String?
        var patient: PatientJSON
        var startDeviceTime: String?
        var endDeviceTime: String?
        var openedAt: Date
        var closedAt: Date?
        var latestSample: SampleJSON?
        /// Seconds since the newest sample arrived: a value this old is not "current".
        var latestSampleAgeSeconds: Double?
        var productId: Int64?
        /// The watcher's presets, recomputed values and predictions, with the run's history of
        /// points; nil when the daemon is not watching the run (closed, or from an export file).
        var watch: RunWatch?
        /// Only on `/api/v1/runs/{id}`: how much of the run's telemetry is in the record, and its gaps.
        var completeness: CompletenessJSON?
        var gaps: [GapJSON]?
    }

    struct ValueJSON: Encodable {
        var value: Double
        var unit: String
    }

    struct SampleJSON: Encodable {
        var runTimeMinutes: Double?
        var deviceTime: String?
        var values: [String: ValueJSON]
        var qualityFlags: [String]
    }

    struct AlarmJSON: Encodable {
        /// 0 for the daemon's own store alarm, which has no row.
        var id: Int64
        /// "run" (a run's or device's alarm, with a row) or "daemon" (the store refusing writes).
        var scope = "run"
        var deviceSerial: String
        /// The run's id as the separator names it (`RUN-...`), as everywhere in the API.
        var runId: String?
        /// The store's id of the run (`/api/v1/runs/{run_ref}`).
        var runRef: Int64?
        var code: String
        var level: String
        var state: String
        /// At the raise (or the latest escalation).
        var value: Double?
        /// What the watcher computes now for the same quantity, in `unit`; nil when it has no figure.
        var valueNow: Double?
        var limit: Double?
        var unit: String?
        var message: String?
        var raisedAt: Date
        var raisedRunTimeMinutes: Double?
        var ageSeconds: Double
        var acknowledgedBy: String?
        var acknowledgedAt: Date?
        var clearedAt: Date?
        var clearReason: String?
    }

    struct EventJSON: Encodable {
        var id: Int64
        var deviceSerial: String?
        var runId: String?
        var runRef: Int64?
        var kind: String
        var at: Date
        var deviceTime: String?
        var detail: String?
    }

    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    static func sample(_ s: SampleRow) -> SampleJSON {
        var values: [String: ValueJSON] = [:]
        for (code, value) in s.values {
            values[code.rawValue] = ValueJSON(value: value, unit: code.definition?.unit ?? "")
        }
        return SampleJSON(
            runTimeMinutes: s.runTimeMinutes, deviceTime: s.deviceTimestamp.map { "\($0)" }, values: values,
            qualityFlags: s.qualityFlags)
    }

    func alarm(_ a: AlarmRow, runID: String? = nil) -> AlarmJSON {
        AlarmJSON(
            id: a.id, deviceSerial: a.deviceSerial, runId: runID, runRef: a.runRef, code: a.code, level: a.level, state: a.state.rawValue,
            value: a.value,
            valueNow: a.state == .cleared ? nil : runID.flatMap { watches.watch(deviceSerial: a.deviceSerial, runID: $0)?.valuesNow[a.code] },
            limit: a.limit, unit: a.unit, message: a.message, raisedAt: Self.date(a.raisedAtUnixMilliseconds),
            raisedRunTimeMinutes: a.raisedRunTimeMinutes,
            // Monotonic for an alarm this daemon raised: a wall clock step must not age it by an hour.
            ageSeconds: watches.alarmAge(id: a.id)?.seconds ?? Double(now() - a.raisedAtUnixMilliseconds) / 1000,
            acknowledgedBy: a.acknowledgedBy, acknowledgedAt: a.acknowledgedAtUnixMilliseconds.map(Self.date),
            clearedAt: a.clearedAtUnixMilliseconds.map(Self.date), clearReason: a.clearReason)
    }

    func runJSON(_ r: RunRow, withLatest: Bool, productID: Int64?) async throws -> RunJSON {
        var latest: SampleJSON? = nil
        var age: Double? = nil
        if withLatest {
            latest = try await store.samples(runRef: r.id).last.map(Self.sample)
            // The monotonic age while this daemon receives the run's samples: a wall clock step must
            // not make a silent line look fresh. The stored wall time only for a run with no sample yet
            // since this daemon started.
            if let live = watches.sampleAge(deviceSerial: r.deviceSerial, runID: r.runID) {
                age = live.seconds
            } else {
                age = try await store.latestSampleReceivedAt(runRef: r.id).map { Double(now() - $0) / 1000 }
            }
        }
        return RunJSON(
            id: r.id, deviceSerial: r.deviceSerial, runId: r.runID, procedure: r.procedure, state: r.state.rawValue,
            profile: r.profileName,
            patient: PatientJSON(
                id: r.patientID, familyName: r.patientFamilyName, givenName: r.patientGivenName, birthDate: r.birthDate,
                sex: r.sex, heightCentimetres: r.heightCentimetres, weightKilograms: r.weightKilograms),
            startDeviceTime: r.startDeviceTimestamp.map { "\($0)" }, endDeviceTime: r.endDeviceTimestamp.map { "\($0)" },
            openedAt: Self.date(r.openedAtUnixMilliseconds), closedAt: r.closedAtUnixMilliseconds.map(Self.date),
            latestSample: latest, latestSampleAgeSeconds: age, productId: productID,
            watch: withLatest ? watches.watch(deviceSerial: r.deviceSerial, runID: r.runID) : nil)
    }

    // MARK: Handlers

    func runs() async throws -> Response {
        let products = Dictionary(try await store.products().map { ($0.runRef, $0.id) }, uniquingKeysWith: { a, _ in a })
        var out: [RunJSON] = []
        for r in try await store.runs() { out.append(try await runJSON(r, withLatest: r.state == .open, productID: products[r.id])) }
        return Reply.json(out)
    }

    func run(_ context: BasicRequestContext) async throws -> Response {
        guard let id = context.parameters.get("run", as: Int64.self), let r = try await store.run(id: id) else {
            return Reply.failure(.notFound, code: "not_found", "no run \(context.parameters.get("run") ?? "")")
        }
        var json = try await runJSON(r, withLatest: true, productID: try await store.product(runRef: id)?.id)
        json.completeness = try await store.telemetryCompleteness(runRef: id).map(CompletenessJSON.init)
        json.gaps = try await store.gaps(runRef: id).map(GapJSON.init)
        return Reply.json(json)
    }

    /// `?from_min=&to_min=`: a range of run time (minutes), both ends included.
    func samples(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        guard let id = context.parameters.get("run", as: Int64.self), try await store.run(id: id) != nil else {
            return Reply.failure(.notFound, code: "not_found", "no run \(context.parameters.get("run") ?? "")")
        }
        let from = try QueryParameters.number(request, "from_min", in: 0...Double.greatestFiniteMagnitude, unit: "minutes") ?? -.infinity
        let to = try QueryParameters.number(request, "to_min", in: 0...Double.greatestFiniteMagnitude, unit: "minutes") ?? .infinity
        if from > to {
            return Reply.failure(.badRequest, code: "invalid", "from_min (\(from)) is after to_min (\(to))")
        }
        let rows = try await store.samples(runRef: id).filter { s in
            guard let t = s.runTimeMinutes else { return from == -.infinity && to == .infinity }
            return t >= from && t <= to
        }
        return Reply.json(rows.map(Self.sample))
    }

    /// `?state=active` (default) or `?state=all`; `?run=ID` for one run's.
    func alarms(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let state = query["state"].map(String.init) ?? "active"
        // Checked with `run` too: a value the endpoint cannot take is refused, never ignored.
        guard ["active", "all"].contains(state) else {
            return Reply.failure(.badRequest, code: "invalid", "state: \"\(state)\" is not active or all")
        }
        let rows: [AlarmRow]
        if let id = try QueryParameters.integer(request, "run", in: 1...Int64.max) {
            rows = try await store.alarms(runRef: id)
        } else {
            rows = state == "all" ? try await store.allAlarms(limit: 1000) : try await store.activeAlarms()
        }
        return Reply.json(try await alarmList(rows, withDaemonAlarms: query["run"] == nil && query["state"].map(String.init) != "cleared"))
    }

    /// Alarms as the API shows them: the daemon's own store alarm first (while it lasts), then the
    /// rows, each with the watcher's value now beside its value at the raise.
    func alarmList(_ rows: [AlarmRow], withDaemonAlarms: Bool) async throws -> [AlarmJSON] {
        var out: [AlarmJSON] = []
        if withDaemonAlarms, let failure = live.storeFailure() {
            out.append(
                AlarmJSON(
                    id: 0, scope: "daemon", deviceSerial: "", runId: nil, runRef: nil, code: StoreAlarm.code, level: "alarm", state: "raised", value: nil,
                    valueNow: nil, limit: nil, unit: nil, message: failure.message, raisedAt: Self.date(failure.sinceUnixMilliseconds),
                    raisedRunTimeMinutes: nil, ageSeconds: failure.age.seconds))
        }
        var runIDs: [Int64: String] = [:]
        for row in rows {
            var runID: String?
            if let ref = row.runRef {
                if runIDs[ref] == nil { runIDs[ref] = try await store.run(id: ref)?.runID }
                runID = runIDs[ref]
            }
            out.append(alarm(row, runID: runID))
        }
        return out
    }

    struct AcknowledgeRequest: Decodable {
        var reason: String?
    }

    func acknowledge(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let credential = try APIRoutes.credential(request, sessions: sessions)
        let body: AcknowledgeRequest = try await APIRoutes.decode(request)
        guard let id = context.parameters.get("alarm", as: Int64.self) else {
            return Reply.failure(.notFound, code: "not_found", "alarms are named by their numeric id")
        }
        let reason = body.reason
        let workflow = self.workflow
        let record: @Sendable () async throws -> AlarmRow = {
            try await workflow.acknowledgeAlarm(id: id, by: credential, reason: reason)
        }
        let row: AlarmRow
        if let target = try await store.alarm(id: id), target.state != .cleared {
            var targetRunID: String? = nil
            if let ref = target.runRef { targetRunID = try await store.run(id: ref)?.runID }
            // In the turn of the pipeline that watches the run, so that its watcher knows of it.
            row = try await control.acknowledge(deviceSerial: target.deviceSerial, runID: targetRunID, code: target.code, record: record)
        } else {
            row = try await record()  // refused there with the usual reason (and audit entry)
        }
        // Every other workstation learns of it at once (the stream), not at its next reconnect.
        var runID: String? = nil
        if let ref = row.runRef { runID = try? await store.run(id: ref)?.runID }
        feed.publish(
            .alarm(
                StreamEvent.Alarm(
                    alarmId: row.id, device: live.devices().first { $0.serialNumber == row.deviceSerial }?.name,
                    deviceSerial: row.deviceSerial, runId: runID, change: "acknowledged", code: row.code, level: row.level,
                    by: row.acknowledgedBy, at: row.acknowledgedAtUnixMilliseconds.map(Self.date) ?? Date())))
        return Reply.json(alarm(row, runID: runID))
    }

    func watch(_ context: BasicRequestContext) async throws -> Response {
        guard let id = context.parameters.get("run", as: Int64.self), let run = try await store.run(id: id) else {
            return Reply.failure(.notFound, code: "not_found", "no run with id \(context.parameters.get("run") ?? "")")
        }
        guard let watch = watches.watch(deviceSerial: run.deviceSerial, runID: run.runID) else {
            return Reply.failure(
                .notFound, code: "not_found",
                "run \(id) is not watched by this daemon now (\(run.state == .open ? "no message since the daemon started" : "closed")); its samples are at /api/v1/runs/\(id)/samples")
        }
        return Reply.json(watch)
    }

    struct PresetChangeRequest: Decodable {
        var reason: String?
        var changes: [String: Double]?

        /// The reason and the changes, or why the body is refused (422).
        func checked() throws(APIRoutes.BadBody) -> (reason: String, changes: [RunPreset: Double]) {
            guard let reason = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty else {
                throw APIRoutes.BadBody(message: "reason: a preset change needs a reason, for the audit trail")
            }
            guard let raw = changes, !raw.isEmpty else {
                throw APIRoutes.BadBody(message: "changes: give at least one of \(RunPreset.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var changes: [RunPreset: Double] = [:]
            for (key, value) in raw {
                guard let preset = RunPreset(rawValue: key) else {
                    throw APIRoutes.BadBody(
                        message:
                            "changes.\(key): not a preset that can change for one run; one of \(RunPreset.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                changes[preset] = value
            }
            return (reason, changes)
        }
    }

    /// `{"reason": "...", "changes": {"collect_target_ml": 150, ...}}`: operator or supervisor.
    func changePresets(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let credential = try APIRoutes.credential(request, sessions: sessions)
        let body: PresetChangeRequest = try await APIRoutes.decode(request)
        guard let id = context.parameters.get("run", as: Int64.self), let run = try await store.run(id: id) else {
            return Reply.failure(.notFound, code: "not_found", "no run with id \(context.parameters.get("run") ?? "")")
        }
        let user = try await workflow.authenticate(credential, for: .changeRunPresets, entity: "run", entityID: String(id))
        let reason: String
        let changes: [RunPreset: Double]
        do {
            (reason, changes) = try body.checked()
        } catch {
            return Reply.failure(.unprocessableContent, code: "invalid", error.message)
        }
        guard run.state == .open else {
            return Reply.failure(.conflict, code: "conflict", "run \(id) is closed: presets change only while a run is watched")
        }
        // Lowering a line is the operator's; raising one (letting the run go further before the
        // daemon warns or alarms) is a supervisor's. Judged by the pipeline against the run's lines
        // as they are when the change is applied, so two changes in flight cannot add up to a raise.
        do {
            guard
                let watch = try await control.changePresets(
                    deviceSerial: run.deviceSerial, runID: run.runID, runRef: id, changes: changes,
                    mayRaiseLines: user.role == .supervisor, reason: reason, by: user.name)
            else {
                return Reply.failure(
                    .conflict, code: "conflict", "run \(id) is not watched by this daemon (no open run with that id on a connected separator)")
            }
            return Reply.json(watch)
        } catch let error as RaisesLines {
            // Refused through the workflow, so that the refusal is in the audit trail like the others.
            let keys = error.presets.map(\.rawValue).joined(separator: ", ")
            do {
                _ = try await workflow.authenticate(credential, for: .loosenRunAlarmLines, entity: "run", entityID: String(id))
            } catch {
                guard case .roleNotAllowed(let name, let role, _, _) = error else { throw error }
                return Reply.failure(
                    .forbidden, code: "not_permitted",
                    "\(keys): raising a line lets the run go further before the daemon warns or alarms; only a supervisor may (\(name) is \(role.rawValue)); nothing changed")
            }
            return Reply.failure(.internalServerError, code: "internal", "\(keys): refused as a raise, yet the user may raise lines")
        } catch let error as PresetChangeError {
            return Reply.failure(.unprocessableContent, code: "invalid", "nothing changed: " + error.message)
        } catch let error as RunNotOpen {
            return Reply.failure(.conflict, code: "conflict", error.description)
        }
    }

    /// `?run=ID`, `?device=SERIAL`, `?limit=N` (default 200, newest first).
    func events(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let limit = Int(try QueryParameters.integer(request, "limit", in: 1...10_000) ?? 200)
        let run = try QueryParameters.integer(request, "run", in: 1...Int64.max)
        let rows = try await store.events(deviceSerial: query["device"].map(String.init), runRef: run, limit: limit)
        var runIDs: [Int64: String] = [:]
        var out: [EventJSON] = []
        for row in rows {
            var runID: String?
            if let ref = row.runRef {
                if runIDs[ref] == nil { runIDs[ref] = try await store.run(id: ref)?.runID }
                runID = runIDs[ref]
            }
            out.append(
                EventJSON(
                    id: row.id, deviceSerial: row.deviceSerial, runId: runID, runRef: row.runRef, kind: row.kind,
                    at: Self.date(row.atUnixMilliseconds), deviceTime: row.deviceTimestamp.map { "\($0)" }, detail: row.detail))
        }
        return Reply.json(out)
    }

    func guarded(_ body: () async throws -> Response) async -> Response {
        await APIRoutes(workflow: workflow, sessions: sessions).guarded(body)
    }
}
