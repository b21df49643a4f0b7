import CentralStore
import Foundation
import LiveState
import Logging
import PipelineTestSupport
import PostgresNIO
import PostgresTestCluster
import RecordStore
import Testing

/// Replication from a real SQLite store into a real PostgreSQL (a cluster of the suite's own), in
/// process: the replicator, the central schema, DIN blocks and the audit copy, without daemons.
@Suite(.serialized) struct ReplicationTests {
    static let logger = Logger(label: "central-tests", factory: { _ in SwiftLogNoOpLogHandler() })

    static func endpoint(_ cluster: PostgresTestCluster) -> CentralEndpoint {
        CentralEndpoint(
            host: "127.0.0.1", port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database)
    }

    /// A replicator for `store` as `site`, running in a task until cancelled.
    struct Running {
        let board = CentralReplicationBoard()
        let task: Task<Void, Never>

        init(store: RecordStore, site: String, cluster: PostgresTestCluster, facilities: [String] = ["W1234"], blockSize: Int = 10) {
            let board = self.board
            let replicator = CentralReplicator(
                store: store,
                settings: ReplicatorSettings(
                    endpoint: ReplicationTests.endpoint(cluster), site: site, batchRows: 200, idleDelay: .milliseconds(50),
                    retryDelay: .milliseconds(200), reportInterval: .milliseconds(200), dinBlockSize: blockSize,
                    dinFacilities: facilities, daemonVersion: "test"),
                links: { [DeviceLinkReport(name: "optia-1", link: "test", state: "up", deviceSerial: nil, activityAgeMilliseconds: 100, lastError: nil)] },
                board: board, clock: { DaemonClock.monotonic }, wallMilliseconds: { DaemonClock.wallMilliseconds },
                logger: ReplicationTests.logger)
            task = Task { await replicator.run() }
        }

        func stop() async {
            task.cancel()
            await task.value
        }

        /// Waits until the log is empty and committed, or fails with the status.
        func caughtUp(_ store: RecordStore, within seconds: Double = 60) async throws {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                let state = try await store.replicationState()
                if state.backlog == 0, board.status?.state == .up { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("not caught up: \(String(describing: board.status)), \(try await store.replicationState())")
        }
    }

    /// A store fed a whole scenario through the real pipeline, with an acknowledged alarm.
    /// `logFromStart` false: the store is filled first and replication turned on afterwards, as on
    /// a workstation that had run for years before `[central]` was configured.
    static func storeWithRun(
        _ scratch: Scratch, name: String = "store.sqlite", site: String, scenario: String = "fault-ratio-drift", logFromStart: Bool = true
    ) async throws -> RecordStore {
        let store = try await Bench.open(scratch, name: name)
        if logFromStart { try await store.enableReplicationLog(site: site, atUnixMilliseconds: 1_796_540_000_000) }
        let bench = Bench(store: store)
        var acknowledged = false
        for d in try scenarioRun(scenario) {
            #expect(await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) == .handled)
            if !acknowledged, let active = try await store.activeAlarms().first {
                acknowledged = try await store.acknowledgeAlarm(id: active.id, by: "nurse.a", reason: nil, atUnixMilliseconds: 1_796_540_100_000) != nil
            }
        }
        #expect(acknowledged || scenario == "normal-boy-10y")
        _ = try await store.createUser(
            name: "lab.b", fullName: "Lab B", role: .lab, passwordHash: "$argon2id$test", createdBy: nil, reason: "setup",
            atUnixMilliseconds: 1_796_540_200_000)
        if !logFromStart {
            #expect(try await store.replicationState().backlog == 0)
            let logged = try await store.enableReplicationLog(site: site, atUnixMilliseconds: 1_796_540_300_000)
            var rows = 0
            for table in RecordStore.replicatedTables { rows += Int(try sqlite3(scratch.file(name), "SELECT count(*) FROM \(table)")) ?? 0 }
            #expect(logged == rows && rows > 100)
            #expect(try await store.replicationState().backlog == rows)
            // Once on, a second start logs nothing more, and a different site name is refused.
            #expect(try await store.enableReplicationLog(site: site, atUnixMilliseconds: 1_796_540_400_000) == 0)
            await #expect(throws: ReplicationSetupError.siteChanged(recorded: site, configured: "elsewhere")) {
                try await store.enableReplicationLog(site: "elsewhere", atUnixMilliseconds: 1_796_540_400_000)
            }
        }
        return store
    }

