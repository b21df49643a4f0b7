import DaemonConfiguration

extension CentralSettings {
    /// The connection `[central]` describes, with the password read by the caller (daemon, central
    /// view and apheresisctl alike).
    public func endpoint(password: String?) -> CentralEndpoint {
        CentralEndpoint(
            host: host, port: port, user: user, password: password, database: database,
            tls: tls, caFile: caFile, connectTimeout: connectTimeout)
    }
}
