import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One secret-hygiene check for every end-to-end test (`@Suite(.secretScan)`): while a test runs,
/// the fixtures register each secret they hand out (pairing codes, the device key's seed, the
/// key-encryption key, bearer tokens) and each place output lands (every child process's stdout
/// and stderr, the commands the test ran, its temporary directories with every generated file,
/// the gateway's database with its audit rows). When the test ends, every place is searched for
/// every secret in every usual encoding, and for anything shaped like a session token.
///
/// Session tokens live only in the sidecar's and the gateway's memory, so no test knows one; any
/// `ags_` followed by 20 or more token characters counts as a leaked token.
final class SecretLedger: @unchecked Sendable {
    /// The ledger of the running test (set by the `.secretScan` trait).
    @TaskLocal static var current: SecretLedger?

    struct Secret: Hashable {
        let kind: String
        let bytes: [UInt8]
    }

    struct Finding: CustomStringConvertible {
        let place: String
        let kind: String
        var description: String { "\(place) contains the \(kind)" }
    }

    /// Somewhere output landed, read only when the test is over.
    enum Place {
        case process(ChildProcess, name: String)
        case text(String, name: String)
        case directory(URL, skipping: @Sendable (String) -> Bool)
        case database(path: String)
    }

    private struct State {
        var secrets: [Secret] = []
        var places: [Place] = []
        /// Called before the scan to collect secrets that only exist on disk by then.
        var lateSecrets: [@Sendable () -> [Secret]] = []
        /// Fixtures kept alive until the scan (their deinit deletes what the scan reads).
        var retained: [any AnyObject & Sendable] = []
    }

    private let state = Mutex(State())

    // MARK: Registration

    func register(_ kind: String, _ secret: [UInt8]) {
        guard !secret.isEmpty else { return }
        state.withLock { $0.secrets.append(Secret(kind: kind, bytes: secret)) }
    }

    func register(_ kind: String, _ secret: String) { register(kind, Array(secret.utf8)) }

    /// A pairing code as issued, and as someone might write it: without the dash, in lower case.
    func registerPairingCode(_ code: String) {
        let bare = code.replacingOccurrences(of: "-", with: "")
        for form in Set([code, bare, code.lowercased(), bare.lowercased()]) { register("pairing code", form) }
    }

    func registerLate(_ provider: @escaping @Sendable () -> [Secret]) { state.withLock { $0.lateSecrets.append(provider) } }

    func watch(_ place: Place) { state.withLock { $0.places.append(place) } }

    func retain(_ object: any AnyObject & Sendable) { state.withLock { $0.retained.append(object) } }

    // MARK: The scan

    /// Ends the processes still running (what they print on the way out counts too), then searches
    /// every place for every secret. Releases the fixtures it kept alive.
    func scan() -> [Finding] {
        let (places, lateSecrets) = state.withLock { ($0.places, $0.lateSecrets) }
        // Children start with no signal blocked (SpawnedProcess); the wait is bounded all the same.
        let deadline = ContinuousClock.now + .seconds(3)
        for case .process(let child, _) in places { child.terminate() }
        for case .process(let child, _) in places {
            while !child.outputClosed, ContinuousClock.now < deadline { usleep(2_000) }
        }
        var secrets = state.withLock { $0.secrets }
        for provider in lateSecrets { secrets += provider() }
        let needles = Self.needles(for: Array(Set(secrets)))

        var findings: [Finding] = []
        func search(_ bytes: [UInt8], place: String) {
            for (kind, needle) in needles where Self.contains(bytes, needle) {
                findings.append(Finding(place: place, kind: kind))
            }
            if Self.containsSessionToken(bytes) { findings.append(Finding(place: place, kind: "session token (ags_…)")) }
        }
        for place in places {
            switch place {
            case .process(let child, let name):
                search(Array(child.allStdoutLines.joined(separator: "\n").utf8), place: "stdout of \(name)")
                search(Array(child.stderr.utf8), place: "stderr of \(name)")
            case .text(let text, let name):
                search(Array(text.utf8), place: name)
            case .directory(let root, let skipping):
                for (relative, bytes) in Self.files(under: root) where !skipping(relative) {
                    search(bytes, place: "file \(relative)")
                }
            case .database(let path):
                for suffix in ["", "-wal", "-journal"] {
                    if let data = FileManager.default.contents(atPath: path + suffix) {
                        search([UInt8](data), place: "database file \(URL(fileURLWithPath: path + suffix).lastPathComponent)")
                    }
                }
                // Text split across SQLite pages is whole again in a dump; audit rows named on their own.
                search(Array(Self.sqlite(path, ".dump").utf8), place: "database dump")
                search(Array(Self.sqlite(path, "SELECT * FROM auditEvent").utf8), place: "audit rows")
            }
        }
        state.withLock { $0.retained = [] }
        return findings
    }

