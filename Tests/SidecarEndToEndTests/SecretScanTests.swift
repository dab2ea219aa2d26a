import Foundation
import Testing

/// The secret-hygiene check itself: it must find a secret wherever and however it leaked, and
/// stay quiet about text that only looks similar.
@Suite("The secret scan finds leaks in every place, in every encoding")
struct SecretScanTests {
    static let seed: [UInt8] = (0..<32).map { UInt8(($0 * 37 + 11) % 256) }

    func scratch() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("secret-scan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    func findings(_ leaked: String, register: (SecretLedger) -> Void) -> [String] {
        let ledger = SecretLedger()
        register(ledger)
        ledger.watch(.text("before \(leaked) after", name: "log"))
        return ledger.scan().map(\.description)
    }

    @Test("raw, base64, base64url, hex and truncated forms of key material are found")
    func encodings() {
        let base64 = Data(Self.seed).base64EncodedString()
        let hex = Self.seed.map { String(format: "%02x", $0) }.joined()
        for leaked in [
            base64, String(base64.prefix(20)),
            base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""), hex,
            hex.uppercased(), String(hex.prefix(18)),
        ] {
            let found = findings(leaked) { $0.register("device key seed", Self.seed) }
            #expect(!found.isEmpty, "missed \(leaked)")
        }
        let raw = SecretLedger()
        raw.register("device key seed", Self.seed)
        raw.watch(.text(String(decoding: [0x41] + Self.seed.filter { $0 < 0x80 }, as: UTF8.self), name: "ascii part only"))
        #expect(raw.scan().isEmpty, "a partial byte match is no leak")
    }

    @Test("a pairing code is found as issued, without its dash and in lower case")
    func pairingCodes() {
        for leaked in ["7KQ2-M9XD", "7KQ2M9XD", "7kq2-m9xd", "7kq2m9xd"] {
            #expect(!findings(leaked) { $0.registerPairingCode("7KQ2-M9XD") }.isEmpty, "missed \(leaked)")
        }
        #expect(findings("7KQ2-M9XE") { $0.registerPairingCode("7KQ2-M9XD") }.isEmpty)
    }

    @Test("anything shaped like a session token is a leak; the header format in a message is not")
    func sessionTokens() {
        #expect(!findings("Authorization: Bearer ags_Xq2mK9vL0pR7sT4uW1yZ3aB5cD8eF6gH0iJ2kL4mN6o") { _ in }.isEmpty)
        #expect(findings("send `Authorization: Bearer ags_…` from a session minted at POST /api/v1/sessions") { _ in }.isEmpty)
        #expect(findings("ags_short") { _ in }.isEmpty)
    }

    @Test("files under a watched directory are scanned, except the ones it skips")
    func directories() throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("keys"), withIntermediateDirectories: true)
        try Data("token=bearer-secret-42".utf8).write(to: directory.appendingPathComponent("keys/config.toml"))
        try Data("bearer-secret-42".utf8).write(to: directory.appendingPathComponent("keys/default.kek"))
        let ledger = SecretLedger()
        ledger.register("bearer token", "bearer-secret-42")
        ledger.watch(.directory(directory, skipping: { $0.hasSuffix(".kek") }))
        #expect(ledger.scan().map(\.description) == ["file keys/config.toml contains the bearer token"])
    }

    @Test("a database is scanned as a file and as a dump, and its audit rows are named")
    func databases() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("gateway.sqlite").path
        let setup = try await runToCompletion(
            "/usr/bin/sqlite3",
            [database, "CREATE TABLE auditEvent (detail TEXT); INSERT INTO auditEvent VALUES ('claimed with 7KQ2-M9XD');"])
        try #require(setup.status == 0, "\(setup.output)")
        let ledger = SecretLedger()
        ledger.registerPairingCode("7KQ2-M9XD")
        ledger.watch(.database(path: database))
        let places = Set(ledger.scan().map(\.place))
        #expect(places.contains("audit rows"))
        #expect(places.contains("database dump"))
    }

    @Test("a child process's stdout and stderr are scanned")
    func processes() async throws {
        let ledger = SecretLedger()
        ledger.register("bearer token", "bearer-secret-42")
        let child = try SecretLedger.$current.withValue(ledger) {
            try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo bearer-secret-42 >&2; echo ready; sleep 0.5"])
        }
        _ = try await child.nextLine()
        let deadline = ContinuousClock.now + .seconds(5)
        while !child.stderr.contains("bearer"), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ledger.scan().map(\.description) == ["stderr of sh -c contains the bearer token"])
    }

    @Test("the trait reports a leak as a test issue")
    func traitReports() async throws {
        let test = try #require(Test.current)
        try await withKnownIssue {
            try await SecretScanTrait().provideScope(for: test, testCase: Test.Case.current) {
                SecretLedger.current?.register("bearer token", "bearer-secret-42")
                SecretLedger.current?.watch(.text("leaked bearer-secret-42", name: "a log"))
            }
        } matching: { issue in
            issue.comments.contains { $0.rawValue.contains("a log contains the bearer token") }
        }
    }
}
