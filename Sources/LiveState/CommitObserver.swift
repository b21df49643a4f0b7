/// Told of every durable commit of a device's message, as it happens (the `/metrics` commit-latency
/// histogram). Called on the ingest path: an implementation records and returns, never waits.
public protocol CommitObserver: Sendable {
    func observeCommit(device: String, duration: Duration)
}
