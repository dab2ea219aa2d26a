// SodiumKit: the one libsodium wrapper of the sidecar and the gateway.
//
// It owns what both sides do with libsodium: random bytes, secrets in guarded memory
// (`SecretBytes`), constant-time base64 and hex, Ed25519, XChaCha20-Poly1305, BLAKE2b and SHA-256.
// It depends on CSodium and the platform's C library only: nothing of ours, no Foundation.
//
// Errors on input (malformed encodings, wrong lengths read from a file or a request, a forged
// ciphertext) are thrown as `CryptoError`, never trapped. A precondition guards only what our own
// code gets wrong (a fixed key length from a constant); each one says so where it stands.
import CSodium

/// What a libsodium operation refused, in one line that says what to do next.
public struct CryptoError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// libsodium could not initialise (no system random source).
        case unavailable
        /// Text that is not valid base64 or hex of the expected variant.
        case malformedEncoding
        /// A key, nonce, seed or ciphertext of the wrong size.
        case wrongLength
        /// A ciphertext or tag that does not authenticate under the key and associated data.
        case authenticationFailed
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Errors are equal by kind; the message is for people.
    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }
}

/// libsodium, initialised exactly once for the whole process, and its process-wide primitives.
public enum Sodium {
    // A global `let` is initialised lazily and exactly once (swift_once), whichever thread gets
    // there first; `sodium_init` is itself safe to call again, this only spares the lock.
    private static let initialized: Bool = sodium_init() >= 0

    /// Initialises libsodium if it has not been; throws when it cannot be (no entropy source).
    public static func ensureInitialized() throws(CryptoError) {
        guard initialized else {
            throw CryptoError(.unavailable, "libsodium could not initialise (no system random source?); check the host and try again")
        }
    }

    /// Whether libsodium is initialised. Hashing and verification do not need it to be correct
    /// (they fall back to the portable implementations); they call this to pick the fast ones.
    @discardableResult
    static func initializeIfPossible() -> Bool { initialized }

    /// Fills a fresh array with `count` bytes from the system's secure random source.
    public static func randomBytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        try ensureInitialized()
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return bytes
    }

    /// Constant-time equality of two byte strings (their lengths are not secret).
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        return lhs.withUnsafeBufferPointer { a in
            rhs.withUnsafeBufferPointer { b in sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 }
        }
    }

    /// Overwrites `buffer` with zeros in a way the compiler cannot elide.
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        if let base = buffer.baseAddress, buffer.count > 0 { sodium_memzero(base, buffer.count) }
    }

    /// Overwrites the array's bytes with zeros in a way the compiler cannot elide.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { wipe($0) }
    }
}

/// Proof that libsodium initialised: a random source whose reads cannot fail. Obtain one at
/// start-up with ``system()`` (which throws when there is no random source) and hold it, so code
/// that needs random bytes in a non-throwing place neither traps nor invents a fallback.
public struct RandomSource: Sendable {
    private init() {}

    /// The system's secure random source, once libsodium has initialised.
    public static func system() throws(CryptoError) -> RandomSource {
        try Sodium.ensureInitialized()
        return RandomSource()
    }

    /// `count` bytes from the system's secure random source.
    public func bytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        if count > 0 { bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) } }
        return bytes
    }
}
