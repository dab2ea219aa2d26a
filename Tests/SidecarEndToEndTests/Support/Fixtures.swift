import AgentWire
import Foundation
import TestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The real `mcp-fixture-server` on a loopback port: the sidecar's upstream in these tests.
final class FixtureServer: @unchecked Sendable {
    let child: ChildProcess
    let url: String

    static func start(_ arguments: [String] = []) async throws -> FixtureServer {
        if let flag = arguments.firstIndex(of: "--require-bearer"), flag + 1 < arguments.count {
            requireSecretLedger("FixtureServer --require-bearer")?.register("bearer token", arguments[flag + 1])
        }
        let child = try ChildProcess(executable: BuiltProducts.path("mcp-fixture-server"), arguments: ["--port", "0"] + arguments)
        let line = try await child.nextLine(timeout: .seconds(20))
        guard let url = try JSONValue(parsing: line)["url"]?.stringValue else {
            throw TestTimeout(description: "fixture printed no url: \(line)")
        }
        return FixtureServer(child: child, url: url)
    }

    init(child: ChildProcess, url: String) {
        self.child = child
        self.url = url
    }

    var baseURL: String { String(url.dropLast("/mcp".count)) }

    /// The fixture's record of what it received.
    func log() async throws -> JSONValue {
        try await HTTP.get("\(baseURL)/_fixture/log")
    }

    func control(_ path: String) async throws {
        _ = try await HTTP.post("\(baseURL)/_fixture/\(path)", body: Data())
    }

    deinit { child.terminate() }
}

/// A tiny HTTP client for test control endpoints (not the code under test).
enum HTTP {
    static func get(_ url: String) async throws -> JSONValue {
        let (data, _) = try await URLSession.shared.data(from: URL(string: url)!)
        return try JSONValue(parsing: [UInt8](data))
    }

    static func post(_ url: String, body: Data, headers: [String: String] = [:]) async throws -> (Int, [UInt8]) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, [UInt8](data))
    }
}

/// The real `agent-sidecar serve` over pipes, with every message it writes checked against the
/// schema of the revision the test speaks.
final class SidecarUnderTest: @unchecked Sendable {
    let child: ChildProcess
    private(set) var sent: [String] = []
    let revision: String

    init(arguments: [String], revision: String, environment: [String: String] = [:]) throws {
        if let flag = arguments.firstIndex(of: "--bearer-env"), flag + 1 < arguments.count,
            let token = environment[arguments[flag + 1]] ?? ProcessInfo.processInfo.environment[arguments[flag + 1]]
        {
            requireSecretLedger("SidecarUnderTest --bearer-env")?.register("bearer token", token)
        }
        self.child = try ChildProcess(
            executable: BuiltProducts.path("agent-sidecar"), arguments: ["serve"] + arguments + ["--log-level", "debug"],
            environment: environment)
        self.revision = revision
    }

    static func legacy(
        upstream: String, revision: String = "2025-06-18", extra: [String] = [], environment: [String: String] = [:]
    ) async throws
        -> SidecarUnderTest
    {
        let sidecar = try SidecarUnderTest(arguments: ["--upstream", upstream] + extra, revision: revision, environment: environment)
        let response = try await sidecar.call(
            0, "initialize", ["protocolVersion": .string(revision), "capabilities": [:], "clientInfo": ["name": "swift-tests", "version": "1"]])
        #expect(response["result"]?["protocolVersion"]?.stringValue == revision)
        sidecar.send(["jsonrpc": "2.0", "method": "notifications/initialized"])
        return sidecar
    }

    static func modern(upstream: String, extra: [String] = []) throws -> SidecarUnderTest {
        try SidecarUnderTest(arguments: ["--upstream", upstream] + extra, revision: "2026-07-28")
    }

    /// `_meta` a 2026-07-28 client puts on every request.
    static let modernMeta: JSONValue = [
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": [:],
        "io.modelcontextprotocol/clientInfo": ["name": "swift-tests", "version": "1"],
    ]

    func send(_ message: JSONValue) {
        sent.append(message.jsonText)
        child.send(message)
    }

    func write(raw line: String) {
        sent.append(line)
        child.write(line)
    }

    /// Records a line that went to stdin some other way (as raw bytes), for the schema check.
    func recordSent(_ line: String) { sent.append(line) }

    func call(_ id: Int, _ method: String, _ params: JSONValue? = nil, timeout: Duration = .seconds(30)) async throws -> JSONValue {
        var message: JSONObject = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method)]
        if let params { message["params"] = params }
        send(.object(message))
        return try await child.response(to: .int(id), timeout: timeout)
    }

    func callTool(
        _ id: Int, _ name: String, _ arguments: JSONValue = [:], meta: JSONValue? = nil, timeout: Duration = .seconds(30)
    ) async throws
        -> JSONValue
    {
        var params: JSONObject = ["name": .string(name), "arguments": arguments]
        if let meta { params["_meta"] = meta }
        return try await call(id, "tools/call", .object(params), timeout: timeout)
    }

    /// Validates everything written to stdout so far against the revision (Tests/Tooling/validate-mcp-messages.py).
    ///
    /// - Parameter sentFilter: picks the sent lines the check may use to learn which method a reply
    ///   answers (a test that reuses ids drops the ambiguous ones).
    func validateAgainstSchema(sentFilter: ([String]) -> [String] = { $0 }, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sidecar-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sentFile = directory.appendingPathComponent("sent.jsonl")
        let receivedFile = directory.appendingPathComponent("received.jsonl")
        try (sentFilter(sent).joined(separator: "\n") + "\n").write(to: sentFile, atomically: true, encoding: .utf8)
        try (child.allStdoutLines.joined(separator: "\n") + "\n").write(to: receivedFile, atomically: true, encoding: .utf8)
        let result = try await runValidator(revision: revision, sent: sentFile.path, received: receivedFile.path)
        #expect(result.status == 0, "schema check failed:\n\(result.output)", sourceLocation: sourceLocation)
    }

    deinit { child.kill() }
}

/// Runs a program to completion and returns its exit status and combined output.
func runToCompletion(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(120)) async throws -> (status: Int32, output: String) {
    let result = try await Command.run(executable, arguments, environment: Command.inheritedEnvironment, mergeStderr: true, timeout: timeout)
    return (result.status, result.stdout)
}

/// Runs Tests/Tooling/validate-mcp-messages.py with the Python of `.venv/mcp2`, which has the MCP SDK's
/// wire types (`mcp_types`), the independent oracle the check uses (scripts/install-deps --python).
func runValidator(revision: String, sent: String, received: String) async throws -> (status: Int32, output: String) {
    let root = BuiltProducts.repositoryRoot
    let python = root.appendingPathComponent(".venv/mcp2/bin/python").path
    let arguments = [
        root.appendingPathComponent("Tests/Tooling/validate-mcp-messages.py").path, "--revision", revision, "--sent", sent, "--received", received,
    ]
    guard FileManager.default.isExecutableFile(atPath: python) else {
        return (2, "no \(python); run scripts/install-deps --python first")
    }
    return try await runToCompletion(python, arguments)
}