    /// Row counts of every replicated table, from the store's file and from PostgreSQL for `site`.
    static func counts(_ scratch: Scratch, name: String = "store.sqlite", cluster: PostgresTestCluster, site: String) throws
        -> (local: [String: Int], central: [String: Int])
    {
        var local: [String: Int] = [:]
        var central: [String: Int] = [:]
        for table in RecordStore.replicatedTables {
            local[table] = Int(try sqlite3(scratch.file(name), "SELECT count(*) FROM \(table)"))
            central[table] = Int(try cluster.psql("SELECT count(*) FROM \(table) WHERE site = '\(site)'"))
        }
        return (local, central)
    }

    @Test func aWholeRunArrivesOnceWithItsAlarmsAuditAndCursorAndAReplayChangesNothing() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let scratch = try Scratch()
        let store = try await Self.storeWithRun(scratch, site: "ws-a")
        #expect(try await store.replicationState().backlog > 100)

        let running = Running(store: store, site: "ws-a", cluster: cluster)
        try await running.caughtUp(store)
        var (local, central) = try Self.counts(scratch, cluster: cluster, site: "ws-a")
        #expect(local == central)
        #expect((central["messages"] ?? 0) > 50 && (central["alarm_events"] ?? 0) >= 2 && (central["audit_log"] ?? 0) >= 2)
        // The alarm's present state and its history, the same on both sides.
        let alarmsHere = try sqlite3(scratch.file("store.sqlite"), "SELECT id, state, acknowledged_by FROM alarms ORDER BY id")
        let alarmsThere = try cluster.psql("SELECT local_id, state, acknowledged_by FROM alarms WHERE site = 'ws-a' ORDER BY local_id")
        #expect(alarmsHere == alarmsThere)
        // Raw bytes unchanged.
        let rawHere = try sqlite3(scratch.file("store.sqlite"), "SELECT hex(raw) FROM messages ORDER BY id LIMIT 5")
        let rawThere = try cluster.psql("SELECT upper(encode(raw, 'hex')) FROM messages WHERE site = 'ws-a' ORDER BY local_id LIMIT 5")
        #expect(rawHere == rawThere)
        // The cursor is the store's last log entry, committed on both sides; the log is empty.
        let state = try await store.replicationState()
        #expect(try cluster.psql("SELECT replicated_through FROM central_sites WHERE site = 'ws-a'") == String(state.confirmedSeq))
        #expect(try sqlite3(scratch.file("store.sqlite"), "SELECT count(*) FROM replication_log") == "0")
        // The link report arrived.
        #expect(try cluster.psql("SELECT state FROM central_links WHERE site = 'ws-a' AND name = 'optia-1'") == "up")

        // Everything again (as after a central restore): the same rows, no duplicates.
        let checksum = "SELECT md5(string_agg(local_id::text || ':' || sequence::text || ':' || kind, ',' ORDER BY local_id)) FROM messages WHERE site = 'ws-a'"
        let before = try cluster.psql(checksum)
        let cursor = try await store.replicationState().confirmedSeq
        #expect(try await store.requeueEverythingForReplication(centralCursor: cursor) > 100)
        try await running.caughtUp(store)
        (local, central) = try Self.counts(scratch, cluster: cluster, site: "ws-a")
        #expect(local == central)
        #expect(try cluster.psql(checksum) == before)
        await running.stop()

