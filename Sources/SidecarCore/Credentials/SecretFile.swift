import SodiumKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads secret files the way ssh reads private keys: only when nobody but the owner can read or
/// replace them.
///
/// A secret file must be a regular file owned by the current user with no group or other
/// permission bits; the directory it sits in must belong to the user (or root) and must not be
/// writable by the group or by others, since whoever can write the directory can swap the file.
public enum SecretFile {
    /// The largest secret file we read (key files are a few hundred bytes).
    static let maximumSize = 64 * 1024

    /// Reads a secret file into secure memory after checking its permissions and its directory.
    ///
    /// - Parameters:
    ///   - path: The file.
    ///   - missing: The error to throw when the file does not exist.
    public static func read(_ path: String, missing: CredentialError) throws -> SecretBytes {
        try checkDirectory(of: path)
        // O_NONBLOCK: opening a FIFO (or a device) planted in the file's place must not block
        // `serve` forever; O_NOFOLLOW: a symbolic link is not the file we checked. Anything but a
        // regular file is refused below, on the open descriptor.
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY)
        if descriptor < 0 {
            if errno == ENOENT { throw missing }
            if errno == ELOOP {
                throw CredentialError(
                    .malformedKeyFile, "\(path) is a symbolic link, and key files are read only from the file itself; replace the link with the file",
                    path: path)
            }
            throw FileSystemError(code: errno, operation: "read", path: path)
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileSystemError(code: errno, operation: "inspect", path: path) }
        // Checked on the open descriptor, so the file cannot be swapped between check and read.
        try checkFile(info, path: path)
        let size = Int(info.st_size)
        guard size <= maximumSize else {
            throw CredentialError(.malformedKeyFile, "\(path) is too large to be a key file; \(CredentialError.newPairingAdvice)", path: path)
        }
        return try SecretBytes(count: size) { (buffer: UnsafeMutableRawBufferPointer) throws(FileSystemError) in
            do throws(DescriptorError) {
                try Descriptor.readExactly(descriptor, into: buffer)
            } catch {
                throw FileSystemError(code: error.code, operation: error.code == EIO ? "read (file shrank)" : "read", path: path)
            }
        }
    }

    /// Throws unless the file at `path` is a regular file of ours that only we can access.
    public static func checkPermissions(_ path: String) throws {
        try checkDirectory(of: path)
        var info = stat()
        guard stat(path, &info) == 0 else { throw FileSystemError(code: errno, operation: "inspect", path: path) }
        try checkFile(info, path: path)
    }

    static func checkFile(_ info: stat, path: String) throws(CredentialError) {
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw CredentialError(.malformedKeyFile, "\(path) is not a regular file; \(CredentialError.newPairingAdvice)", path: path)
        }
        let user = geteuid()
        guard info.st_uid == user else {
            throw CredentialError(
                .notOwnedByUser,
                "\(path) belongs to uid \(info.st_uid), not to you (uid \(user)); run `agent-sidecar setup` again as the user who runs the sidecar",
                path: path)
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw CredentialError(
                .permissionsTooOpen,
                "permissions \(octal(mode)) for \(path) are too open; run `chmod 600 \(path)`",
                path: path)
        }
    }

    /// Throws unless the directory holding `path` belongs to us (or root) and only its owner can write it.
    public static func checkDirectory(of path: String) throws {
        let directory = FileSystem.directory(of: FileSystem.realPath(path) ?? FileSystem.absolute(path))
        var info = stat()
        guard stat(directory, &info) == 0 else {
            if errno == ENOENT { return }  // the file cannot exist either; the read reports it
            throw FileSystemError(code: errno, operation: "inspect", path: directory)
        }
        let user = geteuid()
        guard info.st_uid == user || info.st_uid == 0 else {
            throw CredentialError(
                .notOwnedByUser,
                "the directory \(directory) belongs to uid \(info.st_uid), not to you (uid \(user)); move the key files to a directory you own",
                path: directory)
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o022 == 0 else {
            throw CredentialError(
                .unsafeDirectory,
                "the directory \(directory) is writable by others (permissions \(octal(mode))); run `chmod 700 \(directory)` or move the key files",
                path: directory)
        }
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

extension AtomicFile {
    /// Writes a secret to `path` atomically with mode `0600`, straight from guarded memory.
    public static func write(_ secret: SecretBytes, to path: String, directoryMode: mode_t = 0o700) throws {
        try write(to: path, permissions: .ownerOnly, directoryMode: directoryMode) { descriptor, temporaryPath in
            try secret.withUnsafeBytes { try writeAll($0, to: descriptor, path: temporaryPath) }
        }
    }
}
