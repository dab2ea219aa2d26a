import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the database's files cannot be used safely: one line saying what to do.
public struct DatabaseFileError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Keeps the database owner-only, whatever the umask (issue 11, item 5): the directory is created
/// `0700` when missing and refused when other users may write it (they could plant the `-wal`
/// file SQLite opens next to the database); the database is created `0600` before SQLite opens it,
/// and an existing database, `-wal`, `-shm` or `-journal` with group or other bits is tightened
/// to `0600`. SQLite gives the `-wal` and `-shm` files it creates the database's own mode.
enum DatabaseFiles {
    static let companions = ["-wal", "-shm", "-journal"]

    static func prepare(path: String) throws(DatabaseFileError) {
        let directory = FileSystem.directory(of: path)
        try prepareDirectory(directory)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if descriptor >= 0 {
            // The umask may have taken bits away; set exactly 0600.
            fchmod(descriptor, 0o600)
            close(descriptor)
        } else if errno != EEXIST {
            throw DatabaseFileError(
                message: "cannot create the database \(path) (\(String(cString: strerror(errno)))); check the path and its directory")
        }
        for file in [path] + companions.map({ path + $0 }) { try tighten(file) }
    }

    /// Creates a missing directory (and missing parents) `0700`; refuses one that others may write.
    static func prepareDirectory(_ directory: String) throws(DatabaseFileError) {
        var info = stat()
        if stat(directory, &info) != 0 {
            guard errno == ENOENT else {
                throw DatabaseFileError(message: "cannot inspect the database directory \(directory) (\(String(cString: strerror(errno))))")
            }
            let parent = FileSystem.directory(of: directory)
            if parent != directory { try prepareDirectory(parent) }
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw DatabaseFileError(
                    message: "cannot create the database directory \(directory) (\(String(cString: strerror(errno)))); create it with mkdir -m 700")
            }
            chmod(directory, 0o700)
            return
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DatabaseFileError(message: "\(directory) is not a directory; give --db a path inside a directory")
        }
        let mode = info.st_mode & 0o7777
        guard mode & 0o022 == 0 else {
            throw DatabaseFileError(
                message:
                    "the database directory \(directory) is writable by other users (mode \(String(mode, radix: 8))); keep the database in a directory only you can write, e.g. mkdir -m 700 ~/.local/state/agent-gateway"
            )
        }
    }

    /// Sets `0600` on an existing regular file with group or other bits (never following a link).
    static func tighten(_ file: String) throws(DatabaseFileError) {
        let descriptor = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            if errno == ELOOP { return }  // a link the operator made on purpose; SQLite follows it, we do not chmod through it
            throw DatabaseFileError(message: "cannot open \(file) (\(String(cString: strerror(errno)))); check its owner and permissions")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o077 != 0 else { return }
        guard fchmod(descriptor, 0o600) == 0 else {
            throw DatabaseFileError(
                message: "\(file) is readable by other users and cannot be made private (\(String(cString: strerror(errno)))); run chmod 600 \(file)")
        }
    }
}