        // PostgreSQL itself refuses to rewrite history.
        #expect(throws: (any Error).self) { try cluster.psql("UPDATE messages SET kind = 'X' WHERE site = 'ws-a'") }
        #expect(throws: (any Error).self) { try cluster.psql("DELETE FROM audit_log WHERE site = 'ws-a'") }
    }

    @Test func aStoreThatJoinsLateSendsEverythingALostCentralCopyIsRefilledAndAStrangeStoreIsRefused() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let scratch = try Scratch()
        let store = try await Self.storeWithRun(scratch, site: "ws-a", scenario: "normal-boy-10y", logFromStart: false)
        var running = Running(store: store, site: "ws-a", cluster: cluster)
        try await running.caughtUp(store)
        await running.stop()
        // The central database restored from a backup taken before any of it: rows and cursor gone.
        try cluster.psql(
            """
            ALTER TABLE samples DISABLE TRIGGER samples_append_only;
            DELETE FROM samples WHERE site = 'ws-a';
            ALTER TABLE samples ENABLE TRIGGER samples_append_only;
            UPDATE central_sites SET replicated_through = 0 WHERE site = 'ws-a';
            """)
        running = Running(store: store, site: "ws-a", cluster: cluster)
        try await running.caughtUp(store)
        await running.stop()
        // The next connection finds the cursor where it left it: nothing is logged again.
        let highWater = try await store.replicationLogHighWater()
        running = Running(store: store, site: "ws-a", cluster: cluster)
        try await running.caughtUp(store)
        await running.stop()
        #expect(try await store.replicationLogHighWater() == highWater)
        let (local, central) = try Self.counts(scratch, cluster: cluster, site: "ws-a")
        #expect(local == central)
        #expect((central["samples"] ?? 0) > 10)

        // A second store configured with the same site name: refused, nothing of it written.
        let other = try await Bench.open(scratch, name: "other.sqlite")
        try await other.enableReplicationLog(site: "ws-a", atUnixMilliseconds: 1_796_540_000_000)
        let intruder = Running(store: other, site: "ws-a", cluster: cluster)
        let deadline = ContinuousClock.now + .seconds(30)
        while intruder.board.status?.state != .refused, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        await intruder.stop()
        let status = try #require(intruder.board.status)
        #expect(status.state == .refused)
        #expect(status.lastError?.contains("belongs to record store") == true)
        #expect(try Self.counts(scratch, cluster: cluster, site: "ws-a").central == central)
    }

    /// A workstation's store restored from a backup taken before it replicated further must not
    /// replicate: its new log entries would reuse numbers and local ids the central copy holds.
    @Test func aStoreRestoredFromABackupOlderThanTheCentralCopyIsRefused() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let scratch = try Scratch()
        let store = try await Self.storeWithRun(scratch, site: "ws-r", scenario: "normal-boy-10y")
        let backup = try await store.backup(to: scratch.file("backup.sqlite"))
        // After the backup: more rows, replicated.
        _ = try await store.createUser(
            name: "late", fullName: "Late", role: .lab, passwordHash: "$argon2id$test", createdBy: "lab.b", reason: nil,
            atUnixMilliseconds: 1_796_540_500_000)
        var running = Running(store: store, site: "ws-r", cluster: cluster)
        try await running.caughtUp(store)
        await running.stop()
        try await store.close()

        // The restore: the backup in the store's place (its key and anchor heads with it).
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: scratch.file("store.sqlite") + suffix) }
        try FileManager.default.copyItem(atPath: backup.path, toPath: scratch.file("store.sqlite"))
        let anchor = scratch.path + "/audit-anchor/store.sqlite.heads"
        try FileManager.default.removeItem(atPath: anchor)
        try FileManager.default.copyItem(atPath: backup.anchorPath, toPath: anchor)
        let restored = try await Bench.open(scratch)
        running = Running(store: restored, site: "ws-r", cluster: cluster)
        let deadline = ContinuousClock.now + .seconds(30)
        while running.board.status?.state != .refused, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let status = running.board.status
        #expect(status?.state == .refused, "\(String(describing: status))")
        #expect(status?.lastError?.contains("restored from a backup") == true, "\(String(describing: status))")
        await running.stop()
        // Nothing in the central copy changed, and the user made after the backup is still there.
        #expect(try cluster.psql("SELECT count(*) FROM users WHERE site = 'ws-r' AND name = 'late'") == "1")
        try await restored.close()
    }

    @Test func dinBlocksOfTwoWorkstationsNeverOverlapAndRespectNumbersIssuedBefore() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let a = try await Self.endpoint(cluster).connect(logger: Self.logger)
        let b = try await Self.endpoint(cluster).connect(logger: Self.logger)
        _ = try await CentralSchema.migrate(a, logger: Self.logger)
        let siteA = CentralSite(connection: a, site: "ws-a", logger: Self.logger)
        let siteB = CentralSite(connection: b, site: "ws-b", logger: Self.logger)
        // Workstation B issued up to 57 on its own before it replicated.
        try await siteB.reportDINHighWaters([DINHighWater(facility: "W1234", dinYear: 26, lastSequence: 57)])
        async let fromA = Self.reserve(siteA, count: 15)
        async let fromB = Self.reserve(siteB, count: 15)
        let blocks = try await fromA + fromB
        try await a.close()
        try await b.close()
        let numbers = blocks.flatMap { $0.first...$0.last }
        #expect(numbers.count == 30 * 7)
        #expect(Set(numbers).count == numbers.count)
        #expect(numbers.min()! == 58)
        #expect(try cluster.psql("SELECT count(*) FROM din_blocks") == "30")
    }

    static func reserve(_ site: CentralSite, count: Int) async throws -> [(first: Int, last: Int)] {
        var blocks: [(first: Int, last: Int)] = []
        for _ in 0..<count {
            let block = try #require(try await site.reserveDINBlock(facility: "W1234", dinYear: 26, size: 7))
            blocks.append((block.first, block.last))
        }
        return blocks
    }

    @Test func productsTakeTheirDINFromCentralBlocksAndStopWhenTheBlocksRunOut() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let scratch = try Scratch()
        let store = try await Self.storeWithRun(scratch, site: "ws-a", scenario: "normal-boy-10y")
        let runRef = try #require(try await store.runs().first?.id)
        let year = Calendar(identifier: .gregorian).component(.year, from: Date()) % 100
        func create() async throws -> ProductRow {
            try await store.createProduct(
                runRef: runRef, facility: "W1234", dinYear: year, dinFlags: "00", productDescriptionCode: "S1234",
                typeOfCollection: "1", productName: "CD3+ cells", collectedVolumeCubicMetres: 1.4e-4,
                collectedAtUnixMilliseconds: 1_796_540_000_000, patientMassKilograms: 30, by: "lab.b",
                atUnixMilliseconds: 1_796_540_300_000, din: { "W1234\(String(format: "%02d", year))\(String(format: "%06d", $0))" })
        }
        // No block yet: refused with a reason that names the way out, never a local number.
        await #expect { try await create() } throws: { error in
            guard case ProductStoreError.noDINBlock = error else { return false }
            return "\(error)".contains("central database")
        }
        let running = Running(store: store, site: "ws-a", cluster: cluster, blockSize: 4)
        try await running.caughtUp(store)
        #expect(try await store.dinSequencesInReserve(facility: "W1234", dinYear: year) >= 2)
        let product = try await create()
        let block = try cluster.psql("SELECT first_sequence || '-' || last_sequence FROM din_blocks WHERE site = 'ws-a' ORDER BY id LIMIT 1")
        #expect(block == "\(product.dinSequence)-\(product.dinSequence + 3)")
        try await running.caughtUp(store)
        #expect(try cluster.psql("SELECT din FROM products WHERE site = 'ws-a'") == product.din)
        #expect(running.board.status?.dinReserve["W1234/\(String(format: "%02d", year))"] != nil)
        await running.stop()
    }

    @Test func theCentralCopyOfTheTrailVerifiesWithTheKeyAndATamperedCopyDoesNot() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let scratch = try Scratch()
        let store = try await Self.storeWithRun(scratch, site: "ws-a", scenario: "normal-boy-10y")
        let running = Running(store: store, site: "ws-a", cluster: cluster)
        try await running.caughtUp(store)
        await running.stop()
        let reader = CentralReader(endpoint: Self.endpoint(cluster), logger: Self.logger)
        do {
            let copy = try await reader.siteCopy(site: "ws-a", tables: RecordStore.auditCopyTables)
            let verified = try await store.verifyAuditCopy(copy.rows)
            #expect(verified.isIntact, "\(verified.problems)")
            let local = try await store.verifyAudit()
            #expect(verified.headHash == local.headHash)
            #expect(verified.entries == local.entries)

            // Someone with the database's owner rights rewrites an entry behind the trigger's back.
            try cluster.psql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            try cluster.psql("UPDATE audit_log SET actor = 'mallory' WHERE site = 'ws-a' AND seq = 1")
            let tampered = try await store.verifyAuditCopy(try await reader.siteCopy(site: "ws-a", tables: RecordStore.auditCopyTables).rows)
            #expect(!tampered.isIntact)
            #expect(tampered.problems.first?.seq == 1)
        } catch {
            await reader.close()
            throw error
        }
        await reader.close()
    }

    @Test func theSchemaMigratesOnceAndANewerOneIsRefused() async throws {
        let cluster = try PostgresTestCluster.start()
        defer { cluster.destroy() }
        let c = try await Self.endpoint(cluster).connect(logger: Self.logger)
        #expect(try await CentralSchema.migrate(c, logger: Self.logger) == [1])
        #expect(try await CentralSchema.migrate(c, logger: Self.logger) == [])
        try cluster.psql("INSERT INTO central_schema_migrations (version, name) VALUES (99, 'from the future')")
        await #expect { try await CentralSchema.migrate(c, logger: Self.logger) } throws: { error in
            CentralErrorText.describe(error).contains("newer than this build knows")
        }
        try await c.close()
    }
}

