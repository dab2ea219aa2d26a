import AgentWire
import Foundation
import GatewayCore
import Logging
import SodiumKit
import TestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An HTTP answer as the tests look at it.
struct HTTPAnswer: Sendable {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    var json: JSONValue { (try? JSONValue(parsing: body)) ?? .null }
    var errorCode: String? { json["error"]?["code"]?.stringValue }
    func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }
}

/// A plain HTTP client over URLSession, every request bounded by a timeout.
enum HTTP {
    /// A bound against a hung server, not a speed check: in a full parallel run on 2 cores a call
    /// took up to 11 s (p99, measured by the half-open flood test), so 15 s timed out sound tests.
    static let requestTimeout: TimeInterval = 60
    static let session: URLSession = makeSession()
    /// A second connection pool, for a test that floods a gateway without taking the connections
    /// every other test shares.
    static let floodSession: URLSession = makeSession()

    enum Pool: Sendable {
        case shared, flood
        var session: URLSession { self == .shared ? HTTP.session : HTTP.floodSession }
    }

    static func makeSession() -> URLSession {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = HTTP.requestTimeout
        configuration.httpMaximumConnectionsPerHost = 32
        return URLSession(configuration: configuration)
    }

    static func send(
        _ method: String, _ url: String, json: JSONValue? = nil, headers: [String: String] = [:], pool: Pool = .shared
    ) async throws -> HTTPAnswer {
        let session = pool.session
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.timeoutInterval = HTTP.requestTimeout
        if let json {
            request.httpBody = Data(json.serialized())
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        request.setValue("application/json, text/event-stream", forHTTPHeaderField: "Accept")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)"] = "\(value)" }
        return HTTPAnswer(status: http.statusCode, headers: fields, body: Array(data))
    }
}

/// An Ed25519 device key, made and used with SodiumKit like the sidecar does.
struct DeviceKey: Sendable {
    let key = Ed25519SigningKey.generate()

    var publicKey: [UInt8] { key.publicKey }

    func sign(_ message: [UInt8]) -> [UInt8] { key.sign(message) }

    var publicKeyBase64: String { Base64.encode(publicKey) }
}

/// A paired device with a session: what the sidecar holds.
struct AgentClient: Sendable {
    let baseURL: String
    let deviceID: String
    let key: DeviceKey
    var token: String
    var mcpSessionID: String?
    var protocolVersion = "2025-11-25"
    var pool: HTTP.Pool = .shared

    var authorization: [String: String] { ["Authorization": "Bearer \(token)"] }

    /// The same device, session and MCP session, calling another gateway instance.
    func at(_ otherBaseURL: String) -> AgentClient {
        var client = AgentClient(baseURL: otherBaseURL, deviceID: deviceID, key: key, token: token, mcpSessionID: mcpSessionID)
        client.protocolVersion = protocolVersion
        client.pool = pool
        return client
    }

    static func sessionBody(
        baseURL: String, origin: String? = nil, deviceID: String, key: DeviceKey, timestamp: Int64? = nil, nonce: String? = nil
    )
        -> JSONValue
    {
        let timestamp = timestamp ?? Int64(Date().timeIntervalSince1970)
        let nonce = nonce ?? Base64.encode(try! Sodium.randomBytes(16))
        let message = SessionChallenge.message(origin: origin ?? baseURL, deviceID: deviceID, timestamp: timestamp, nonce: nonce)
        return [
            "deviceId": .string(deviceID), "timestamp": .int(Int(timestamp)), "nonce": .string(nonce),
            "signature": .string(Base64.encode(key.sign(message))),
        ]
    }

