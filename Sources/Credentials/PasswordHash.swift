import CSodium
import Dispatch

/// Argon2id password hashes from libsodium, in the encoded form
/// `$argon2id$v=19$m=...,t=...,p=1$salt$hash` (salt and parameters travel
/// with the hash, so they can be raised later without breaking old ones).
///
/// Hashing costs about 0.2 s of CPU and 64 MiB on purpose; every call runs on
/// a GCD thread so the Swift cooperative pool (2 threads here) is never held.
public enum PasswordHash {
    public enum Failure: Error, Hashable, Sendable, CustomStringConvertible {
        case libsodiumUnavailable
        case emptyPassword
        case tooLong(bytes: Int)
        case hashingFailed

        public var description: String {
            switch self {
            case .libsodiumUnavailable: "libsodium could not be initialised"
            case .emptyPassword: "the password is empty"
            case .tooLong(let bytes): "the password is \(bytes) bytes long; at most 1024 bytes are accepted"
            case .hashingFailed: "the password could not be hashed (out of memory?)"
            }
        }
    }

    /// Fewer characters than this are refused when a user is created.
    public static let minimumLength = 10

    public static func hash(_ password: String) async throws(Failure) -> String {
        let bytes = Array(password.utf8)
        let result: Result<String, Failure> = await offPool { hashSynchronously(bytes) }
        return try result.get()
    }

    /// True only when `password` matches `encoded`; a malformed hash is a mismatch.
    public static func verify(_ password: String, against encoded: String) async -> Bool {
        let bytes = Array(password.utf8)
        return await offPool { verifySynchronously(bytes, encoded) }
    }

    static func hashSynchronously(_ password: [UInt8]) -> Result<String, Failure> {
        guard sodium_init() >= 0 else { return .failure(.libsodiumUnavailable) }
        guard !password.isEmpty else { return .failure(.emptyPassword) }
        guard password.count <= 1024 else { return .failure(.tooLong(bytes: password.count)) }
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        let status = password.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { chars in
                crypto_pwhash_str_alg(
                    &out, chars.baseAddress!, UInt64(chars.count),
                    UInt64(crypto_pwhash_OPSLIMIT_INTERACTIVE), Int(crypto_pwhash_MEMLIMIT_INTERACTIVE),
                    crypto_pwhash_ALG_ARGON2ID13)
            }
        }
        guard status == 0 else { return .failure(.hashingFailed) }
        return .success(out.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }

    static func verifySynchronously(_ password: [UInt8], _ encoded: String) -> Bool {
        guard sodium_init() >= 0, !password.isEmpty, encoded.hasPrefix("$argon2id$"),
            encoded.utf8.count < Int(crypto_pwhash_STRBYTES)
        else {
            return false
        }
        return password.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { chars in
                crypto_pwhash_str_verify(encoded, chars.baseAddress!, UInt64(chars.count)) == 0
            }
        }
    }

    /// At most two hashes at a time (64 MiB each): a burst of sign-in attempts waits its turn
    /// instead of taking the machine's memory and cores from the daemon's real work.
    static let gate = Gate(width: 2)

    private static func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await gate.enter()
        let result = await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(returning: work()) }
        }
        await gate.leave()
        return result
    }
}

/// A counting semaphore for async code: `enter` suspends (never blocks a thread) until a place is free.
actor Gate {
    private let width: Int
    private var inside = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(width: Int) { self.width = width }

    func enter() async {
        if inside < width {
            inside += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            inside -= 1
        } else {
            // The place passes straight to the next in line.
            waiting.removeFirst().resume()
        }
    }
}
