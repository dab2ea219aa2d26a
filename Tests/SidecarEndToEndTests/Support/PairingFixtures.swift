import AgentWire
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import SidecarCore

/// The real `agent-gateway serve` on a loopback port with a temporary SQLite file, and its admin CLI.
final class TestGateway: @unchecked Sendable {
    /// `AGENT_GATEWAY_BINARY` overrides the binary built beside the tests.
    static let binary = ProcessInfo.processInfo.environment["AGENT_GATEWAY_BINARY"] ?? BuiltProducts.path("agent-gateway")

    let database: String
    let child: ChildProcess
    let url: String
    let agentID: String

    /// Starts a gateway with the demo workspace and one agent of alice's (`codex`, WEB with a few scopes).
    static func start(in directory: URL, serveArguments: [String] = []) async throws -> TestGateway {
        let database = directory.appendingPathComponent("gateway.sqlite").path
        let seeded = try await Command.run(binary, ["seed-demo", "--db", database, "--json"], environment: [:])
        guard seeded.status == 0 else { throw TestTimeout(description: "seed-demo failed: \(seeded)") }
        let child = try ChildProcess(executable: binary, arguments: ["serve", "--db", database, "--port", "0"] + serveArguments)
        let line = try await child.nextLine(timeout: .seconds(30))
        guard let url = try JSONValue(parsing: line)["url"]?.stringValue else {
            throw TestTimeout(description: "agent-gateway printed no url: \(line); stderr: \(child.stderr)")
        }
        let created = try await admin(
            database,
            [
                "agent", "create", "--owner", "alice", "--name", "codex", "--project", "WEB", "--scope", "project:read", "issue:create",
                "issue:comment",
            ])
        let agentID = try #require(created["id"]?.stringValue)
        let gateway = TestGateway(database: database, child: child, url: url, agentID: agentID)
        // Its database and audit rows are scanned for the test's secrets when the test ends.
        if let ledger = requireSecretLedger("TestGateway") {
            ledger.watch(.database(path: database))
            ledger.retain(gateway)
        }
        return gateway
    }

    private init(database: String, child: ChildProcess, url: String, agentID: String) {
        self.database = database
        self.child = child
        self.url = url
        self.agentID = agentID
    }

    /// Runs an admin command with `--db` and `--json` and returns what it printed.
    static func admin(_ database: String, _ arguments: [String]) async throws -> JSONValue {
        let result = try await Command.run(binary, arguments + ["--db", database, "--json"], environment: [:])
        guard result.status == 0 else { throw TestTimeout(description: "agent-gateway \(arguments.joined(separator: " ")) failed: \(result)") }
        // `agent pair` prints the code to the owner: that is its job. Every other admin command is scanned.
        if arguments.prefix(2) != ["agent", "pair"] {
            SecretLedger.current?.watch(
                .text(result.stdout + result.stderr, name: "output of agent-gateway \(arguments.prefix(2).joined(separator: " "))"))
        }
        return try JSONValue(parsing: Array(result.stdout.utf8))
    }

    func admin(_ arguments: [String]) async throws -> JSONValue { try await Self.admin(database, arguments) }

    /// A fresh one-time pairing code for the test agent (or another one).
    func pairingCode(agent: String? = nil) async throws -> String {
        let code = try #require(try await admin(["agent", "pair", agent ?? agentID])["code"]?.stringValue)
        SecretLedger.current?.registerPairingCode(code)
        return code
    }

