import AgentWire
import Foundation
import Synchronization
import TestSupport

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

/// A real child process with piped stdio, read line by line on threads of their own.
final class ChildProcess: @unchecked Sendable {
    let process: SpawnedProcess
    /// What the reader threads fill in (not `self`, which the threads must not keep alive).
    private final class Printed: Sendable {
        let stdoutLines = Mutex<[String]>([])
        let stderrText = Mutex("")
    }
    private let printed = Printed()
    private let stdoutConsumed = Mutex(0)
    private var readers: [OutputCollector] = []

    init(executable: String, arguments: [String], environment: [String: String] = [:]) throws {
        var env = Command.inheritedEnvironment
        for (key, value) in environment { env[key] = value }
        process = try SpawnedProcess(executable: executable, arguments: arguments, environment: env)
        let printed = printed
        readers = [
            OutputCollector(descriptor: process.stdoutDescriptor) { line in printed.stdoutLines.withLock { $0.append(line) } },
            OutputCollector(descriptor: process.stderrDescriptor) { line in printed.stderrText.withLock { $0 += line + "\n" } },
        ]
        // Everything it prints is scanned for the test's secrets when the test ends.
        let name = ([URL(fileURLWithPath: executable).lastPathComponent] + arguments.prefix(1)).joined(separator: " ")
        SecretLedger.current?.watch(.process(self, name: name))
    }

    var pid: pid_t { process.pid }

    /// Whether the process closed both stdout and stderr (it exited, or is about to).
    var outputClosed: Bool { readers.allSatisfy(\.finished) }

    func write(_ text: String) { process.writeToStdin(Array((text + "\n").utf8)) }

    /// Writes raw bytes to stdin (blocking until the child has read them).
    func writeRaw(_ bytes: [UInt8]) { process.writeToStdin(bytes) }

    func send(_ message: JSONValue) { process.writeToStdin(message.serialized() + [0x0A]) }

    func closeStdin() { process.closeStdin() }

    var allStdoutLines: [String] { printed.stdoutLines.withLock { $0 } }
    var stderr: String { printed.stderrText.withLock { $0 } }

    /// The next stdout line not yet consumed, waiting up to `timeout`.
    // Waits are bounds, not assertions: generous, because CI machines are loaded (load 15 seen).
    func nextLine(timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let line: String? = printed.stdoutLines.withLock { lines in
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
    func waitForExit(timeout: Duration) async throws -> Int32 { try await process.waitForExit(timeout: timeout) }

    func terminate() { process.signal(SIGTERM) }

    func kill() { process.signal(SIGKILL) }

    deinit { process.signal(SIGKILL) }
}