/// TLS to a real server with a test authority: what each sslmode accepts and refuses.
@Suite struct CentralTLSTests {
    static let logger = Logger(label: "central-tls-tests", factory: { _ in SwiftLogNoOpLogHandler() })

    enum Outcome: Equatable {
        /// Connected; pg_stat_ssl.ssl of the session ("true"/"false").
        case success(String)
        case failure(String)
    }

    static func attempt(_ cluster: PostgresTestCluster, host: String, tls: CentralEndpoint.TLSMode, ca: String?) async -> Outcome {
        let endpoint = CentralEndpoint(
            host: host, port: cluster.port, user: cluster.user, password: cluster.password, database: cluster.database, tls: tls,
            caFile: ca, connectTimeout: .seconds(10))
        do {
            let c = try await endpoint.connect(logger: logger)
            var ssl = ""
            do {
                for try await on in try await c.query("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger)
                    .decode(String.self)
                {
                    ssl = on
                }
            } catch {
                try? await c.close()
                throw error
            }
            try? await c.close()
            return .success(ssl)
        } catch {
            return .failure(CentralErrorText.describe(error))
        }
    }

    @Test func verifyFullAcceptsOnlyTheRightAuthorityAndNameAndRequireEncrypts() async throws {
        let cluster = try PostgresTestCluster.start(tls: true)
        defer { cluster.destroy() }
        // The certificate names localhost, signed by the test authority: verified and encrypted.
        #expect(await Self.attempt(cluster, host: "localhost", tls: .verifyFull, ca: cluster.tlsAuthorityFile) == .success("true"))
        // Signed by someone else: refused.
        guard case .failure(let other) = await Self.attempt(cluster, host: "localhost", tls: .verifyFull, ca: cluster.otherAuthorityFile)
        else {
            Issue.record("a server certificate from another authority was accepted")
            return
        }
        #expect(!other.isEmpty)
        // The right authority, a name the certificate does not carry: refused.
        guard case .failure = await Self.attempt(cluster, host: "127.0.0.1", tls: .verifyFull, ca: cluster.tlsAuthorityFile) else {
            Issue.record("a certificate for localhost was accepted for 127.0.0.1")
            return
        }
        // require: encrypted, not verified (libpq's meaning).
        #expect(await Self.attempt(cluster, host: "127.0.0.1", tls: .require, ca: nil) == .success("true"))
        // disable: plain.
        #expect(await Self.attempt(cluster, host: "127.0.0.1", tls: .disable, ca: nil) == .success("false"))
    }
}