    /// One SQL statement through the sqlite3 shell (for what the admin CLI does not offer: ageing a
    /// pairing code, reading whether sessions were ended).
    func sql(_ statement: String) async throws -> String {
        let result = try await Command.run("/usr/bin/sqlite3", [database, statement], environment: [:])
        guard result.status == 0 else { throw TestTimeout(description: "sqlite3 failed: \(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit { child.terminate() }
}

/// A temporary world for one test: the sidecar's home, Codex's home, a project and a user home.
/// Everything in it, and everything the sidecar printed, is scanned for the test's secrets when
/// the test ends (`SecretLedger`).
final class PairingWorld: @unchecked Sendable {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("sidecar-pairing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("project"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("user"), withIntermediateDirectories: true)
        guard let ledger = requireSecretLedger("PairingWorld") else { return }
        // The key-encryption key file is the KEK itself; every other file must be free of secrets.
        ledger.watch(.directory(root, skipping: { $0.hasSuffix(".kek") }))
        ledger.retain(self)
        // Keys still on disk when the test ends are secrets too, even if the test never read them.
        ledger.registerLate { [self] in
            let profiles = (try? FileManager.default.contentsOfDirectory(atPath: path("sidecar-home/profiles"))) ?? []
            return profiles.filter { $0.hasSuffix(".json") }.compactMap { try? secretMaterial(profile: String($0.dropLast(5)), register: false) }
                .flatMap(\.secrets)
        }
    }

    func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    var sidecarHome: String { path("sidecar-home") }
    var codexHome: String { path("codex") }
    var project: String { path("project") }

    /// The sidecar's environment: nothing from the test runner's own home leaks in or out.
    var environment: [String: String] {
        ["AGENT_SIDECAR_HOME": sidecarHome, "CODEX_HOME": codexHome, "HOME": path("user"), "LANG": "C.UTF-8"]
    }

    /// Registers a pairing code the test uses (a real one, or one made up), for the scan.
    func issued(_ code: String) -> String {
        SecretLedger.current?.registerPairingCode(code)
        return code
    }

    /// Runs `agent-sidecar ARGS` and records what it printed.
    func sidecar(_ arguments: [String], extraEnvironment: [String: String] = [:], timeout: Duration = .seconds(60)) async throws -> CommandResult {
        var environment = environment
        for (name, value) in extraEnvironment { environment[name] = value }
        let result = try await Command.run(BuiltProducts.path("agent-sidecar"), arguments, environment: environment, timeout: timeout)
        SecretLedger.current?.watch(.text(result.stdout, name: "stdout of agent-sidecar \(arguments.first ?? "")"))
        SecretLedger.current?.watch(.text(result.stderr, name: "stderr of agent-sidecar \(arguments.first ?? "")"))
        return result
    }

    /// `agent-sidecar setup` against a gateway, writing into this world.
    func setup(gateway: TestGateway, code: String?, extra: [String] = [], extraEnvironment: [String: String] = [:]) async throws -> CommandResult {
        var arguments = ["setup", "--gateway", gateway.url, "--project-dir", project, "--device-name", "test-device"]
        if let code { arguments += ["--code", code] }
        return try await sidecar(arguments + extra, extraEnvironment: extraEnvironment)
    }

    /// The real `agent-sidecar serve --profile NAME` over pipes.
    func serve(profile: String = "default", extra: [String] = []) throws -> SidecarUnderTest {
        try SidecarUnderTest(arguments: ["--profile", profile] + extra, revision: "2025-11-25", environment: environment)
    }

    func read(_ relative: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path(relative)).map { [UInt8]($0) }
    }

    func text(_ relative: String) -> String? { read(relative).map { String(decoding: $0, as: UTF8.self) } }

    func mode(_ relative: String) -> Int? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path(relative)) else { return nil }
        return (attributes[.posixPermissions] as? NSNumber)?.intValue
    }

    /// Points a profile at a port where nothing listens (1), after its gateway was stopped: a test of
    /// "the gateway is down" must not meet another test's gateway that the kernel gave the stopped
    /// one's port (seen in a full parallel run: logout then reached a gateway that did not know the device).
    func pointProfileAtNothing(profile: String = "default") throws {
        let relative = "sidecar-home/profiles/\(profile).json"
        let bytes = try #require(read(relative))
        var object = try #require(try JSONValue(parsing: bytes).objectValue)
        object["gateway"] = "http://127.0.0.1:1"
        try Data(JSONValue.object(object).serialized()).write(to: URL(fileURLWithPath: path(relative)))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path(relative))
    }

    /// The device id a profile recorded at pairing.
    func deviceID(profile: String = "default") throws -> String {
        let bytes = try #require(read("sidecar-home/profiles/\(profile).json"))
        return try #require(try JSONValue(parsing: bytes)["deviceId"]?.stringValue)
    }

    /// The device key's secret material, read the way the sidecar reads it (for the scan only).
    struct SecretMaterial {
        let keyEncryptionKey: [UInt8]
        let seed: [UInt8]

        var secrets: [SecretLedger.Secret] {
            [SecretLedger.Secret(kind: "key-encryption key", bytes: keyEncryptionKey), SecretLedger.Secret(kind: "device key seed", bytes: seed)]
        }
    }

    /// Reads a profile's device key and KEK, and registers both as the test's secrets.
    @discardableResult
    func secretMaterial(profile: String = "default", register: Bool = true) throws -> SecretMaterial {
        let paths = SidecarPaths(environment: environment)
        let loaded = try ProfileStore(paths: paths).load(profile)
        let key = try CredentialStore(paths: paths, environment: environment).loadDeviceKey(for: loaded)
        guard let kek = FileManager.default.contents(atPath: paths.defaultKeyEncryptionKeyFile(profile)) else {
            throw TestTimeout(description: "profile \(profile) has no key-encryption key file")
        }
        let material = SecretMaterial(keyEncryptionKey: [UInt8](kek), seed: key.seed.withUnsafeBytes { Array($0) })
        if register {
            for secret in material.secrets { SecretLedger.current?.register(secret.kind, secret.bytes) }
        }
        return material
    }

    deinit { try? FileManager.default.removeItem(at: root) }
}

/// Parses a TOML file with Python's tomllib; returns the parsed document as JSON.
func parseTOML(_ path: String) async throws -> JSONValue {
    let script = "import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))"
    let python = FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "/usr/bin/env"
    let arguments = (python == "/usr/bin/env" ? ["python3"] : []) + ["-c", script, path]
    let result = try await Command.run(python, arguments, environment: ProcessInfo.processInfo.environment)
    guard result.status == 0 else { throw TestTimeout(description: "tomllib could not parse \(path): \(result.stderr)") }
    return try JSONValue(parsing: Array(result.stdout.utf8))
}

extension SidecarUnderTest {
    /// `initialize` + `notifications/initialized`, as Codex does.
    func initialize(timeout: Duration = .seconds(30)) async throws -> JSONValue {
        let response = try await call(
            0, "initialize", ["protocolVersion": .string(revision), "capabilities": [:], "clientInfo": ["name": "swift-tests", "version": "1"]],
            timeout: timeout)
        send(["jsonrpc": "2.0", "method": "notifications/initialized"])
        return response
    }
}
