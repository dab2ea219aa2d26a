import AgentWire
import Foundation
import Testing

@Suite("Handshakes of both protocol eras, against a real upstream", .secretScan)
struct HandshakeTests {
    @Test("a legacy client initializes, negotiates its version and sees the upstream's instructions", arguments: ["json", "sse"])
    func legacyInitialize(mode: String) async throws {
        let fixture = try await FixtureServer.start(["--response-mode", mode])
        for revision in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
            let sidecar = try SidecarUnderTest(arguments: ["--upstream", fixture.url], revision: revision)
            let response = try await sidecar.call(
                1, "initialize", ["protocolVersion": .string(revision), "capabilities": [:], "clientInfo": ["name": "t", "version": "1"]])
            let result = try #require(response["result"])
            #expect(result["protocolVersion"]?.stringValue == revision)
            #expect(result["serverInfo"]?["name"]?.stringValue == "agent-sidecar")
            #expect(result["capabilities"]?["tools"]?["listChanged"]?.boolValue == true)
            #expect(result["instructions"]?.stringValue?.contains("fixture instructions") == true)
            sidecar.send(["jsonrpc": "2.0", "method": "notifications/initialized"])
            let pong = try await sidecar.call(2, "ping")
            #expect(pong["result"] == [:])
            let tools = try await sidecar.call(3, "tools/list")
            #expect((tools["result"]?["tools"]?.arrayValue?.count ?? 0) > 3)
            try await sidecar.validateAgainstSchema()
        }
    }

    @Test("an unknown client version is answered with the sidecar's latest legacy version")
    func unknownVersionNegotiatesDown() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try SidecarUnderTest(arguments: ["--upstream", fixture.url], revision: "2025-11-25")
        let response = try await sidecar.call(
            1, "initialize", ["protocolVersion": "1999-01-01", "capabilities": [:], "clientInfo": ["name": "t", "version": "1"]])
        #expect(response["result"]?["protocolVersion"]?.stringValue == "2025-11-25")
        let again = try await sidecar.call(
            2, "initialize", ["protocolVersion": "2025-11-25", "capabilities": [:], "clientInfo": ["name": "t", "version": "1"]])
        #expect(again["error"]?["code"]?.intValue == -32600)
        try await sidecar.validateAgainstSchema()
    }

    @Test("a dual-era client's server/discover probe succeeds, and modern requests are served statelessly", arguments: ["json", "sse"])
    func modernDiscoverAndCall(mode: String) async throws {
        let fixture = try await FixtureServer.start(["--response-mode", mode])
        let sidecar = try SidecarUnderTest.modern(upstream: fixture.url)
        let discover = try await sidecar.call(1, "server/discover", ["_meta": SidecarUnderTest.modernMeta])
        let result = try #require(discover["result"])
        #expect(result["resultType"]?.stringValue == "complete")
        #expect(result["supportedVersions"]?.arrayValue?.contains("2026-07-28") == true)
        #expect(result["supportedVersions"]?.arrayValue?.contains("2025-11-25") == true)

        let tools = try await sidecar.call(2, "tools/list", ["_meta": SidecarUnderTest.modernMeta])
        #expect(tools["result"]?["resultType"]?.stringValue == "complete")
        #expect(tools["result"]?["ttlMs"] != nil)
        let echo = try await sidecar.callTool(3, "echo", ["text": "hi"], meta: SidecarUnderTest.modernMeta)
        #expect(echo["result"]?["resultType"]?.stringValue == "complete")
        #expect(echo["result"]?["content"]?[0]?["text"]?.stringValue == "hi")
        // ping does not exist in 2026-07-28.
        let ping = try await sidecar.call(4, "ping", ["_meta": SidecarUnderTest.modernMeta])
        #expect(ping["error"]?["code"]?.intValue == -32601)
        try await sidecar.validateAgainstSchema()
    }

    @Test("a request naming an unknown modern version gets UnsupportedProtocolVersion with the supported list")
    func unsupportedProtocolVersion() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try SidecarUnderTest.modern(upstream: fixture.url)
        let response = try await sidecar.call(
            1, "tools/list", ["_meta": ["io.modelcontextprotocol/protocolVersion": "2099-01-01", "io.modelcontextprotocol/clientCapabilities": [:]]])
        let error = try #require(response["error"])
        #expect(error["code"]?.intValue == -32022)
        #expect(error["data"]?["requested"]?.stringValue == "2099-01-01")
        #expect(error["data"]?["supported"]?.arrayValue?.contains("2026-07-28") == true)
        try await sidecar.validateAgainstSchema()
    }

    @Test("the sidecar speaks to a modern upstream statelessly and to a legacy one with a session", arguments: ["modern", "legacy"])
    func upstreamEra(era: String) async throws {
        let fixture = try await FixtureServer.start(["--era", era])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        let echo = try await sidecar.callTool(1, "echo", ["text": "era"])
        #expect(echo["result"]?["content"]?[0]?["text"]?.stringValue == "era")
        let log = try await fixture.log()
        let requests = log["requests"]?.arrayValue ?? []
        let methods = requests.compactMap { $0["method"]?.stringValue }
        if era == "modern" {
            #expect(!methods.contains("initialize"))
            #expect(methods.contains("server/discover"))
        } else {
            #expect(methods.contains("initialize"))
            let call = requests.last { $0["method"]?.stringValue == "tools/call" }
            #expect(call?["sessionId"]?.stringValue != nil)
        }
        try await sidecar.validateAgainstSchema()
    }

    @Test("batches are refused where the revision forbids them and answered as one array in 2025-03-26")
    func batches() async throws {
        let fixture = try await FixtureServer.start()
        let modernBatch = #"[{"jsonrpc":"2.0","id":10,"method":"ping"},{"jsonrpc":"2.0","id":11,"method":"tools/list"}]"#

        let strict = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-06-18")
        strict.write(raw: modernBatch)
        let refused = try await strict.child.nextMessage()
        #expect(refused["error"]?["code"]?.intValue == -32600)
        #expect(refused["id"] == .null)
        try await strict.validateAgainstSchema()

        let batching = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-03-26")
        batching.write(raw: modernBatch)
        let line = try await batching.child.nextLine()
        let answers = try #require(try JSONValue(parsing: line).arrayValue)
        #expect(Set(answers.compactMap { $0["id"]?.intValue }) == [10, 11])
        try await batching.validateAgainstSchema()
    }
}
