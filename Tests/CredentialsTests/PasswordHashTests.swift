import Credentials
import Testing

@Suite("Argon2id password hashes (libsodium)")
struct PasswordHashTests {
    @Test func hashVerifiesOnlyItsOwnPassword() async throws {
        let hash = try await PasswordHash.hash("correct horse battery")
        #expect(hash.hasPrefix("$argon2id$v=19$"))
        #expect(await PasswordHash.verify("correct horse battery", against: hash))
        #expect(await !PasswordHash.verify("correct horse batterY", against: hash))
        #expect(await !PasswordHash.verify("", against: hash))
    }

    @Test func sameInputTwiceGivesDifferentSalts() async throws {
        let a = try await PasswordHash.hash("same password 1")
        let b = try await PasswordHash.hash("same password 1")
        #expect(a != b)
        #expect(await PasswordHash.verify("same password 1", against: b))
    }

    @Test func malformedHashesAreMismatchesNotCrashes() async {
        for bogus in ["", "$argon2id$", "$2b$10$abcdefghijklmnopqrstuv", String(repeating: "x", count: 500), "$argon2id$v=19$m=1"] {
            #expect(await !PasswordHash.verify("anything", against: bogus))
        }
    }

    @Test func emptyPasswordIsRefused() async {
        await #expect(throws: PasswordHash.Failure.emptyPassword) { try await PasswordHash.hash("") }
    }
}
