import AgentWire
import SodiumKit
import Synchronization
import SystemSupport
import Testing

@testable import SidecarCore

@Suite struct SetupFlowTests {
    struct Fixture {
        let directory: TemporaryDirectory
        let environment: [String: String]
        let setup: SidecarSetup
        let gateway: RecordingKeyGateway

        init() throws {
            directory = try TemporaryDirectory()
            environment = ["AGENT_SIDECAR_HOME": directory.file("home"), "HOME": directory.file("user")]
            gateway = RecordingKeyGateway()
            setup = SidecarSetup(paths: SidecarPaths(environment: environment), environment: environment, transport: gateway)
        }

        func request(code: String? = "abcd efgh", print: Bool = false) -> SetupRequest {
            var request = SetupRequest(
                locations: SetupLocations(codexHome: directory.file("codex"), projectDirectory: directory.file("project")))
            request.gatewayURL = "http://127.0.0.1:8080"
            request.pairingCode = code
            request.deviceName = "test-host"
            request.executablePath = "/opt/bin/agent-sidecar"
            request.printOnly = print
            return request
        }
    }

    @Test func pairsWritesThePacketAndIsIdempotent() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let outcome = try await fixture.setup.run(fixture.request())
        #expect(outcome.paired)
        #expect(outcome.warnings.isEmpty)
        #expect(outcome.written.map(\.outcome) == [.written, .written])
        #expect(outcome.profile.grants.first?.name == "Website")
        let config = try #require(try fixture.directory.read("codex/config.toml"))
        #expect(config.contains("args = [\"serve\", \"--profile\", \"default\"]"))
        #expect(config.contains("AGENT_SIDECAR_HOME = \"\(fixture.directory.file("home"))\""))
        #expect(try fixture.directory.read("project/AGENTS.md")?.contains("`search_issues`") == true)
        #expect(try pythonTOMLParses(fixture.directory.file("codex/config.toml")).ok)

        // The stored key is the one the gateway registered.
        let profile = try ProfileStore(paths: fixture.setup.paths).load("default")
        #expect(profile.writtenFiles.map(\.kind) == [.codex, .agentsMarkdown])
        let key = try CredentialStore(paths: fixture.setup.paths, environment: fixture.environment).loadDeviceKey(for: profile)
        #expect(fixture.gateway.registeredKey.withLock { $0 } == key.publicKey)

        // The first stored tool catalog: what the gateway's /mcp listed, owner-only, in a 0700 directory.
        let catalogFile = fixture.setup.paths.toolCatalogFile("default")
        #expect(catalogFile == fixture.directory.file("home/state/default.tools.json"))
        let stored = ToolCatalogCache(paths: fixture.setup.paths, profile: "default", gatewayURL: profile.gatewayURL).load()
        #expect((try? stored.get())?.tools == ScriptedGateway.tools)
        #expect((try? stored.get())?.instructions == "Scripted gateway instructions.")
        #expect(fileMode(catalogFile) == 0o600)
        #expect(fileMode(fixture.directory.file("home/state")) == 0o700)

        // Refreshing without a code writes nothing new.
        let again = try await fixture.setup.run(fixture.request(code: nil))
        #expect(!again.paired)
        #expect(again.written.map(\.outcome) == [.unchanged, .unchanged])

        // No secret in anything setup wrote.
        for file in ["codex/config.toml", "project/AGENTS.md", "home/profiles/default.json", "home/state/default.tools.json"] {
            let text = try #require(try fixture.directory.read(file))
            #expect(!text.contains("ags_"))
            #expect(!text.contains("ABCD-EFGH"))
        }
    }

    @Test func printModeWritesNoConfig() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let outcome = try await fixture.setup.run(fixture.request(print: true))
        #expect(outcome.written.isEmpty)
        #expect(outcome.packet.printed.contains("[mcp_servers.agent-sidecar]"))
        #expect(!FileSystem.exists(fixture.directory.file("codex/config.toml")))
    }

    @Test func logoutRevokesPurgesAndWipes() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        try fixture.directory.write("codex/config.toml", "model = \"x\"\n")
        _ = try await fixture.setup.run(fixture.request())
        let outcome = try await fixture.setup.logout(profile: "default", purgeConfig: true)
        #expect(outcome.revoked)
        #expect(fixture.gateway.revocations.withLock { $0 } == 1)
        #expect(outcome.purged.map(\.outcome) == [.written, .removed])
        #expect(try fixture.directory.read("codex/config.toml") == "model = \"x\"\n")
        #expect(!FileSystem.exists(fixture.directory.file("project/AGENTS.md")))
        #expect(outcome.removedFiles.count == 4)
        #expect(!FileSystem.exists(fixture.directory.file("home/state/default.tools.json")))
        #expect(!FileSystem.exists(fixture.directory.file("home/keys/default.key")))
        #expect(!FileSystem.exists(fixture.directory.file("home/profiles/default.json")))
    }

    /// `--ca-file`: a PEM file is checked, kept beside the profile (owner-only) once the pairing
    /// holds, and removed at logout; anything else is refused before any request.
    @Test func aPrivateCAIsKeptWithTheProfileAndRemovedAtLogout() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        try fixture.directory.write("ca.pem", pem)
        try fixture.directory.write("not-a-ca.txt", "hello")
        #expect(throws: SetupError.self) { try GatewayCA.read(fixture.directory.file("not-a-ca.txt")) }
        #expect(throws: SetupError.self) { try GatewayCA.read(fixture.directory.file("no-such-file.pem")) }
        try fixture.directory.write("huge.pem", pem + String(repeating: "A", count: GatewayCA.maximumBytes))
        #expect(throws: SetupError.self) { try GatewayCA.read(fixture.directory.file("huge.pem")) }

        var request = fixture.request()
        request.gatewayCA = try GatewayCA.read(fixture.directory.file("ca.pem"))
        _ = try await fixture.setup.run(request)
        let kept = fixture.setup.paths.gatewayCAFile("default")
        #expect(try GatewayCA.stored(paths: fixture.setup.paths, profile: "default") == Array(pem.utf8))
        #expect(fileMode(kept) == 0o600)
        let outcome = try await fixture.setup.logout(profile: "default", purgeConfig: false)
        #expect(outcome.removedFiles.contains(kept))
        #expect(!FileSystem.exists(kept))
    }

    @Test func rejectsBadInput() async throws {
        let fixture = try Fixture()
        defer { fixture.directory.remove() }
        await #expect(throws: SetupError(.invalidInput, "")) { try await fixture.setup.run(fixture.request(code: "nope")) }
        await #expect(throws: CredentialError(.profileNotFound, "")) { try await fixture.setup.run(fixture.request(code: nil)) }
        var insecure = fixture.request()
        insecure.gatewayURL = "http://gw.example.com"
        await #expect(throws: UpstreamFailure.self) { try await fixture.setup.run(insecure) }
    }
}

/// A gateway that learns the device key at pairing and then checks signatures with it.
final class RecordingKeyGateway: GatewayTransport {
    let registeredKey = Mutex<[UInt8]>([])
    let revocations = Mutex(0)

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        if request.url.hasSuffix("/api/v1/pairing/claim") {
            let body = try JSONValue(parsing: request.body)
            registeredKey.withLock { $0 = (try? Base64.decode(body["publicKey"]?.stringValue ?? "")) ?? [] }
        }
        if request.url.hasSuffix("/api/v1/devices/current/revoke") { revocations.withLock { $0 += 1 } }
        let scripted = ScriptedGateway(publicKey: registeredKey.withLock { $0 }, origin: "http://127.0.0.1:8080")
        return try await scripted.send(request)
    }
}
