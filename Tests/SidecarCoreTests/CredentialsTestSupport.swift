import Foundation
import SystemSupport
import TestSupport

@testable import SidecarCore

/// A fresh directory under the system temp dir, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/sidecar-test-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw FileSystemError(code: errno, operation: "mkdtemp", path: "tmp") }
        // Resolve symlinks (macOS /var -> /private/var) so paths compare equal to realpath results.
        path = FileSystem.realPath(String(cString: made)) ?? String(cString: made)
    }

    func file(_ name: String) -> String { FileSystem.join(path, name) }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String, mode: mode_t = 0o644) throws {
        let target = file(name)
        try FileSystem.createDirectories(FileSystem.directory(of: target), mode: 0o755)
        try AtomicFile.write(Array(text.utf8), to: target, permissions: .exactly(mode), directoryMode: 0o755)
    }

    func read(_ name: String) throws -> String? {
        try FileSystem.readFile(file(name)).map { String(decoding: $0, as: UTF8.self) }
    }
}

func fileMode(_ path: String) -> mode_t {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return info.st_mode & 0o7777
}

/// Runs a program and returns its exit status and combined output (bounded to 30 s).
func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let result = try Command.runBlocking(executable, arguments, environment: Command.inheritedEnvironment, mergeStderr: true, timeout: .seconds(30))
    return (result.status, result.stdout)
}

/// Whether python3's tomllib accepts the file (the independent TOML parser the merge is checked against).
func pythonTOMLParses(_ path: String) throws -> (ok: Bool, output: String) {
    let result = try run(
        "/usr/bin/env", ["python3", "-c", "import tomllib,sys,json; print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))", path])
    return (result.status == 0, result.output)
}
