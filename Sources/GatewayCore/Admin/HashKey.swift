import SodiumKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The server's keyed-hash secret (session tokens, pairing codes and idempotency keys are stored
/// as keyed hashes). Kept in a file given by `--hash-key-file`, outside the database, so that a
/// copy of the database alone (a backup, a world-readable file) cannot be used to check a guessed
/// pairing code offline (issue 11, item 5).
///
/// The database's `setting` row `hash_key` says where the key is:
///
/// * absent: a new database; with a key file the key is created there, without one in the row.
/// * 64 hex digits: the key itself (databases made without `--hash-key-file`; still accepted).
/// * `file:<check>`: the key lives in a file; `<check>` is a keyed hash of a fixed text under the
///   key, which tells a wrong key file from the right one without revealing the key.
///
/// Moving the key out (the migration): run any command with `--hash-key-file FILE` naming a file
/// that does not exist yet. The key is written there first (`0600`, never over an existing file),
/// and only then is the row replaced by `file:<check>`; an interrupted move is completed by the
/// next run. A key file that already exists is used as it is (as before), and a key left in the
/// row is replaced by the check.
enum HashKey {
    static let settingName = "hash_key"
    static let filePrefix = "file:"

    static func check(_ key: [UInt8]) -> String {
        filePrefix + Hex.encode(Hash.keyed(Array("agent-gateway hash key check v1".utf8), key: key))
    }

    static func load(store: any GatewayStore, hashKeyFile: String?) async throws -> [UInt8] {
        let stored = try await store.read { try $0.setting(settingName) }
        let storedKey = try stored.flatMap { value throws(AdminError) -> [UInt8]? in
            if value.hasPrefix(filePrefix) { return nil }
            guard let key = (try? Hex.decode(value)), key.count == 32 else {
                throw AdminError(code: "hash_key_invalid", message: "the database's stored hash key is damaged; restore the database from a backup")
            }
            return key
        }
        guard let hashKeyFile else {
            if let stored, stored.hasPrefix(filePrefix) {
                throw AdminError(
                    code: "hash_key_file_required",
                    message: "this database keeps its hash key in a file; pass --hash-key-file FILE (the one agent-gateway serve uses)")
            }
            if let storedKey { return storedKey }
            return try await storeInDatabase(store)
        }
        if let key = try readKeyFile(hashKeyFile) {
            if let stored, stored.hasPrefix(filePrefix) {
                guard stored == check(key) else {
                    throw AdminError(
                        code: "hash_key_mismatch",
                        message:
                            "the hash key file \(hashKeyFile) does not hold this database's key; pass the --hash-key-file the database was used with")
                }
                return key
            }
            // An existing file wins over a key stored in the row, as it always did: such a row was
            // usually made by an admin command run without the option. The row then stops holding a key.
            _ = storedKey
            try await store.write { try $0.setSetting(settingName, value: check(key)) }
            return key
        }
        if let stored, stored.hasPrefix(filePrefix) {
            throw AdminError(
                code: "hash_key_file_missing",
                message:
                    "the hash key file \(hashKeyFile) does not exist, and this database's key is kept in a file; pass the file the database was used with"
            )
        }
        // A new key, or the database's own being moved out: into the file first, then the row.
        let key = try storedKey ?? Sodium.randomBytes(32)
        if !(try writeKeyFile(hashKeyFile, key: key)) {
            // Another command created it meanwhile; use what it wrote.
            return try await load(store: store, hashKeyFile: hashKeyFile)
        }
        try await store.write { try $0.setSetting(settingName, value: check(key)) }
        return key
    }

    private static func storeInDatabase(_ store: any GatewayStore) async throws -> [UInt8] {
        let stored = try await store.write { store -> String in
            if let existing = try store.setting(settingName) { return existing }
            let created = Hex.encode(try Sodium.randomBytes(32))
            try store.setSetting(settingName, value: created)
            return created
        }
        guard let key = (try? Hex.decode(stored)), key.count == 32 else {
            throw AdminError(code: "hash_key_invalid", message: "the database's stored hash key is damaged; restore the database from a backup")
        }
        return key
    }

    /// The key in the file (32 raw bytes or 64 hex digits), or `nil` when there is no file. The
    /// file must be a regular file (opened without following a link and without blocking, so a
    /// FIFO in its place cannot hang the gateway), owned by this user or root, and not readable by others.
    static func readKeyFile(_ path: String) throws(AdminError) -> [UInt8]? {
        guard let content = try OwnerOnlyFile.read(path, naming: "the hash key file", codePrefix: "hash_key", limit: 1024) else { return nil }
        if content.count == 32 { return content }
        let text = String(decoding: content, as: UTF8.self).filter { !$0.isWhitespace }
        if let decoded = (try? Hex.decode(text)), decoded.count == 32 { return decoded }
        throw AdminError(code: "hash_key_invalid", message: "the hash key file must hold 32 raw bytes or 64 hex digits")
    }

    /// Writes the key as 64 hex digits and a newline to a new file, `0600`, synced with its
    /// directory. Returns `false` if the file appeared meanwhile.
    static func writeKeyFile(_ path: String, key: [UInt8]) throws(AdminError) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST { return false }
            throw AdminError(
                code: "hash_key_unwritable",
                message: "cannot create the hash key file \(path) (\(String(cString: strerror(errno)))); check that its directory exists and is yours"
            )
        }
        fchmod(descriptor, 0o600)
        let text = Array((Hex.encode(key) + "\n").utf8)
        let written = (try? Descriptor.writeAll(descriptor, text)) != nil
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written, synced else {
            unlink(path)
            throw AdminError(code: "hash_key_unwritable", message: "cannot write the hash key file \(path); check the disk")
        }
        let directory = FileSystem.directory(of: path)
        AtomicFile.syncDirectory(directory)
        return true
    }
}
