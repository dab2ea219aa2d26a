import AgentWire
import Foundation
import SodiumKit
import SystemSupport
import TestSupport

@testable import GatewayCore

#if canImport(Glibc)
import Glibc
#endif

/// The TEST DOUBLE of Plane's API (`Tests/Doubles/plane-api-double.py`, not Plane) as a process on
/// loopback, with its test controls (`/_double/...`): faults, the calls it received, its data.
final class PlaneDouble: @unchecked Sendable {
    let process: SpawnedProcess
    let url: String
    let keyFile: String
    let key: String

    private init(process: SpawnedProcess, url: String, keyFile: String, key: String) {
        self.process = process
        self.url = url
        self.keyFile = keyFile
        self.key = key
    }

    /// Starts the double and waits (up to 30 s, without holding a thread of the cooperative pool)
    /// for its `listening on` line.
    static func start(rateLimit: Int = 600) async throws -> PlaneDouble {
        let directory = temporaryDirectory()
        let keyFile = directory + "/plane-api-key"
        let key = "plane_api_" + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        _ = FileManager.default.createFile(atPath: keyFile, contents: Data(key.utf8), attributes: [.posixPermissions: 0o600])
        let (process, url) = try await startDouble(
            "plane-api-double.py", ["--api-key-file", keyFile, "--rate-limit", String(rateLimit)], name: "the Plane double")
        return PlaneDouble(process: process, url: url, keyFile: keyFile, key: key)
    }

    deinit { process.signal(SIGKILL) }

    /// The gateway's settings for this double's workspace `acme`.
    func settings() -> PlaneSettings {
        var settings = PlaneSettings(apiURL: url, workspace: "acme", apiKey: SecretBytes(copying: Array(key.utf8)))
        settings.metadataCacheSeconds = 0
        settings.maximumBackOffSeconds = 2
        return settings
    }

    /// A request to Plane's API as a person would make it (with the bot's key).
    func api(_ method: String, _ path: String, json: JSONValue? = nil) async throws -> HTTPAnswer {
        try await HTTP.send(method, url + "/api/v1/workspaces/acme/" + path, json: json, headers: ["X-API-Key": key])
    }

    /// Makes the next `count` matching requests fail (`status`), wait (`delay_ms`) or drop.
    func fault(_ fault: JSONValue) async throws {
        let answer = try await HTTP.send("POST", url + "/_double/faults", json: fault)
        guard answer.status == 201 else { throw TestFailure("the double refused the fault: \(answer.status)") }
    }

    /// Every request the double answered: method, path, status.
    func calls() async throws -> (all: [JSONValue], destructive: [JSONValue]) {
        let json = try await HTTP.send("GET", url + "/_double/calls").json
        return (json["calls"]?.arrayValue ?? [], json["destructive"]?.arrayValue ?? [])
    }

    func clearCalls() async throws { _ = try await HTTP.send("DELETE", url + "/_double/calls") }

    /// The project's id, looked up by its identifier.
    func projectID(_ identifier: String) async throws -> String {
        let projects = try await api("GET", "projects/?per_page=100").json["results"]?.arrayValue ?? []
        guard let id = projects.first(where: { $0["identifier"]?.stringValue == identifier })?["id"]?.stringValue else {
            throw TestFailure("no project \(identifier) in the double")
        }
        return id
    }

    /// The work items of a project whose `external_id` starts with `prefix`.
    func workItems(_ identifier: String) async throws -> [JSONValue] {
        let id = try await projectID(identifier)
        return try await api("GET", "projects/\(id)/issues/?per_page=1000").json["results"]?.arrayValue ?? []
    }
}

/// Runs `body`, which blocks (a `GatewayProcess` waits for its child with sleeps), on a thread of its
/// own: a test must never hold one of the cooperative pool's two threads.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        startDetachedThread(name: "off-the-pool") { continuation.resume(with: Result { try body() }) }
    }
}

extension GatewayProcess {
    /// `init`, without holding a thread of the cooperative pool while the child starts (it waits
    /// with sleeps, up to 30 s on a loaded machine; two such waits stalled every in-process server).
    static func start(
        extraArguments: [String] = [], database: String? = nil, seed: Bool = true, descriptorLimit: Int? = nil, shell: String? = nil
    ) async throws -> GatewayProcess {
        try await offThePool {
            try GatewayProcess(extraArguments: extraArguments, database: database, seed: seed, descriptorLimit: descriptorLimit, shell: shell)
        }
    }
}

/// The repository's root, from this file's place in it.
func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
}

/// Starts a test double of Tests/Doubles (`python3 SCRIPT --port 0 ARGUMENTS…`) and waits, up to
/// 30 s and without holding a thread of the cooperative pool, for its `listening on URL` line.
func startDouble(_ script: String, _ arguments: [String], name: String) async throws -> (SpawnedProcess, String) {
    let process = try SpawnedProcess(
        executable: "/usr/bin/env",
        arguments: ["python3", repositoryRoot() + "/Tests/Doubles/" + script, "--port", "0"] + arguments,
        environment: Command.inheritedEnvironment, stdin: .null, stdout: .pipe, stderr: .null)
    let firstLine = LineBox()
    let output = OutputCollector(descriptor: process.stdoutDescriptor) { line in
        if firstLine.get() == nil { firstLine.set(line) }
    }
    let deadline = ContinuousClock.now + .seconds(30)
    while firstLine.get() == nil, !output.finished, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    guard let line = firstLine.get(), line.hasPrefix("listening on ") else {
        process.signal(SIGKILL)
        throw TestFailure("\(name) did not start within 30 s: \(firstLine.get() ?? "(nothing)")")
    }
    return (process, String(line.dropFirst("listening on ".count)))
}
