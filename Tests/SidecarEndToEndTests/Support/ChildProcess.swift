import AgentWire
import Foundation
import Synchronization

/// Where the package's built executables are: beside the test bundle.
enum BuiltProducts {
    static let directory: URL = {
        if let override = ProcessInfo.processInfo.environment["AGENT_SIDECAR_BUILD_DIR"] {
            return URL(fileURLWithPath: override)
        }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // Inside an .xctest bundle directory on some platforms.
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("agent-sidecar").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory
    }()

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The repository root (for scripts/ and .venv/).
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
}

struct TestTimeout: Error, CustomStringConvertible {
    let description: String
}

/// A real child process with piped stdio, read line by line on background threads.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let stdinPipe = Pipe()
    let stdoutPipe = Pipe()
    let stderrPipe = Pipe()
    private let stdoutLines = Mutex<[String]>([])
    private let stdoutConsumed = Mutex(0)
    private let stderrText = Mutex("")
    private let stdoutClosed = Mutex(false)
    private let stderrClosed = Mutex(false)

    init(executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        try process.run()
        startReading(stdoutPipe.fileHandleForReading) { [self] line in
            self.stdoutLines.withLock { $0.append(line) }
        } onClose: { [self] in
            self.stdoutClosed.withLock { $0 = true }
        }
        startReading(stderrPipe.fileHandleForReading) { [self] line in
            self.stderrText.withLock { $0 += line + "\n" }
        } onClose: { [self] in
            self.stderrClosed.withLock { $0 = true }
        }
        // Everything it prints is scanned for the test's secrets when the test ends.
        let name = ([URL(fileURLWithPath: executable).lastPathComponent] + arguments.prefix(1)).joined(separator: " ")
        SecretLedger.current?.watch(.process(self, name: name))
    }

    /// Whether the process closed both stdout and stderr (it exited, or is about to).
    var outputClosed: Bool { stdoutClosed.withLock { $0 } && stderrClosed.withLock { $0 } }

    private func startReading(_ handle: FileHandle, onLine: @escaping @Sendable (String) -> Void, onClose: @escaping @Sendable () -> Void) {
        let descriptor = handle.fileDescriptor
        Thread.detachNewThread {
            var pending = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 256 * 1024)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count <= 0 {
                    if count < 0, errno == EINTR { continue }
                    if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
                    onClose()
                    return
                }
                var start = 0
                for index in 0..<count where buffer[index] == 0x0A {
                    pending.append(contentsOf: buffer[start..<index])
                    onLine(String(decoding: pending, as: UTF8.self))
                    pending.removeAll(keepingCapacity: true)
                    start = index + 1
                }
                pending.append(contentsOf: buffer[start..<count])
            }
        }
    }

    func write(_ text: String) {
        stdinPipe.fileHandleForWriting.write(Data((text + "\n").utf8))
    }

    func send(_ message: JSONValue) {
        stdinPipe.fileHandleForWriting.write(Data(message.serialized() + [0x0A]))
    }

    func closeStdin() { try? stdinPipe.fileHandleForWriting.close() }

    var allStdoutLines: [String] { stdoutLines.withLock { $0 } }
    var stderr: String { stderrText.withLock { $0 } }

    /// The next stdout line not yet consumed, waiting up to `timeout`.
    // Waits are bounds, not assertions: generous, because CI machines are loaded (load 15 seen).
    func nextLine(timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let line: String? = stdoutLines.withLock { lines in
                stdoutConsumed.withLock { consumed in
                    guard consumed < lines.count else { return nil }
                    defer { consumed += 1 }
                    return lines[consumed]
                }
            }
            if let line { return line }
            if ContinuousClock.now >= deadline { throw TestTimeout(description: "no stdout line within \(timeout); stderr: \(stderr.suffix(2000))") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// The next message on stdout, parsed.
    func nextMessage(timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let line = try await nextLine(timeout: timeout)
        return try JSONValue(parsing: line)
    }

    /// Reads messages until one answers `id` (collecting the others), within `timeout`.
    func response(to id: JSONValue, timeout: Duration = .seconds(30), others: inout [JSONValue]) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw TestTimeout(description: "no response to \(id) within \(timeout)") }
            let message = try await nextMessage(timeout: remaining)
            if message["id"] == id, message["method"] == nil { return message }
            others.append(message)
        }
    }

    func response(to id: JSONValue, timeout: Duration = .seconds(30)) async throws -> JSONValue {
        var others: [JSONValue] = []
        return try await response(to: id, timeout: timeout, others: &others)
    }

    /// Sends a request and waits for its response.
    func call(_ id: Int, _ method: String, _ params: JSONValue? = nil, timeout: Duration = .seconds(30)) async throws -> JSONValue {
        var message: JSONObject = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method)]
        if let params { message["params"] = params }
        send(.object(message))
        return try await response(to: .int(id), timeout: timeout)
    }

    /// Waits for the process to exit; returns its status, or throws if it is still running.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { throw TestTimeout(description: "process still running after \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        return process.terminationStatus
    }

    func terminate() {
        if process.isRunning { process.terminate() }
    }

    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}
