import AgentWire
import SodiumKit

/// The on-disk form of a device private key: the Ed25519 seed sealed with XChaCha20-Poly1305
/// (IETF) under a 32-byte key-encryption key (KEK) that lives in a separate file.
///
/// The file is a small JSON envelope (docs/security.md describes it field by field):
///
/// ```json
/// {"format":"agent-sidecar/device-key","version":1,"cipher":"xchacha20poly1305-ietf",
///  "profile":"default","deviceId":"…","publicKey":"<base64>","nonce":"<base64 24 bytes>",
///  "ciphertext":"<base64 seed + 16-byte tag>"}
/// ```
///
/// The associated data binds the format, its version, the profile name, the device id and the
/// public key, taken from what the caller expects (the profile), not from the envelope: a key
/// file copied to another profile, or edited in any byte, fails authentication.
public enum EncryptedKeyFile {
    public static let format = "agent-sidecar/device-key"
    public static let version = 1
    public static let cipher = "xchacha20poly1305-ietf"
    /// Bytes in a key-encryption key.
    public static let keyEncryptionKeyLength = XChaCha20Poly1305.keyLength
    static let nonceLength = XChaCha20Poly1305.nonceLength
    static let tagLength = XChaCha20Poly1305.tagLength

    /// The associated data for one profile, device and public key.
    static func associatedData(profile: String, deviceID: String, publicKey: [UInt8]) -> [UInt8] {
        Array("\(format)\nv\(version)\n\(profile)\n\(deviceID)\n\(Base64.encode(publicKey))".utf8)
    }

    /// Encrypts the device key's seed and returns the envelope (JSON text and a newline).
    ///
    /// - Parameters:
    ///   - key: The device key.
    ///   - keyEncryptionKey: 32 bytes of KEK.
    ///   - profile: The profile name bound into the associated data.
    ///   - deviceID: The gateway's id for this device, bound into the associated data.
    public static func seal(
        _ key: DeviceKey, keyEncryptionKey: SecretBytes, profile: String, deviceID: String
    ) throws -> [UInt8] {
        guard keyEncryptionKey.count == keyEncryptionKeyLength else {
            throw CredentialError(.malformedKeyFile, "the key-encryption key has the wrong length; \(CredentialError.newPairingAdvice)")
        }
        let associated = associatedData(profile: profile, deviceID: deviceID, publicKey: key.publicKey)
        let sealed: XChaCha20Poly1305.Sealed
        do {
            sealed = try XChaCha20Poly1305.seal(key.seed, associatedData: associated, key: keyEncryptionKey)
        } catch {
            throw CredentialError(.cryptoUnavailable, "could not encrypt the device key (\(error.message)); try again")
        }
        let envelope: JSONValue = [
            "format": .string(format),
            "version": .int(version),
            "cipher": .string(cipher),
            "profile": .string(profile),
            "deviceId": .string(deviceID),
            "publicKey": .string(key.publicKeyBase64),
            "nonce": .string(Base64.encode(sealed.nonce)),
            "ciphertext": .string(Base64.encode(sealed.ciphertext)),
        ]
        return PrettyJSON.render(envelope)
    }

    /// Decrypts a key file into secure memory and checks that it is the key the profile expects.
    ///
    /// - Parameters:
    ///   - bytes: The envelope, as read from `path`.
    ///   - keyEncryptionKey: The KEK.
    ///   - profile: The profile being loaded.
    ///   - deviceID: The device id recorded in the profile.
    ///   - publicKey: The public key recorded in the profile (registered with the gateway).
    ///   - path: The file, for messages.
    public static func open(
        _ bytes: [UInt8], keyEncryptionKey: SecretBytes, profile: String, deviceID: String, publicKey: [UInt8], path: String
    ) throws -> DeviceKey {
        guard let envelope = try? JSONValue(parsing: bytes), envelope.objectValue != nil else {
            throw CredentialError.tampered(path)
        }
        guard envelope["format"]?.stringValue == format else { throw CredentialError.tampered(path) }
        guard envelope["version"]?.intValue == version, envelope["cipher"]?.stringValue == cipher else {
            throw CredentialError(
                .unsupportedKeyFileVersion,
                "the device key file \(path) was written by a newer agent-sidecar; upgrade agent-sidecar",
                path: path)
        }
        guard keyEncryptionKey.count == keyEncryptionKeyLength else {
            throw CredentialError(
                .malformedKeyFile,
                "the key-encryption key for profile \(profile) is not \(keyEncryptionKeyLength) bytes; \(CredentialError.newPairingAdvice)")
        }
        guard let nonce = envelope["nonce"]?.stringValue.flatMap({ try? Base64.decode($0) }), nonce.count == nonceLength,
            let ciphertext = envelope["ciphertext"]?.stringValue.flatMap({ try? Base64.decode($0) }),
            ciphertext.count == DeviceKey.seedLength + tagLength
        else { throw CredentialError.tampered(path) }

        let associated = associatedData(profile: profile, deviceID: deviceID, publicKey: publicKey)
        let seed: SecretBytes
        do {
            seed = try XChaCha20Poly1305.open(
                .init(nonce: nonce, ciphertext: ciphertext), associatedData: associated, key: keyEncryptionKey)
        } catch {
            throw CredentialError.tampered(path)
        }
        let key = try DeviceKey(seed: seed)
        // Authenticated data already covers the public key, so this only fails for a bug or a
        // deliberately mismatched profile; say so plainly anyway.
        guard key.publicKey == publicKey else {
            throw CredentialError(
                .keyMismatch, "the device key in \(path) does not match profile \(profile); \(CredentialError.newPairingAdvice)", path: path)
        }
        return key
    }
}
