import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file that holds a secret of the operator's (the hash key, Plane's API key).
enum OwnerOnlyFile {
    /// Its content, or `nil` when it does not exist. The file must be a regular file (opened
    /// without following a link and without blocking, so a FIFO in its place cannot hang the
    /// gateway), owned by this user or root, not readable by others, and at most `limit` bytes.
    static func read(_ path: String, naming what: String, codePrefix: String, limit: Int) throws(AdminError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }
            if errno == ELOOP {
                throw AdminError(code: "\(codePrefix)_unreadable", message: "\(what) \(path) is a symbolic link; pass the file itself")
            }
            throw AdminError(
                code: "\(codePrefix)_unreadable",
                message: "cannot read \(what) \(path) (\(String(cString: strerror(errno)))); check the path and its permissions")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw AdminError(code: "\(codePrefix)_unreadable", message: "\(what) \(path) is not a regular file; pass a regular file")
        }
        guard info.st_uid == geteuid() || info.st_uid == 0 else {
            throw AdminError(code: "\(codePrefix)_unsafe", message: "\(what) \(path) belongs to another user; use a file of your own")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw AdminError(
                code: "\(codePrefix)_unsafe",
                message: "permissions \(String(info.st_mode & 0o777, radix: 8)) for \(what) \(path) are too open; run chmod 600 \(path)")
        }
        guard info.st_size <= limit else {
            throw AdminError(code: "\(codePrefix)_invalid", message: "\(what) \(path) is larger than \(limit) bytes")
        }
        // A read error or a file that grew past the bound reads as nothing, which callers refuse.
        return (try? Descriptor.readAll(descriptor, limit: limit)) ?? []
    }
}
