import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decides whether setup may read and write a file of the setup packet, before it touches it.
///
/// The project directory `setup` writes into may be a repository someone else controls, so every
/// path inside it is hostile: a planted `AGENTS.md -> ~/.bashrc`, or `.cursor -> ~/.ssh`, would
/// otherwise turn setup's write (or its backup) into a write anywhere the user can write. Inside the
/// project, setup follows no symbolic link and writes only regular files. In the MCP client's home
/// (`~/.codex`), which belongs to the user, a link to a regular file the user owns is followed (a
/// dotfile manager's), and the outcome names the file actually written.
public enum SetupPathGuard {
    /// The largest existing file setup reads to merge into (AGENTS.md, config.toml, mcp.json).
    public static let maximumFileBytes = 4 * 1024 * 1024

    /// Where setup may write for `path`.
    ///
    /// - Parameters:
    ///   - path: The file, absolute.
    ///   - untrustedRoot: The project directory when `path` lies in it (nil for the client's home).
    /// - Returns: the path to read and write: `path` itself, or in the client's home the regular
    ///   file a link there points to.
    public static func writablePath(_ path: String, untrustedRoot: String?) throws(SetupError) -> String {
        if let untrustedRoot {
            try requireNoLinks(path, below: untrustedRoot)
            try requireRegularFileOrAbsent(path, shown: path)
            return path
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return path }
        guard (info.st_mode & S_IFMT) == S_IFLNK else {
            try requireRegularFileOrAbsent(path, shown: path)
            return path
        }
        guard let target = FileSystem.realPath(path) else {
            throw SetupError(.unsafePath, "\(path) is a symbolic link to nothing; remove it or point it at your config file, then run setup again")
        }
        var targetInfo = stat()
        guard stat(target, &targetInfo) == 0, (targetInfo.st_mode & S_IFMT) == S_IFREG, targetInfo.st_uid == geteuid() else {
            throw SetupError(
                .unsafePath,
                "\(path) links to \(target), which is not a regular file of yours; setup will not write there: replace the link with a file")
        }
        try requireRegularFileOrAbsent(target, shown: path)
        return target
    }

    /// Refuses `path` when any component below `root` (the file included) is a symbolic link.
    static func requireNoLinks(_ path: String, below root: String) throws(SetupError) {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        guard path.hasPrefix(base + "/") else {
            throw SetupError(.unsafePath, "\(path) is not inside the project directory \(root)")
        }
        var current = base
        for component in path.dropFirst(base.count + 1).split(separator: "/") {
            guard component != "..", component != "." else {
                throw SetupError(.unsafePath, "\(path) climbs out of the project directory")
            }
            current += "/" + component
            var info = stat()
            if lstat(current, &info) != 0 { return }  // the rest does not exist yet: setup creates it, as directories and a file
            if (info.st_mode & S_IFMT) == S_IFLNK {
                throw SetupError(
                    .unsafePath,
                    "\(current) is a symbolic link inside the project directory; setup follows no link there (a repository could plant one): remove it, or pass --global to keep the instructions in the Codex home"
                )
            }
        }
    }

    /// Refuses a backup path that is already something other than a regular file: a link there was
    /// planted (setup never makes one), and a write through it would land wherever it points.
    public static func requireBackupSlot(_ path: String) throws(SetupError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            throw SetupError(
                .unsafePath,
                "\(path) is a symbolic link; setup writes no backup through a link (a repository could plant one to overwrite another file): delete it, then run setup again"
            )
        }
        try requireRegularFileOrAbsent(path, shown: path)
    }

    /// Refuses anything at `path` that is not a regular file of a sane size (a FIFO would block the read).
    static func requireRegularFileOrAbsent(_ path: String, shown: String) throws(SetupError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw SetupError(.unsafePath, "\(shown) is not a regular file; move it away, then run setup again")
        }
        guard info.st_size <= maximumFileBytes else {
            throw SetupError(
                .unsafePath,
                "\(shown) is \(info.st_size) bytes, more than the \(maximumFileBytes) setup merges into; shorten it, then run setup again")
        }
    }
}
