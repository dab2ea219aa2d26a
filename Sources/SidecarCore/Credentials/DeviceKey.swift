import CSodium

/// The device's Ed25519 identity: the public key the gateway registered at pairing, and the
/// private half, which never leaves secure memory except encrypted (see ``EncryptedKeyFile``).
///
/// The secret is held as the 32-byte Ed25519 seed; the signing key is expanded from it for each
/// signature inside secure memory.
public final class DeviceKey: Sendable {
    /// Bytes in an Ed25519 seed (the stored secret).
    public static let seedLength = Int(crypto_sign_SEEDBYTES)
    /// Bytes in an Ed25519 public key.
    public static let publicKeyLength = Int(crypto_sign_PUBLICKEYBYTES)
    /// Bytes in a detached Ed25519 signature.
    public static let signatureLength = Int(crypto_sign_BYTES)

    /// The 32-byte public key.
    public let publicKey: [UInt8]
    /// The 32-byte seed, in secure memory.
    let seed: SecretBytes

    /// A new key pair from the system's secure random source.
    public static func generate() -> DeviceKey {
        let seed = SecretBytes.random(count: seedLength)
        // A fresh random seed always yields a key pair.
        return try! DeviceKey(seed: seed)
    }

    /// The key pair for a seed (as decrypted from the key file).
    public init(seed: SecretBytes) throws(CredentialError) {
        guard seed.count == Self.seedLength else {
            throw CredentialError(.malformedKeyFile, "the device key has the wrong length; \(CredentialError.newPairingAdvice)")
        }
        self.publicKey = Self.withSigningKey(seed) { (_: UnsafeRawBufferPointer, derivedPublic: [UInt8]) in derivedPublic }
        self.seed = seed
    }

    /// The public key in standard base64, as the gateway expects it at pairing.
    public var publicKeyBase64: String { StandardBase64.encode(publicKey) }

    /// A detached Ed25519 signature (64 bytes) over `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        Self.withSigningKey(seed) { secretKey, _ in
            var signature = [UInt8](repeating: 0, count: Self.signatureLength)
            var signatureLength: UInt64 = 0
            message.withUnsafeBufferPointer { messageBytes in
                _ = crypto_sign_detached(
                    &signature, &signatureLength, messageBytes.baseAddress, UInt64(messageBytes.count),
                    secretKey.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            return signature
        }
    }

    /// Checks a detached signature: what the gateway does, here for tests and self-checks.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        try? Sodium.ensureInitialized()
        return message.withUnsafeBufferPointer { messageBytes in
            crypto_sign_verify_detached(signature, messageBytes.baseAddress, UInt64(messageBytes.count), publicKey) == 0
        }
    }

    /// Expands the seed into the 64-byte signing key inside secure memory, for the span of `body`.
    private static func withSigningKey<Result>(
        _ seed: SecretBytes, _ body: (UnsafeRawBufferPointer, [UInt8]) -> Result
    ) -> Result {
        var publicKey = [UInt8](repeating: 0, count: publicKeyLength)
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

extension DeviceKey: CustomStringConvertible {
    public var description: String { "DeviceKey(public: \(publicKeyBase64), secret: \(seed))" }
}
