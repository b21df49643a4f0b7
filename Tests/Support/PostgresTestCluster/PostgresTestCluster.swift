import Foundation

/// A PostgreSQL cluster of a test's own, in a temporary directory, on a loopback port: Debian's
/// `initdb` and `pg_ctl` (package postgresql, which `make deps` installs), no system service.
/// As root (CI), the server runs as the `postgres` user the package creates: PostgreSQL refuses
/// to run as root. The role `apheresisd` has a password (SCRAM over TCP), so a daemon connects as
/// a real deployment would; the test's own `psql` uses the Unix socket.
public final class PostgresTestCluster: Sendable {
    public let root: String
    public let port: Int
    public let user = "apheresisd"
    public let password = "central-test-password-9f3a"
    public let database = "central"
    /// The password, mode 0600, owned by the test's user: for `[central] password_file`.
    public let passwordFile: String
    let binDirectory: String
    let dataDirectory: String
    let socketDirectory: String
    let runAs: String?

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public var url: String { "postgresql://\(user)@127.0.0.1:\(port)/\(database)" }

    /// The TOML block a daemon needs to replicate here as `site`.
    public func centralTOML(site: String, extra: String = "") -> String {
        """
        [central]
        url = "\(url)"
        password_file = "\(passwordFile)"
        site = "\(site)"
        retry_s = 0.5
        report_interval_s = 0.5
        \(extra)
        """
    }

    /// With TLS: `tlsAuthorityFile` signed the server's certificate (for the name `localhost`
    /// only), `otherAuthorityFile` did not.
    public var tlsAuthorityFile: String { root + "/tls/ca.pem" }
    public var otherAuthorityFile: String { root + "/tls/other-ca.pem" }

    public static func start(tls: Bool = false) throws -> PostgresTestCluster {
        let cluster = try PostgresTestCluster(tls: tls)
        try cluster.initialise()
        if tls { try cluster.makeCertificates() }
        try cluster.startServer()
        _ = try cluster.psql("CREATE DATABASE \(cluster.database) OWNER \(cluster.user)", database: "postgres")
        return cluster
    }

    let tls: Bool

