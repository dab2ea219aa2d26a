import SodiumKit
import SystemSupport

/// The device key at rest: `keys/NAME.key` (the sealed key, see ``EncryptedKeyFile``) and the
/// key-encryption key (KEK) in a separate `0600` file.
///
/// The KEK is found, in order: an explicit path (`--key-file PATH`), the `AGENT_SIDECAR_KEY_FILE`
/// environment variable (a systemd credential: `$CREDENTIALS_DIRECTORY/agent-sidecar.kek`), the
/// path recorded in the profile at setup, and `keys/NAME.kek`.
public struct CredentialStore: Sendable {
    /// The environment variable that moves the KEK.
    public static let keyFileVariable = "AGENT_SIDECAR_KEY_FILE"

    public let paths: SidecarPaths
    private let environment: [String: String]

    /// - Parameters:
    ///   - paths: The state layout.
    ///   - environment: Where `AGENT_SIDECAR_KEY_FILE` is read from (the process environment by default).
    public init(paths: SidecarPaths, environment: [String: String] = ProcessEnvironment.variables()) {
        self.paths = paths
        self.environment = environment
    }

    /// Where the KEK for `profile` is.
    ///
    /// - Parameters:
    ///   - profile: The profile name.
    ///   - explicitPath: `--key-file PATH`, when given.
    ///   - recordedPath: The path stored in the profile at setup, if any.
    public func keyEncryptionKeyFile(profile: String, explicitPath: String? = nil, recordedPath: String? = nil) -> String {
        if let explicitPath, !explicitPath.isEmpty { return FileSystem.absolute(explicitPath) }
        if let fromEnvironment = environment[Self.keyFileVariable], !fromEnvironment.isEmpty { return FileSystem.absolute(fromEnvironment) }
        if let recordedPath, !recordedPath.isEmpty { return recordedPath }
        return paths.defaultKeyEncryptionKeyFile(profile)
    }

    /// Encrypts and stores a device key for a profile.
    ///
    /// An existing KEK at the chosen path is reused when it is sound (so a KEK provisioned ahead
    /// of time, or a read-only systemd credential, keeps working); otherwise a fresh random KEK
    /// is written there with mode `0600`.
    ///
    /// - Parameters:
    ///   - key: The device key (generated before the pairing claim).
    ///   - profile: The profile name.
    ///   - deviceID: The device id the gateway assigned.
    ///   - keyEncryptionKeyFile: Where the KEK goes (see ``keyEncryptionKeyFile(profile:explicitPath:recordedPath:)``).
    public func store(_ key: DeviceKey, profile: String, deviceID: String, keyEncryptionKeyFile: String) throws {
        try ProfileName.validate(profile)
        try FileSystem.createDirectories(paths.keysDirectory, mode: 0o700)
        let keyEncryptionKey: SecretBytes
        if FileSystem.exists(keyEncryptionKeyFile),
            let existing = try? readKeyEncryptionKey(keyEncryptionKeyFile),
            existing.count == EncryptedKeyFile.keyEncryptionKeyLength
        {
            keyEncryptionKey = existing
        } else {
            keyEncryptionKey = SecretBytes.random(count: EncryptedKeyFile.keyEncryptionKeyLength)
            try AtomicFile.write(keyEncryptionKey, to: keyEncryptionKeyFile)
            try SecretFile.checkPermissions(keyEncryptionKeyFile)
        }
        let sealed = try EncryptedKeyFile.seal(key, keyEncryptionKey: keyEncryptionKey, profile: profile, deviceID: deviceID)
        try AtomicFile.write(sealed, to: paths.keyFile(profile), permissions: .ownerOnly)
    }

    /// Loads and decrypts the device key of a profile into secure memory.
    ///
    /// - Parameters:
    ///   - profile: The profile (its device id and public key are checked against the key file).
    ///   - explicitKeyEncryptionKeyFile: `--key-file PATH`, when given.
    public func loadDeviceKey(for profile: SidecarProfile, explicitKeyEncryptionKeyFile: String? = nil) throws -> DeviceKey {
        try ProfileName.validate(profile.name)
        guard let publicKey = try? Base64.decode(profile.publicKey), publicKey.count == DeviceKey.publicKeyLength else {
            throw CredentialError(
                .malformedProfile, "the profile \(paths.profileFile(profile.name)) has no valid public key; \(CredentialError.newPairingAdvice)")
        }
        let keyPath = paths.keyFile(profile.name)
        let sealed = try SecretFile.read(
            keyPath,
            missing: CredentialError(
                .keyMissing, "there is no device key for profile \(profile.name) (\(keyPath)); \(CredentialError.newPairingAdvice)",
                path: keyPath))
        let kekPath = keyEncryptionKeyFile(
            profile: profile.name, explicitPath: explicitKeyEncryptionKeyFile, recordedPath: profile.keyEncryptionKeyFile)
        let keyEncryptionKey = try readKeyEncryptionKey(kekPath)
        // The envelope is not secret (it is ciphertext), but it was read through the same checks.
        let envelope = sealed.withUnsafeBytes { Array($0) }
        return try EncryptedKeyFile.open(
            envelope, keyEncryptionKey: keyEncryptionKey, profile: profile.name, deviceID: profile.deviceID, publicKey: publicKey,
            path: keyPath)
    }

    /// Deletes the device key of a profile, and its KEK when the KEK is in the default place (a
    /// KEK somewhere else was put there by someone; it is reported, not touched).
    ///
    /// - Returns: the files removed.
    @discardableResult
    public func remove(profile: String) throws -> [String] {
        try ProfileName.validate(profile)
        var removed: [String] = []
        for path in [paths.keyFile(profile), paths.defaultKeyEncryptionKeyFile(profile)] {
            if try FileSystem.removeFile(path) { removed.append(path) }
        }
        if !removed.isEmpty { AtomicFile.syncDirectory(paths.keysDirectory) }
        return removed
    }

    private func readKeyEncryptionKey(_ path: String) throws -> SecretBytes {
        let key = try SecretFile.read(
            path,
            missing: CredentialError(
                .keyEncryptionKeyMissing,
                "the key-encryption key \(path) is missing; set --key-file or \(Self.keyFileVariable) to where it is, or \(CredentialError.newPairingAdvice)",
                path: path))
        guard key.count == EncryptedKeyFile.keyEncryptionKeyLength else {
            throw CredentialError(
                .malformedKeyFile,
                "the key-encryption key \(path) is not \(EncryptedKeyFile.keyEncryptionKeyLength) bytes; \(CredentialError.newPairingAdvice)",
                path: path)
        }
        return key
    }
}