    /// Claims `code`, mints a session and initialises MCP.
    static func pair(baseURL: String, code: String, initialize: Bool = true) async throws -> AgentClient {
        let key = DeviceKey()
        let claim = try await HTTP.send(
            "POST", baseURL + "/api/v1/pairing/claim", json: ["code": .string(code), "publicKey": .string(key.publicKeyBase64), "deviceName": "test"])
        guard claim.status == 201, let deviceID = claim.json["deviceId"]?.stringValue else {
            throw TestFailure("claim failed: \(claim.status) \(String(decoding: claim.body, as: UTF8.self))")
        }
        var client = AgentClient(baseURL: baseURL, deviceID: deviceID, key: key, token: "")
        try await client.newSession()
        if initialize { try await client.initialize() }
        return client
    }

    mutating func newSession() async throws {
        let answer = try await HTTP.send("POST", baseURL + "/api/v1/sessions", json: Self.sessionBody(baseURL: baseURL, deviceID: deviceID, key: key))
        guard answer.status == 201, let token = answer.json["token"]?.stringValue else {
            throw TestFailure("session failed: \(answer.status) \(String(decoding: answer.body, as: UTF8.self))")
        }
        self.token = token
    }

    mutating func initialize() async throws {
        let answer = try await rpc(
            "initialize",
            params: ["protocolVersion": .string(protocolVersion), "capabilities": [:], "clientInfo": ["name": "tests", "version": "1"]])
        guard answer.status == 200, let session = answer.header("Mcp-Session-Id") else { throw TestFailure("initialize failed: \(answer.status)") }
        mcpSessionID = session
    }

    func rpc(_ method: String, params: JSONValue? = nil, id: Int = 1, headers: [String: String] = [:]) async throws -> HTTPAnswer {
        var message: JSONObject = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method)]
        if let params { message["params"] = params }
        var all = authorization
        if let mcpSessionID { all["Mcp-Session-Id"] = mcpSessionID }
        if method != "initialize" { all["MCP-Protocol-Version"] = protocolVersion }
        for (name, value) in headers { all[name] = value }
        return try await HTTP.send("POST", baseURL + "/mcp", json: .object(message), headers: all, pool: pool)
    }

    /// `tools/call`; returns the HTTP answer (for auth and rate-limit failures) and the result.
    func call(_ name: String, _ arguments: JSONValue = [:], idempotencyKey: String? = nil) async throws -> (HTTPAnswer, JSONValue) {
        let headers = idempotencyKey.map { ["Idempotency-Key": $0] } ?? [:]
        let answer = try await rpc("tools/call", params: ["name": .string(name), "arguments": arguments], headers: headers)
        return (answer, answer.json["result"] ?? .null)
    }

    func toolNames() async throws -> [String] {
        let answer = try await rpc("tools/list")
        return answer.json["result"]?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
    }
}

