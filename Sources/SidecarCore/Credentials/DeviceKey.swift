import SodiumKit

/// The device's Ed25519 identity: the public key the gateway registered at pairing, and the
/// private half, which never leaves secure memory except encrypted (see ``EncryptedKeyFile``).
///
/// The secret is held as the 32-byte Ed25519 seed; the signing key is expanded from it for each
/// signature inside secure memory (``SodiumKit/Ed25519SigningKey``).
public final class DeviceKey: Sendable {
    /// Bytes in an Ed25519 seed (the stored secret).
    public static let seedLength = Ed25519.seedLength
    /// Bytes in an Ed25519 public key.
    public static let publicKeyLength = Ed25519.publicKeyLength
    /// Bytes in a detached Ed25519 signature.
    public static let signatureLength = Ed25519.signatureLength

    private let signingKey: Ed25519SigningKey

    /// The 32-byte public key.
    public var publicKey: [UInt8] { signingKey.publicKey }
    /// The 32-byte seed, in secure memory.
    var seed: SecretBytes { signingKey.seed }

    /// A new key pair from the system's secure random source.
    public static func generate() -> DeviceKey {
        DeviceKey(signingKey: Ed25519SigningKey.generate())
    }

    private init(signingKey: Ed25519SigningKey) {
        self.signingKey = signingKey
    }

    /// The key pair for a seed (as decrypted from the key file).
    public init(seed: SecretBytes) throws(CredentialError) {
        do {
            signingKey = try Ed25519SigningKey(seed: seed)
        } catch {
            throw CredentialError(.malformedKeyFile, "the device key has the wrong length; \(CredentialError.newPairingAdvice)")
        }
    }

    /// The public key in standard base64, as the gateway expects it at pairing.
    public var publicKeyBase64: String { Base64.encode(publicKey) }

    /// A detached Ed25519 signature (64 bytes) over `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] { signingKey.sign(message) }

    /// Checks a detached signature: what the gateway does, here for tests and self-checks.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        Ed25519.verify(signature: signature, message: message, publicKey: publicKey)
    }
}

extension DeviceKey: CustomStringConvertible {
    public var description: String { "DeviceKey(public: \(publicKeyBase64), secret: \(seed))" }
}
