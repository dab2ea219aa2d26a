import SystemSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory under the system's temporary directory, removed (best effort) on deinit.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/system-support-tests.XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FileSystemError(code: errno, operation: "create", path: "/tmp")
        }
        path = String(cString: created)
    }

    deinit { removeTree(path) }

    /// Names in `directory`, without `.` and `..`.
    static func entries(_ directory: String) -> [String] {
        guard let stream = opendir(directory) else { return [] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    private func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in Self.entries(path) { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

@Suite struct AtomicFileTests {
    static func mode(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode : 0
    }

    @Test("a secret file is 0600 in new 0700 directories, and no temporary file is left")
    func ownerOnly() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/a/b/key"
        try AtomicFile.write(Array("secret".utf8), to: path, permissions: .ownerOnly)
        #expect(Self.mode(path) & 0o7777 == 0o600)
        #expect(Self.mode(path) & S_IFMT == S_IFREG)
        #expect(Self.mode(directory.path + "/a") & 0o7777 == 0o700)
        #expect(Self.mode(directory.path + "/a/b") & 0o7777 == 0o700)
        #expect(try FileSystem.readFile(path) == Array("secret".utf8))
        // Replacing keeps the mode and leaves only the file.
        try AtomicFile.write(Array("second".utf8), to: path, permissions: .ownerOnly)
        #expect(try FileSystem.readFile(path) == Array("second".utf8))
        #expect(TemporaryDirectory.entries(directory.path + "/a/b") == ["key"])
    }

    @Test("exact and preserved permissions")
    func permissions() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/config"
        try AtomicFile.write([1], to: path, permissions: .exactly(0o640))
        #expect(Self.mode(path) & 0o7777 == 0o640)
        try AtomicFile.write([2], to: path, permissions: .preservingExisting(newFileMode: 0o600))
        #expect(Self.mode(path) & 0o7777 == 0o640)
        #expect(TemporaryDirectory.entries(directory.path) == ["config"])
    }

    @Test("a symbolic link at the target is refused when links are not expected, and never followed for a secret")
    func symbolicLinks() throws {
        let directory = try TemporaryDirectory()
        let elsewhere = directory.path + "/elsewhere"
        try AtomicFile.write(Array("theirs".utf8), to: elsewhere, permissions: .exactly(0o644))
        let link = directory.path + "/backup"
        try #require(symlink(elsewhere, link) == 0)

        #expect(throws: FileSystemError.self) { try AtomicFile.write(Array("ours".utf8), to: link, permissions: .ownerOnly, followLinks: false) }
        #expect(Self.mode(link) & S_IFMT == S_IFLNK)
        #expect(try FileSystem.readFile(elsewhere) == Array("theirs".utf8))

        // A secret replaces the link itself; the file it pointed at is untouched.
        try AtomicFile.write(Array("ours".utf8), to: link, permissions: .ownerOnly)
        #expect(Self.mode(link) & S_IFMT == S_IFREG)
        #expect(Self.mode(link) & 0o7777 == 0o600)
        #expect(try FileSystem.readFile(elsewhere) == Array("theirs".utf8))
        #expect(TemporaryDirectory.entries(directory.path) == ["backup", "elsewhere"])
    }

    @Test("leftovers of an interrupted write are removed, and only those")
    func leftovers() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/key"
        for name in [".key.tmp-0123456789ab", ".key.tmp-short", ".other.tmp-0123456789ab"] {
            try AtomicFile.write([0], to: directory.path + "/" + name, permissions: .ownerOnly)
        }
        try AtomicFile.write([1], to: path, permissions: .ownerOnly)
        #expect(TemporaryDirectory.entries(directory.path) == [".key.tmp-short", ".other.tmp-0123456789ab", "key"])
        #expect(try FileSystem.removeFile(path))
        #expect(try !FileSystem.removeFile(path))
    }

    @Test("path arithmetic")
    func paths() {
        #expect(FileSystem.directory(of: "/a/b/c") == "/a/b")
        #expect(FileSystem.directory(of: "/c") == "/")
        #expect(FileSystem.directory(of: "c") == ".")
        #expect(FileSystem.lastComponent(of: "/a/b/c") == "c")
        #expect(FileSystem.join("/a/", "b") == "/a/b")
        #expect(FileSystem.join("/a", "/b") == "/b")
    }
}
