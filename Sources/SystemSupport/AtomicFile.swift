#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Replaces a file all at once: the old content or the new, never a mix and never a half.
///
/// It writes a temporary file in the same directory (`O_CREAT | O_EXCL`, so it never follows or
/// reuses a planted file), writes everything, `fsync`s it, renames it over the target and
/// `fsync`s the directory so the rename itself survives a crash.
public enum AtomicFile {
    /// The permission bits of the written file.
    public enum Permissions: Sendable, Equatable {
        /// `0600`: only the owner can read or write. For keys and anything secret.
        case ownerOnly
        /// Exactly these bits.
        case exactly(mode_t)
        /// The bits of the file being replaced, or these for a new file (minus the umask).
        case preservingExisting(newFileMode: mode_t)
    }

    /// Writes `bytes` to `path` atomically.
    ///
    /// - Parameters:
    ///   - bytes: The complete new content.
    ///   - path: The file to create or replace. When it is a symbolic link (a dotfile manager's,
    ///     say) and the permissions are not ``Permissions/ownerOnly``, the link's target is
    ///     replaced and the link stays.
    ///   - permissions: The mode of the written file.
    ///   - directoryMode: The mode of parent directories this call has to create.
    ///   - followLinks: false refuses a `path` that is a symbolic link instead of writing through
    ///     it (backups: a link there was planted, never put there by the user).
    public static func write(
        _ bytes: [UInt8], to path: String, permissions: Permissions, directoryMode: mode_t = 0o700, followLinks: Bool = true
    ) throws {
        if !followLinks {
            var info = stat()
            if lstat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
                throw FileSystemError(code: ELOOP, operation: "write (it is a link or not a regular file; remove it)", path: path)
            }
        }
        try write(to: path, permissions: permissions, directoryMode: directoryMode) { descriptor, temporaryPath in
            try bytes.withUnsafeBytes { try writeAll($0, to: descriptor, path: temporaryPath) }
        }
    }

    /// Writes to `path` atomically, the content coming from `contents`, which gets the open
    /// temporary file's descriptor and path and must write everything (``writeAll(_:to:path:)``).
    /// Callers that hold a secret write it from its guarded memory this way, with
    /// ``Permissions/ownerOnly``.
    ///
    /// The guarantees: the temporary file is created beside the target with `O_CREAT | O_EXCL |
    /// O_NOFOLLOW` (never a planted file or link), gets exactly the mode asked, is `fsync`ed, then
    /// renamed over the target, and the directory is `fsync`ed; directories it creates get
    /// `directoryMode` (0700 by default). An ``Permissions/ownerOnly`` write never follows a link
    /// at `path`: the rename replaces the link itself.
    public static func write(
        to requestedPath: String, permissions: Permissions, directoryMode: mode_t = 0o700,
        contents: (Int32, String) throws -> Void
    ) throws {
        var path = requestedPath
        var info = stat()
        let existing = lstat(path, &info) == 0
        if existing, (info.st_mode & S_IFMT) == S_IFLNK, permissions != .ownerOnly {
            guard let target = FileSystem.realPath(path) else {
                throw FileSystemError(code: ENOENT, operation: "follow the symbolic link", path: path)
            }
            path = target
            _ = stat(path, &info)
        }
        let mode: mode_t
        switch permissions {
        case .ownerOnly: mode = 0o600
        case .exactly(let bits): mode = bits
        case .preservingExisting(let newFileMode):
            if existing, (info.st_mode & S_IFMT) == S_IFREG {
                mode = info.st_mode & 0o7777
            } else {
                let mask = umask(0o022)
                umask(mask)
                mode = newFileMode & ~mask
            }
        }

        let directory = FileSystem.directory(of: path)
        try FileSystem.createDirectories(directory, mode: directoryMode)
        removeLeftovers(of: path)
        let temporaryPath = FileSystem.join(directory, ".\(FileSystem.lastComponent(of: path)).tmp-\(FileSystem.randomSuffix())")
        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard descriptor >= 0 else { throw FileSystemError(code: errno, operation: "create", path: temporaryPath) }
        var renamed = false
        var isOpen = true
        defer {
            if isOpen { close(descriptor) }
            if !renamed { unlink(temporaryPath) }
        }
        guard fchmod(descriptor, mode) == 0 else { throw FileSystemError(code: errno, operation: "set permissions on", path: temporaryPath) }
        try contents(descriptor, temporaryPath)
        guard fsync(descriptor) == 0 else { throw FileSystemError(code: errno, operation: "flush", path: temporaryPath) }
        isOpen = false
        guard close(descriptor) == 0 else { throw FileSystemError(code: errno, operation: "close", path: temporaryPath) }
        guard rename(temporaryPath, path) == 0 else { throw FileSystemError(code: errno, operation: "replace", path: path) }
        renamed = true
        syncDirectory(directory)
    }

    /// Deletes the temporary files (`.NAME.tmp-` and 12 hex digits, beside `path`) that writes of
    /// `path` killed between creating the file and renaming it left behind. Such a file may hold a
    /// whole secret (a key-encryption key), and nothing else would ever remove it. Best effort.
    ///
    /// A write of the same file still running in another process loses its temporary file and
    /// fails with an error instead of silently overwriting this one's result.
    public static func removeLeftovers(of path: String) {
        let directory = FileSystem.directory(of: path)
        let prefix = ".\(FileSystem.lastComponent(of: path)).tmp-"
        guard let stream = opendir(directory) else { return }
        var leftovers: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            guard name.hasPrefix(prefix) else { continue }
            let suffix = name.utf8.dropFirst(prefix.utf8.count)
            if suffix.count == 12, suffix.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) {
                leftovers.append(name)
            }
        }
        closedir(stream)
        for name in leftovers { unlink(FileSystem.join(directory, name)) }
        if !leftovers.isEmpty { syncDirectory(directory) }
    }

    /// Writes all of `buffer` to the temporary file, or throws a ``FileSystemError`` naming it.
    public static func writeAll(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws(FileSystemError) {
        do {
            try Descriptor.writeAll(descriptor, buffer)
        } catch {
            throw FileSystemError(code: error.code, operation: "write", path: path)
        }
    }

    /// Makes a rename or unlink in `directory` durable. Best effort: some file systems refuse it.
    public static func syncDirectory(_ directory: String) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }
}
