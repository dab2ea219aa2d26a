#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    ///
    /// - Parameters:
    ///   - path: The file.
    ///   - limit: The most bytes to accept; a larger file throws (`EFBIG`) after reading `limit + 1`.
    public static func readFile(_ path: String, limit: Int = .max) throws(FileSystemError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw FileSystemError(code: errno, operation: "read", path: path)
        }
        defer { close(descriptor) }
        do {
            return try Descriptor.readAll(descriptor, limit: limit)
        } catch {
            throw FileSystemError(code: error.code, operation: "read", path: path)
        }
    }

    /// The whole file; a missing file is an error too.
    public static func readRequiredFile(_ path: String, limit: Int = .max) throws(FileSystemError) -> [UInt8] {
        guard let bytes = try readFile(path, limit: limit) else { throw FileSystemError(code: ENOENT, operation: "read", path: path) }
        return bytes
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

    /// Twelve hex digits for a temporary file's name. Uniqueness is what matters (the file is
    /// created with `O_EXCL`), so a failed `getentropy` falls back to the process id and the clock.
    static func randomSuffix() -> String {
        var bytes = [UInt8](repeating: 0, count: 6)
        if bytes.withUnsafeMutableBytes({ getentropy($0.baseAddress, $0.count) }) != 0 {
            var seed = UInt64(UInt32(bitPattern: getpid())) << 32 ^ monotonicNanoseconds()
            for index in bytes.indices {
                bytes[index] = UInt8(truncatingIfNeeded: seed)
                seed >>= 8
            }
        }
        let digits = Array("0123456789abcdef")
        return bytes.map { String(digits[Int($0 >> 4)]) + String(digits[Int($0 & 0xF)]) }.joined()
    }
}
