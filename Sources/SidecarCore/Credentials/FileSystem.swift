import CSodium

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file system call that failed: which call, on which path, with which `errno`.
public struct FileSystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The `errno` value.
    public let code: Int32
    /// What we were doing, e.g. "write", "create directory".
    public let operation: String
    public let path: String

    public var description: String {
        "could not \(operation) \(path): \(SystemError.describe(code)); check the path and its permissions, then try again"
    }
}

enum SystemError {
    static func describe(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

/// Path arithmetic and the few POSIX calls the credential store and the setup writer need.
public enum FileSystem {
    /// The directory part of a path (`"."` for a bare name).
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a path.
    public static func lastComponent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// `base/component`, without doubling the slash.
    public static func join(_ base: String, _ component: String) -> String {
        if component.hasPrefix("/") { return component }
        return base.hasSuffix("/") ? base + component : base + "/" + component
    }

    /// Whether anything (file, directory, link) exists at `path`.
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// The whole file, or `nil` when it does not exist.
    public static func readFile(_ path: String) throws -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw FileSystemError(code: errno, operation: "read", path: path)
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw FileSystemError(code: errno, operation: "read", path: path)
            }
            if got == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<got])
        }
    }

    /// Removes a file, and what an interrupted atomic write of it left behind (see
    /// ``AtomicFile/removeLeftovers(of:)``); `false` when there was no file.
    @discardableResult
    public static func removeFile(_ path: String) throws -> Bool {
        AtomicFile.removeLeftovers(of: path)
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw FileSystemError(code: errno, operation: "remove", path: path)
    }

    /// Creates `path` and any missing parents. Directories this call creates get exactly `mode`
    /// (not loosened by the umask, not left looser than asked); existing ones are left alone.
    ///
    /// - Returns: the directories it created, outermost first.
    @discardableResult
    public static func createDirectories(_ path: String, mode: mode_t = 0o700) throws -> [String] {
        var missing: [String] = []
        var current = path
        while !current.isEmpty, current != "/", current != "." {
            var info = stat()
            if stat(current, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw FileSystemError(code: ENOTDIR, operation: "create directory", path: current)
                }
                break
            }
            missing.append(current)
            current = directory(of: current)
        }
        var created: [String] = []
        for directory in missing.reversed() {
            if mkdir(directory, mode) != 0 {
                if errno == EEXIST { continue }
                throw FileSystemError(code: errno, operation: "create directory", path: directory)
            }
            if chmod(directory, mode) != 0 {
                throw FileSystemError(code: errno, operation: "set permissions on", path: directory)
            }
            created.append(directory)
        }
        return created
    }

    /// The canonical absolute path (symlinks resolved), or `nil` when it does not resolve.
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The current working directory.
    public static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "." }
        defer { free(cwd) }
        return String(cString: cwd)
    }

    /// Makes `path` absolute against the current directory (no symlink resolution).
    public static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : join(currentDirectory(), path)
    }

    static func randomSuffix() -> String {
        let bytes = (try? Sodium.randomBytes(6)) ?? [0, 0, 0, 0, 0, 0]
        return bytes.map { byte in
            let digits = Array("0123456789abcdef")
            return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
        }.joined()
    }
}

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

    /// Writes a secret to `path` atomically with mode `0600`, straight from secure memory.
    public static func write(_ secret: SecretBytes, to path: String, directoryMode: mode_t = 0o700) throws {
        try write(to: path, permissions: .ownerOnly, directoryMode: directoryMode) { descriptor, temporaryPath in
            try secret.withUnsafeBytes { try writeAll($0, to: descriptor, path: temporaryPath) }
        }
    }

    private static func write(
        to requestedPath: String, permissions: Permissions, directoryMode: mode_t,
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

    private static func writeAll(_ buffer: UnsafeRawBufferPointer, to descriptor: Int32, path: String) throws {
        var offset = 0
        while offset < buffer.count {
            let written = posixWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw FileSystemError(code: errno, operation: "write", path: path)
            }
            offset += written
        }
    }

    /// Makes a rename or unlink in `directory` durable. Best effort: some file systems refuse it.
    static func syncDirectory(_ directory: String) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }
}

private func posixWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