extension JSONValue {
    /// The error code of an `isError` tool result.
    var toolErrorCode: String? {
        guard self["isError"]?.boolValue == true else { return nil }
        return self["structuredContent"]?["error"]?["code"]?.stringValue
    }
    var isToolSuccess: Bool { self["isError"]?.boolValue == false }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A fresh temporary directory.
func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "gateway-tests-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The `agent-gateway` binary built next to the test bundle.
func gatewayBinaryPath() -> String {
    var candidates: [String] = []
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var directory = (executable as NSString).deletingLastPathComponent
        for _ in 0..<4 {
            candidates.append(directory + "/agent-gateway")
            directory = (directory as NSString).deletingLastPathComponent
        }
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    candidates.append(root + "/.build/debug/agent-gateway")
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates.last!
}

/// Runs a command of the binary to its end: exit status, stdout, stderr (bounded to a minute).
func runGatewayCommandResult(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let result = try Command.runBlocking(gatewayBinaryPath(), arguments, environment: Command.inheritedEnvironment)
    return (result.status, result.stdout, result.stderr)
}

/// Runs an admin command of the binary and returns its stdout, trimmed; throws unless it exits 0.
/// `shell` runs it behind a shell command such as `umask 022`. Bounded: a command that hangs (as
/// one opening a FIFO did) is killed after a minute.
@discardableResult
func runGatewayCommand(_ arguments: [String], shell: String? = nil) throws -> String {
    let (executable, fullArguments) = behindShell(shell, arguments)
    let result: CommandResult
    do {
        result = try Command.runBlocking(executable, fullArguments, environment: Command.inheritedEnvironment)
    } catch {
        throw TestFailure("agent-gateway \(arguments.first ?? ""): \(error)")
    }
    guard result.status == 0 else { throw TestFailure("agent-gateway \(arguments.first ?? "") failed: \(result.stderr)") }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The gateway binary with `arguments`, run through `/bin/sh -c "PREFIX && exec …"` when there is a prefix.
private func behindShell(_ prefix: String?, _ arguments: [String]) -> (executable: String, arguments: [String]) {
    guard let prefix else { return (gatewayBinaryPath(), arguments) }
    return ("/bin/sh", ["-c", "\(prefix) && exec \"$0\" \"$@\"", gatewayBinaryPath()] + arguments)
}

/// A real `agent-gateway serve --port 0` process on a temp database.
final class GatewayProcess: @unchecked Sendable {
    let directory: String
    let database: String
    let process: SpawnedProcess
    let url: String
    /// `serve --metrics-port`'s scrape URL, when it was given.
    let metricsURL: String?

    /// `descriptorLimit` runs the server under `ulimit -n` (soft and hard), as a small host would;
    /// `shell` behind another shell command (`umask 022`).
    init(
        extraArguments: [String] = [], database: String? = nil, seed: Bool = true, descriptorLimit: Int? = nil, shell: String? = nil
    ) throws {
        directory = temporaryDirectory()
        self.database = database ?? directory + "/gateway.sqlite"
        let options = extraArguments.firstIndex(of: "--hash-key-file").map { Array(extraArguments[$0...($0 + 1)]) } ?? []
        if seed { try runGatewayCommand(["seed-demo", "--db", self.database] + options, shell: shell) }
        let prefix = [descriptorLimit.map { "ulimit -n \($0)" }, shell].compactMap { $0 }
        let (executable, arguments) = behindShell(
            prefix.isEmpty ? nil : prefix.joined(separator: " && "), ["serve", "--db", self.database, "--port", "0"] + extraArguments)
        process = try SpawnedProcess(
            executable: executable, arguments: arguments, environment: Command.inheritedEnvironment, stdin: .null, stdout: .pipe, stderr: .null)
        // Bounded wait for the {"url": …} line.
        let firstLine = LineBox()
        let output = OutputCollector(descriptor: process.stdoutDescriptor) { line in
            if firstLine.get() == nil { firstLine.set(line) }
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while firstLine.get() == nil, !output.finished, ContinuousClock.now < deadline { usleep(5_000) }
        guard let line = firstLine.get(), let url = (try? JSONValue(parsing: line))?["url"]?.stringValue else {
            process.signal(SIGKILL)
            throw TestFailure("serve did not print its URL within 30 s: \(firstLine.get() ?? "(nothing)")")
        }
        self.url = url
        metricsURL = (try? JSONValue(parsing: line))?["metricsUrl"]?.stringValue
    }

    var port: Int { Int(url.split(separator: ":").last!)! }

    @discardableResult
    func admin(_ arguments: [String]) throws -> String {
        guard let command = arguments.first else { return "" }
        if ["agent", "owner", "device", "session", "approvals", "breakglass"].contains(command) {
            return try runGatewayCommand(Array(arguments.prefix(2)) + ["--db", database] + Array(arguments.dropFirst(2)))
        }
        return try runGatewayCommand([command, "--db", database] + Array(arguments.dropFirst()))
    }

    /// Creates an agent and returns (agent id, pairing code).
    func newAgent(projects: [String] = ["WEB"], scopes: [String], owner: String = "alice") throws -> (String, String) {
        let id = try admin(["agent", "create", "--owner", owner, "--name", "test agent", "--project"] + projects + ["--scope"] + scopes)
        let code = try admin(["agent", "pair", id])
        return (id, code)
    }

    /// Sends `signal` and waits up to 3 s for the server to end, then kills it and waits for that.
    /// Bounded short on purpose: callers are async tests on the cooperative pool, and a gateway
    /// with clients' idle keep-alive connections open used to hold this wait for its full 30 s.
    func stop(signal: Int32 = SIGTERM) {
        guard process.isRunning else { return }
        process.signal(signal)
        if process.waitForExitBlocking(timeout: .seconds(3)) == nil {
            process.signal(SIGKILL)
            _ = process.waitForExitBlocking(timeout: .seconds(10))
        }
    }

    deinit { stop() }
}

final class LineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var line: String?
    func set(_ value: String) { lock.withLock { line = value } }
    func get() -> String? { lock.withLock { line } }
}

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var milliseconds = Int64(Date().timeIntervalSince1970 * 1000)
    func advance(seconds: Int64) { lock.withLock { milliseconds += seconds * 1000 } }
    var nowSeconds: Int64 { lock.withLock { milliseconds / 1000 } }
    var gatewayClock: GatewayClock { GatewayClock { [self] in lock.withLock { milliseconds } } }
}

/// GatewayCore's server in this process on port 0, for tests that need to move the clock.
final class InProcessGateway: @unchecked Sendable {
    /// The database: a SQLite path or a PostgreSQL URL (with its password: never print it).
    let location: String
    let store: any GatewayStore
    let admin: GatewayAdmin
    let gateway: Gateway
    let url: String
    let task: Task<Void, any Error>

