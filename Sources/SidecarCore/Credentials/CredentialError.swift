import SystemSupport

/// A failure of the local credential store: the device key, its key-encryption key, the profile
/// files and the directories that hold them.
///
/// Equality compares the ``code`` only, so tests and callers match on what happened, not on the
/// wording. The ``message`` is one line that says what happened and what to do next.
public struct CredentialError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a stable identifier.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String, Sendable {
            case credentialTampered = "credential_tampered"
            case permissionsTooOpen = "permissions_too_open"
            case unsafeDirectory = "unsafe_directory"
            case notOwnedByUser = "not_owned_by_user"
            case keyMissing = "key_missing"
            case keyEncryptionKeyMissing = "key_encryption_key_missing"
            case malformedKeyFile = "malformed_key_file"
            case unsupportedKeyFileVersion = "unsupported_key_file_version"
            case profileNotFound = "profile_not_found"
            case malformedProfile = "malformed_profile"
            case invalidProfileName = "invalid_profile_name"
            case keyMismatch = "key_mismatch"
            case cryptoUnavailable = "crypto_unavailable"
            case fileSystem = "file_system"
        }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// The encrypted key file failed authentication: it was changed, truncated, or belongs to
        /// another profile or device.
        public static let credentialTampered = Code(.credentialTampered)
        /// A secret file is readable or writable by the group or by others.
        public static let permissionsTooOpen = Code(.permissionsTooOpen)
        /// A directory holding secrets is writable by the group or by others.
        public static let unsafeDirectory = Code(.unsafeDirectory)
        /// A secret file or its directory belongs to another user.
        public static let notOwnedByUser = Code(.notOwnedByUser)
        /// There is no device key file for the profile.
        public static let keyMissing = Code(.keyMissing)
        /// There is no key-encryption key where one was expected.
        public static let keyEncryptionKeyMissing = Code(.keyEncryptionKeyMissing)
        /// The key file or key-encryption key file is not in the expected format.
        public static let malformedKeyFile = Code(.malformedKeyFile)
        /// The key file was written by a newer release.
        public static let unsupportedKeyFileVersion = Code(.unsupportedKeyFileVersion)
        /// There is no profile with that name.
        public static let profileNotFound = Code(.profileNotFound)
        /// The profile file is not valid.
        public static let malformedProfile = Code(.malformedProfile)
        /// The profile name cannot be used as a file name and config key.
        public static let invalidProfileName = Code(.invalidProfileName)
        /// The decrypted private key does not match the public key registered for the profile.
        public static let keyMismatch = Code(.keyMismatch)
        /// libsodium could not be initialised or could not allocate secure memory.
        public static let cryptoUnavailable = Code(.cryptoUnavailable)
        /// A file system call failed.
        public static let fileSystem = Code(.fileSystem)

        public var description: String { kind.rawValue }
    }

    public let code: Code
    /// One line: what happened and what to do next. Never contains secret material.
    public let message: String
    /// The file the error is about, when there is one.
    public let path: String?

    public init(_ code: Code, _ message: String, path: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }

    public var description: String { message }

    public static func == (lhs: CredentialError, rhs: CredentialError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension CredentialError {
    /// What to do when the device key cannot be used: setup cannot mend a lost or broken key, only
    /// a new pairing helps, and that needs a new code from the owner.
    public static let newPairingAdvice =
        "ask the agent's owner for a new pairing code, then run `agent-sidecar setup` and enter it"

    /// Whether only a new pairing (a new code from the owner) can mend this: the device key or its
    /// key-encryption key is gone, unreadable, tampered or not this profile's.
    public var needsNewPairing: Bool {
        [.keyMissing, .keyEncryptionKeyMissing, .malformedKeyFile, .credentialTampered, .keyMismatch].contains(code)
    }

    static func tampered(_ path: String) -> CredentialError {
        CredentialError(
            .credentialTampered, "the device key file \(path) is tampered or corrupted; \(CredentialError.newPairingAdvice)", path: path)
    }

    static func fileSystem(_ operation: String, _ path: String, errno code: Int32) -> CredentialError {
        CredentialError(.fileSystem, "could not \(operation) \(path): \(SystemError.describe(code))", path: path)
    }
}
