import CSodium

/// Ed25519 signatures (RFC 8032) over libsodium's `crypto_sign`.
public enum Ed25519 {
    /// Bytes in a seed (the stored secret).
    public static let seedLength = Int(crypto_sign_SEEDBYTES)
    /// Bytes in a public key.
    public static let publicKeyLength = Int(crypto_sign_PUBLICKEYBYTES)
    /// Bytes in a detached signature.
    public static let signatureLength = Int(crypto_sign_BYTES)

    /// Checks a detached signature. Wrong-sized signatures or keys are not valid: `false`.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        Sodium.initializeIfPossible()
        return message.withUnsafeBufferPointer { messageBytes in
            crypto_sign_verify_detached(signature, messageBytes.baseAddress, UInt64(messageBytes.count), publicKey) == 0
        }
    }
}

/// An Ed25519 key pair held as its 32-byte seed in guarded memory. The 64-byte signing key is
/// expanded from the seed for each signature, inside guarded memory, and wiped after it.
public final class Ed25519SigningKey: Sendable {
    /// The 32-byte public key.
    public let publicKey: [UInt8]
    /// The 32-byte seed, in guarded memory.
    public let seed: SecretBytes

    /// The key pair for `seed`; throws when the seed is not ``Ed25519/seedLength`` bytes.
    public init(seed: SecretBytes) throws(CryptoError) {
        guard seed.count == Ed25519.seedLength else {
            throw CryptoError(.wrongLength, "an Ed25519 seed must be \(Ed25519.seedLength) bytes, not \(seed.count)")
        }
        self.publicKey = Self.withSigningKey(seed) { (_: UnsafeRawBufferPointer, derivedPublic: [UInt8]) in derivedPublic }
        self.seed = seed
    }

    /// A new key pair from the system's secure random source.
    public static func generate() -> Ed25519SigningKey {
        // A random seed of the right length always yields a key pair.
        try! Ed25519SigningKey(seed: SecretBytes.random(count: Ed25519.seedLength))
    }

    /// A detached signature (64 bytes) over `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        Self.withSigningKey(seed) { secretKey, _ in
            var signature = [UInt8](repeating: 0, count: Ed25519.signatureLength)
            var signatureLength: UInt64 = 0
            message.withUnsafeBufferPointer { messageBytes in
                _ = crypto_sign_detached(
                    &signature, &signatureLength, messageBytes.baseAddress, UInt64(messageBytes.count),
                    secretKey.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            return signature
        }
    }

    /// Expands the seed into the 64-byte signing key inside guarded memory, for the span of `body`.
    private static func withSigningKey<Result>(
        _ seed: SecretBytes, _ body: (UnsafeRawBufferPointer, [UInt8]) -> Result
    ) -> Result {
        var publicKey = [UInt8](repeating: 0, count: Ed25519.publicKeyLength)
        let secretKey = seed.withUnsafeBytes { seedBytes in
            SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { (buffer: UnsafeMutableRawBufferPointer) in
                _ = crypto_sign_seed_keypair(
                    &publicKey, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    seedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return secretKey.withUnsafeBytes { body($0, publicKey) }
    }
}

extension Ed25519SigningKey: CustomStringConvertible {
    public var description: String { "Ed25519SigningKey(public: \(Base64.encode(publicKey)), secret: \(seed))" }
}
