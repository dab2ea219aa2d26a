import AgentWire
import Foundation
import TestSupport
import Testing

/// `Reliability/fault-proxy.py` on a loopback port: relays HTTP between the sidecar and its upstream,
/// and breaks exchanges on request (see the script's header for every fault and its parameters).
final class FaultProxy: @unchecked Sendable {
    let child: ChildProcess
    /// Where clients connect (`http://` or, with a certificate, `https://127.0.0.1:PORT`).
    let url: String
    /// The control endpoint (plain HTTP).
    let control: String

    /// The system's Python (the proxy needs only the standard library).
    static var python: (String, [String]) {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? ("/usr/bin/python3", []) : ("/usr/bin/env", ["python3"])
    }

    /// Starts the proxy; `upstream` is `http://127.0.0.1:PORT` (no path), or nil to set it later.
    static func start(upstream: String? = nil, certificate: SelfSignedCertificate? = nil) async throws -> FaultProxy {
        let script = BuiltProducts.repositoryRoot.appendingPathComponent("Reliability/fault-proxy.py").path
        var arguments = python.1 + [script]
        if let upstream { arguments += ["--upstream", upstream] }
        if let certificate { arguments += ["--tls-cert", certificate.certificate, "--tls-key", certificate.key] }
        let child = try ChildProcess(executable: python.0, arguments: arguments)
        let line = try await child.nextLine(timeout: .seconds(20))
        let announced = try JSONValue(parsing: line)
        guard let url = announced["url"]?.stringValue, let control = announced["control"]?.stringValue else {
            throw TestTimeout(description: "fault-proxy printed no url: \(line); stderr: \(child.stderr)")
        }
        return FaultProxy(child: child, url: url, control: control)
    }

    private init(child: ChildProcess, url: String, control: String) {
        self.child = child
        self.url = url
        self.control = control
    }

    private func post(_ path: String, _ body: JSONValue = [:]) async throws {
        let (status, answer) = try await HTTP.post(control + path, body: Data(body.serialized()))
        guard status == 200 else { throw TestTimeout(description: "fault-proxy \(path): HTTP \(status) \(String(decoding: answer, as: UTF8.self))") }
    }

    /// Adds a fault rule, e.g. `["fault": "status", "status": 503, "match": ["tool": "create_issue"], "count": 1]`.
    func inject(_ rule: JSONValue) async throws { try await post("/fault", rule) }

    /// Removes every rule and reopens the listener if it was closed.
    func clear() async throws { try await post("/clear") }

    /// Closes the listener and resets every open connection, as if the upstream had died.
    func refuse() async throws { try await post("/refuse") }

    func setUpstream(_ url: String) async throws { try await post("/upstream", ["url": .string(url)]) }

    func clearLog() async throws { try await post("/clear-log") }

    /// Every request the proxy saw, oldest first.
    func requests() async throws -> [JSONValue] {
        try await HTTP.get(control + "/log")["requests"]?.arrayValue ?? []
    }

    deinit {
        child.closeStdin()
        child.terminate()
    }
}

/// A self-signed certificate and its key, made with the `openssl` command for one test.
struct SelfSignedCertificate {
    let certificate: String
    let key: String

    /// - Parameter subjectAltName: e.g. `IP:127.0.0.1` (valid for the proxy) or `DNS:elsewhere.test`.
    static func make(in directory: URL, name: String = "proxy", subjectAltName: String = "IP:127.0.0.1") async throws -> SelfSignedCertificate {
        let certificate = directory.appendingPathComponent("\(name).crt").path
        let key = directory.appendingPathComponent("\(name).key").path
        let result = try await Command.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                "/CN=fault-proxy test", "-addext", "subjectAltName=\(subjectAltName)", "-keyout", key, "-out", certificate,
            ], environment: [:])
        guard result.status == 0 else { throw TestTimeout(description: "openssl could not make a certificate: \(result)") }
        return SelfSignedCertificate(certificate: certificate, key: key)
    }
}

/// A gateway that the sidecar reaches only through a fault proxy: the gateway accepts the
/// proxy's origin in session signatures, and the profile `setup` wrote names the proxy.
struct ProxiedPairing {
    let world: PairingWorld
    let gateway: TestGateway
    let proxy: FaultProxy
    let material: PairingWorld.SecretMaterial

    /// - Parameters:
    ///   - serveArguments: extra `agent-gateway serve` flags.
    ///   - scopes: the test agent's scopes on WEB (the default agent of ``TestGateway`` has
    ///     `project:read issue:create issue:comment`).
    static func start(serveArguments: [String] = []) async throws -> ProxiedPairing {
        let world = try PairingWorld()
        let proxy = try await FaultProxy.start()
        let gateway = try await TestGateway.start(in: world.root, serveArguments: ["--public-origin", proxy.url] + serveArguments)
        try await proxy.setUpstream(gateway.url)
        let code = world.issued(try await gateway.pairingCode())
        let result = try await world.sidecar([
            "setup", "--gateway", proxy.url, "--project-dir", world.project, "--device-name", "test-device", "--code", code,
        ])
        try #require(result.status == 0, "\(result)")
        return ProxiedPairing(world: world, gateway: gateway, proxy: proxy, material: try world.secretMaterial())
    }

    /// `agent-sidecar serve --profile default`, initialized.
    func serve(extra: [String] = []) async throws -> SidecarUnderTest {
        let sidecar = try world.serve(extra: extra)
        _ = try await sidecar.initialize()
        return sidecar
    }
}

extension SidecarUnderTest {
    /// Responses to every one of `ids`, in whatever order they come; other messages are returned apart.
    func responses(to ids: Set<Int>, timeout: Duration) async throws -> (responses: [Int: JSONValue], others: [JSONValue]) {
        let deadline = ContinuousClock.now + timeout
        var responses: [Int: JSONValue] = [:]
        var others: [JSONValue] = []
        while responses.count < ids.count {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw TestTimeout(description: "no response to \(ids.subtracting(responses.keys).sorted()) within \(timeout)")
            }
            let message = try await child.nextMessage(timeout: remaining)
            if message["method"] == nil, let id = message["id"]?.intValue, ids.contains(id) {
                #expect(responses[id] == nil, "a second response to \(id)")
                responses[id] = message
            } else {
                others.append(message)
            }
        }
        return (responses, others)
    }

    /// The text of an `isError` tool result, or nil when the call succeeded.
    static func toolError(_ response: JSONValue) -> String? {
        guard response["result"]?["isError"]?.boolValue == true else { return nil }
        return response["result"]?["content"]?[0]?["text"]?.stringValue
    }

    /// The failure codes the sidecar logged for failed calls (`tools/call NAME failed: CODE`), in order.
    var failureCodes: [String] {
        child.stderr.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: " failed: ") else { return nil }
            guard line.contains("tools/call") else { return nil }
            return String(line[range.upperBound...].prefix { $0.isLetter || $0 == "_" })
        }
    }
}
