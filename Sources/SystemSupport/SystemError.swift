// SystemSupport: the POSIX helpers the sidecar, the gateway, the fixture server and the tests
// share, each written once: reading and writing whole descriptors and files (EINTR, short writes,
// size bounds), the atomic file writer, path arithmetic, the detached thread, the pthread lock
// that stands in for `Synchronization.Mutex` under ThreadSanitizer, and one-line text helpers.
//
// It must not depend on anything of ours, nor on Foundation (the sidecar does not link it): only
// the platform's C library. Secrets are libsodium's business (SodiumKit); this module writes bytes
// it is handed, and callers that hold secrets pass them in place (see `AtomicFile.write(to:...)`).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `errno` values in words.
public enum SystemError {
    /// `strerror` of `code`.
    public static func describe(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

/// A file system call that failed: which call, on which path, with which `errno`.
public struct FileSystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The `errno` value.
    public let code: Int32
    /// What we were doing, e.g. "write", "create directory".
    public let operation: String
    public let path: String

    public init(code: Int32, operation: String, path: String) {
        self.code = code
        self.operation = operation
        self.path = path
    }

    public var description: String {
        "could not \(operation) \(path): \(SystemError.describe(code)); check the path and its permissions, then try again"
    }
}

/// A call on a descriptor that failed with `errno` `code` (`EFBIG`: more bytes than the bound).
public struct DescriptorError: Error, Hashable, Sendable, CustomStringConvertible {
    public let code: Int32

    public init(code: Int32) { self.code = code }

    public var description: String { SystemError.describe(code) }
}

extension String {
    /// The text on one line: every C0 control character and DEL (line breaks, tabs, escapes)
    /// becomes a space, so remote or user text cannot break a line of output or forge a log line.
    /// Longer than `limit` characters, it is cut there and `marker` appended.
    public func flattenedToOneLine(limit: Int = .max, marker: String = "…") -> String {
        let flat = String(unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        return flat.count > limit ? String(flat.prefix(limit)) + marker : flat
    }

    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace).
    public func trimmingSpaces() -> String {
        var view = Substring(self)
        while view.first == " " || view.first == "\t" { view = view.dropFirst() }
        while view.last == " " || view.last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