    /// The SQLite store, for the tests that look at its file (only on the SQLite backend).
    var sqlite: SQLiteGatewayStore { store as! SQLiteGatewayStore }

    /// `plane` puts the gateway in front of a Plane workspace (the double's), bound before the demo
    /// people are seeded; `backend` picks the store (see ``StoreBackend``); `sharing` makes a second
    /// instance on another's database (PostgreSQL: instances share their state there).
    init(
        clock: ManualClock, plane: PlaneSettings? = nil, backend: StoreBackend = .sqlite, sharing other: InProcessGateway? = nil,
        configure: (inout GatewayConfiguration) -> Void = { _ in }
    ) async throws {
        if let other { location = other.location } else { location = try await backend.makeLocation() }
        store = try await backend.openStore(at: location)
        let key = try await GatewayAdmin.loadHashKey(store: store, hashKeyFile: nil)
        admin = try GatewayAdmin(store: store, hashKey: key, clock: clock.gatewayClock)
        if other == nil {
            if let plane { try await TrackerBinding.bind(store, plane: plane) }
            _ = try await admin.seedDemo()
        }
        var configuration = GatewayConfiguration()
        configuration.clock = clock.gatewayClock
        configuration.plane = plane
        configure(&configuration)
        let gateway = try Gateway(store: store, hashKey: key, configuration: configuration)
        self.gateway = gateway
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "gateway-tests")
        logger.logLevel = .critical
        let app = GatewayHTTPServer(gateway: gateway).makeApplication(host: "127.0.0.1", port: 0, logger: logger) { port in
            gateway.adoptListenOrigins(OriginFormat.listenOrigins(host: "127.0.0.1", port: port))
            continuation.yield(port)
            continuation.finish()
        }
        task = Task { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("in-process gateway did not start") }
        url = "http://127.0.0.1:\(port)"
    }

    func newAgent(projects: [String] = ["WEB"], scopes: [String], name: String = "test agent") async throws -> (String, String) {
        let id = try await admin.createAgent(ownerID: "alice", name: name, projects: projects, scopes: scopes)
        return (id, try await admin.createPairingCode(agentID: id))
    }

    func stop() { task.cancel() }
    deinit { task.cancel() }
}