    /// Each secret as bytes, and in the text encodings a careless log line would use.
    static func needles(for secrets: [Secret]) -> [(String, [UInt8])] {
        var needles: [(String, [UInt8])] = []
        for secret in secrets {
            needles.append((secret.kind, secret.bytes))
            for encoding in encodings(of: secret.bytes) where encoding.utf8.count >= 8 {
                needles.append(("\(secret.kind) (encoded)", Array(encoding.utf8)))
            }
        }
        return needles
    }

    /// Base64, base64url and hex, and 16-character prefixes of each (a truncated form still leaks).
    static func encodings(of bytes: [UInt8]) -> [String] {
        let base64 = Data(bytes).base64EncodedString()
        let base64URL = base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        return [base64, String(base64.prefix(16)), base64URL, String(base64URL.prefix(16)), hex, hex.uppercased(), String(hex.prefix(16))]
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        firstIndex(of: needle, in: haystack, from: 0) != nil
    }

    /// Where `needle` first occurs at or after `start` (memchr for its first byte, then memcmp:
    /// fast even in a debug build, over megabytes of output).
    static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count - start >= needle.count else { return nil }
        return haystack.withUnsafeBytes { hay -> Int? in
            needle.withUnsafeBytes { pattern -> Int? in
                let base = hay.baseAddress!
                var offset = start
                let last = hay.count - pattern.count
                while offset <= last {
                    guard let hit = memchr(base + offset, Int32(pattern[0]), last - offset + 1) else { return nil }
                    let position = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + position, pattern.baseAddress!, pattern.count) == 0 { return position }
                    offset = position + 1
                }
                return nil
            }
        }
    }

    /// `ags_` and at least 20 base64url characters: the shape of a session token (`ags_…` in a
    /// message that explains the header format is not one).
    static func containsSessionToken(_ bytes: [UInt8]) -> Bool {
        let prefix = Array("ags_".utf8)
        var start = 0
        while let at = firstIndex(of: prefix, in: bytes, from: start) {
            var length = 0
            while at + prefix.count + length < bytes.count, isTokenCharacter(bytes[at + prefix.count + length]) { length += 1 }
            if length >= 20 { return true }
            start = at + 1
        }
        return false
    }

    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F
    }

    static func files(under root: URL) -> [(String, [UInt8])] {
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var files: [(String, [UInt8])] = []
        for case let relative as String in walker {
            var isDirectory: ObjCBool = false
            let full = root.appendingPathComponent(relative).path
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: full)
            else { continue }
            files.append((relative, [UInt8](data)))
        }
        return files
    }

    static func sqlite(_ path: String, _ statement: String) -> String {
        guard FileManager.default.fileExists(atPath: path), FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") else { return "" }
        return (try? Command.runBlocking("/usr/bin/sqlite3", ["-readonly", path, statement], environment: [:], timeout: .seconds(30)).stdout) ?? ""
    }
}

/// `@Suite(.secretScan)`: every test of the suite runs with a fresh `SecretLedger`, scanned when
/// the test ends (also when it failed or threw).
struct SecretScanTrait: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> SecretScanTrait? {
        testCase == nil ? nil : self
    }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let ledger = SecretLedger()
        var thrown: (any Error)?
        do {
            try await SecretLedger.$current.withValue(ledger) { try await function() }
        } catch {
            thrown = error
        }
        for finding in ledger.scan() {
            Issue.record("secret leak: \(finding)")
        }
        if let thrown { throw thrown }
    }
}

extension Trait where Self == SecretScanTrait {
    /// Scans everything each test printed and wrote for the secrets it handled; see `SecretLedger`.
    static var secretScan: Self { SecretScanTrait() }
}

/// For fixtures that handle secrets: fails the test at once if it runs without `.secretScan`.
func requireSecretLedger(_ fixture: String, sourceLocation: SourceLocation = #_sourceLocation) -> SecretLedger? {
    guard let ledger = SecretLedger.current else {
        Issue.record("\(fixture) handles secrets: put .secretScan on the suite so that the test is scanned", sourceLocation: sourceLocation)
        return nil
    }
    return ledger
}