    private init(tls: Bool) throws {
        self.tls = tls
        binDirectory = try Self.findBinaries()
        let isRoot = getuid() == 0
        runAs = isRoot ? "postgres" : nil
        if isRoot, getpwnam("postgres") == nil {
            throw Failure(description: "running as root and there is no postgres user: install Debian's postgresql package (make deps)")
        }
        var template = Array((NSTemporaryDirectory() + "/apheresisd-pg-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(description: "mkdtemp: \(String(cString: strerror(errno)))") }
        root = String(cString: made)
        chmod(root, 0o755)
        dataDirectory = root + "/server/data"
        socketDirectory = root + "/socket"
        passwordFile = root + "/central-password"
        port = try Self.freePort()
        _ = FileManager.default.createFile(atPath: passwordFile, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
    }

    private func initialise() throws {
        let serverDirectory = root + "/server"
        try FileManager.default.createDirectory(atPath: serverDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        let pwfile = serverDirectory + "/initdb-password"
        _ = FileManager.default.createFile(atPath: pwfile, contents: Data(password.utf8), attributes: [.posixPermissions: 0o600])
        if let runAs {
            try run("/bin/chown", ["-R", "\(runAs):\(runAs)", serverDirectory, socketDirectory], asServer: false)
        }
        try run(
            binDirectory + "/initdb",
            ["-D", dataDirectory, "-U", user, "--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
             "-E", "UTF8", "--locale=C", "--no-sync"], asServer: true)
    }

    /// Starts the server (again, after `stop`), waiting until it accepts connections.
    public func startServer() throws {
        let server = root + "/server"
        let ssl = tls ? " -c ssl=on -c ssl_cert_file=\(server)/server.pem -c ssl_key_file=\(server)/server.key" : ""
        try run(
            binDirectory + "/pg_ctl",
            ["-D", dataDirectory, "-l", server + "/postgres.log", "-w", "-t", "60", "-o",
             "-p \(port) -k \(socketDirectory) -c listen_addresses=127.0.0.1" + ssl, "start"], asServer: true)
    }

    /// A test authority and a server certificate for `localhost` (no IP address in it), made by
    /// the openssl command line; the server's key is the server user's, mode 0600.
    private func makeCertificates() throws {
        let authorities = root + "/tls"
        let server = root + "/server"
        try FileManager.default.createDirectory(atPath: authorities, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for name in ["ca", "other-ca"] {
            try run(
                "/usr/bin/openssl",
                ["req", "-x509"] + ec + ["-keyout", "\(authorities)/\(name).key", "-out", "\(authorities)/\(name).pem", "-days", "2",
                 "-subj", "/CN=apheresisd central test \(name)"], asServer: false)
        }
        try "subjectAltName = DNS:localhost\n".write(toFile: authorities + "/server.ext", atomically: true, encoding: .utf8)
        try run(
            "/usr/bin/openssl",
            ["req"] + ec + ["-keyout", "\(authorities)/server.key", "-out", "\(authorities)/server.csr", "-subj", "/CN=central test server"],
            asServer: false)
        try run(
            "/usr/bin/openssl",
            ["x509", "-req", "-in", "\(authorities)/server.csr", "-CA", "\(authorities)/ca.pem", "-CAkey", "\(authorities)/ca.key",
             "-CAcreateserial", "-out", "\(authorities)/server.pem", "-days", "2", "-extfile", "\(authorities)/server.ext"],
            asServer: false)
        for file in ["server.pem", "server.key"] {
            try FileManager.default.copyItem(atPath: "\(authorities)/\(file)", toPath: "\(server)/\(file)")
        }
        chmod(server + "/server.key", 0o600)
        if let runAs { try run("/bin/chown", ["\(runAs):\(runAs)", server + "/server.pem", server + "/server.key"], asServer: false) }
    }

    /// A clean stop (`-m fast`): what a database outage looks like to the clients.
    public func stop() throws {
        try run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-w", "-m", "fast", "stop"], asServer: true)
    }

    /// Stops the server if it runs and removes everything.
    public func destroy() {
        _ = try? run(binDirectory + "/pg_ctl", ["-D", dataDirectory, "-w", "-m", "immediate", "stop"], asServer: true)
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs SQL through psql over the Unix socket; unaligned, tuples only, '|' between columns.
    @discardableResult
    public func psql(_ sql: String, database: String? = nil) throws -> String {
        try run(
            binDirectory + "/psql",
            ["-h", socketDirectory, "-p", String(port), "-U", user, "-d", database ?? self.database, "-v", "ON_ERROR_STOP=1",
             "-X", "-A", "-t", "-q", "-c", sql], asServer: true)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The server's log, for a failing test's message.
    public var serverLog: String { (try? String(contentsOfFile: root + "/server/postgres.log", encoding: .utf8)) ?? "" }

    @discardableResult
    private func run(_ executable: String, _ arguments: [String], asServer: Bool) throws -> String {
        // From a directory the server's user may enter (env -C).
        let command = ["/usr/bin/env", "-C", "/", executable] + arguments
        let argv = asServer && runAs != nil ? ["/usr/sbin/runuser", "-u", runAs!, "--"] + command : command
        // Output to files and posix_spawn + waitpid, not Foundation's Process: the server that
        // pg_ctl starts inherits what Process watches for its child's end, and waitUntilExit
        // would wait for the server instead.
        let outputPath = root + "/run-\(UUID().uuidString).out"
        let errorPath = outputPath + ".err"
        defer {
            try? FileManager.default.removeItem(atPath: outputPath)
            try? FileManager.default.removeItem(atPath: errorPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var pid = pid_t()
        var cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
        guard spawned == 0 else { throw Failure(description: "cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = FileManager.default.contents(atPath: outputPath) ?? Data()
        let err = FileManager.default.contents(atPath: errorPath) ?? Data()
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            throw Failure(
                description: "\((executable as NSString).lastPathComponent) \(arguments.joined(separator: " ")) \(exited ? "exited \(code)" : "was killed"): \(String(decoding: err, as: UTF8.self))")
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func findBinaries() throws -> String {
        if let given = ProcessInfo.processInfo.environment["APHERESISD_PG_BIN"] { return given }
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted()
        for version in versions.reversed() where FileManager.default.isExecutableFile(atPath: "\(base)/\(version)/bin/initdb") {
            return "\(base)/\(version)/bin"
        }
        throw Failure(description: "no PostgreSQL server binaries under \(base): install Debian's postgresql package (make deps)")
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw Failure(description: "bind: \(String(cString: strerror(errno)))") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw Failure(description: "getsockname: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
