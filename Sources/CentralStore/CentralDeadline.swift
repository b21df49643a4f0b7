import PostgresNIO
import Synchronization

/// Every exchange with the central database has a deadline. PostgresNIO 1.33 leaves a query on a
/// connection that closed under it waiting for ever (seen here with the server stopped), and a
/// half-open TCP connection waits as long: the replicator would then sit "up" with nothing moving.
/// At the deadline, or when the caller is cancelled (the daemon stopping), the connection is
/// closed and the caller resumes at once; the waiting task is abandoned, not awaited.
public enum CentralDeadline {
    public struct Expired: Error, CustomStringConvertible {
        public var what: String
        public var limit: Duration
        public var description: String { "\(what): no answer from the central database within \(limit); connection closed" }
    }

    public struct ConnectionClosed: Error, CustomStringConvertible {
        public var description: String { "the connection to the central database was closed (server stopped or unreachable)" }
    }

    public static func run<T: Sendable>(
        _ what: String, limit: Duration, connection: PostgresConnection, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard !connection.isClosed else { throw ConnectionClosed() }
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                guard race.start(continuation) else { return }
                let timer = Task {
                    do { try await Task.sleep(for: limit) } catch { return }  // cancelled: the answer came
                    if race.finish(.failure(Expired(what: what, limit: limit))) { connection.close().whenComplete { _ in } }
                }
                Task {
                    let result: Result<T, any Error>
                    do { result = .success(try await body()) } catch { result = .failure(error) }
                    timer.cancel()
                    race.finish(result)
                }
            }
        } onCancel: {
            if race.finish(.failure(CancellationError())) { connection.close().whenComplete { _ in } }
        }
    }

    /// The first of the answer, the deadline and cancellation resumes the caller; the others find
    /// it done.
    private final class Race<T: Sendable>: Sendable {
        private enum State {
            case waiting
            case running(CheckedContinuation<T, any Error>)
            case finishedEarly(Result<T, any Error>)
            case done
        }
        private let state = Mutex<State>(.waiting)

        /// false: finished (cancelled) before it started; the continuation has been resumed.
        func start(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
            let early: Result<T, any Error>? = state.withLock { s in
                if case .finishedEarly(let result) = s {
                    s = .done
                    return result
                }
                s = .running(continuation)
                return nil
            }
            if let early {
                continuation.resume(with: early)
                return false
            }
            return true
        }

        /// Settles the caller's result if nothing did yet; true if this call did.
        @discardableResult
        func finish(_ result: Result<T, any Error>) -> Bool {
            let (decided, continuation): (Bool, CheckedContinuation<T, any Error>?) = state.withLock { s in
                switch s {
                case .running(let c):
                    s = .done
                    return (true, c)
                case .waiting:
                    s = .finishedEarly(result)
                    return (true, nil)
                case .finishedEarly, .done:
                    return (false, nil)
                }
            }
            continuation?.resume(with: result)
            return decided
        }
    }
}
