import AgentWire
import Foundation
import Testing

@Suite("Protocol errors exactly as the spec says, and the process keeps serving", .secretScan)
struct ProtocolErrorTests {
    @Test("parse error, invalid request, unknown method and invalid params each get their code")
    func errorCodes() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-11-25")

        sidecar.write(raw: #"{"jsonrpc":"2.0","id":1,"method":"ping""#)
        let parse = try await sidecar.child.nextMessage()
        #expect(parse["error"]?["code"]?.intValue == -32700)
        // 2025-11-25 forbids a null id: an error that cannot name its request omits it.
        #expect(parse["id"] == nil)

        sidecar.write(raw: #"{"id":2,"method":"ping"}"#)
        let noVersion = try await sidecar.child.nextMessage()
        #expect(noVersion["error"]?["code"]?.intValue == -32600)
        #expect(noVersion["id"] == 2)

        sidecar.write(raw: #"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#)
        let badID = try await sidecar.child.nextMessage()
        #expect(badID["error"]?["code"]?.intValue == -32600)

        sidecar.write(raw: #"{"jsonrpc":"2.0","id":3,"method":42}"#)
        #expect(try await sidecar.child.nextMessage()["error"]?["code"]?.intValue == -32600)

        let unknown = try await sidecar.call(4, "tools/delete_everything")
        #expect(unknown["error"]?["code"]?.intValue == -32601)

        let noName = try await sidecar.call(5, "tools/call", ["arguments": [:]])
        #expect(noName["error"]?["code"]?.intValue == -32602)

        let badArguments = try await sidecar.call(6, "tools/call", ["name": "echo", "arguments": "not an object"])
        #expect(badArguments["error"]?["code"]?.intValue == -32602)

        let badLevel = try await sidecar.call(7, "logging/setLevel", ["level": "loud"])
        #expect(badLevel["error"]?["code"]?.intValue == -32602)

        sidecar.write(raw: "\u{FF}garbage")
        #expect(try await sidecar.child.nextMessage()["error"]?["code"]?.intValue == -32700)

        // Still serving.
        let echo = try await sidecar.callTool(8, "echo", ["text": "alive"])
        #expect(echo["result"]?["content"]?[0]?["text"]?.stringValue == "alive")
        try await sidecar.validateAgainstSchema()
    }

    @Test("before 2025-11-25 an error that cannot name its request carries id null, as JSON-RPC 2.0 says")
    func nullIDInOlderRevisions() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-06-18")
        sidecar.write(raw: "{not json")
        let parse = try await sidecar.child.nextMessage()
        #expect(parse["error"]?["code"]?.intValue == -32700)
        #expect(parse["id"] == .null)
        try await sidecar.validateAgainstSchema()
    }

    @Test("an oversized line is answered with an error and reading resumes at the next line")
    func oversizedLine() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, extra: ["--max-message-bytes", "4096"])
        let huge =
            #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":""# + String(repeating: "x", count: 100_000)
            + #""}}}"#
        sidecar.write(raw: huge)
        let refused = try await sidecar.child.nextMessage()
        #expect(refused["error"]?["code"]?.intValue == -32600)
        #expect(refused["error"]?["message"]?.stringValue?.contains("4096") == true)
        let after = try await sidecar.call(2, "ping")
        #expect(after["result"] == [:])
        try await sidecar.validateAgainstSchema()
    }

    @Test("a duplicate id of a call in flight is refused without disturbing the first")
    func duplicateID() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        sidecar.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["name": "slow", "arguments": ["ms": 3000]]])
        sidecar.send(["jsonrpc": "2.0", "id": 1, "method": "ping"])
        let messages = [try await sidecar.child.nextMessage(timeout: .seconds(20)), try await sidecar.child.nextMessage(timeout: .seconds(20))]
        #expect(messages.contains { $0["error"]?["code"]?.intValue == -32600 }, "\(messages)")
        #expect(messages.contains { $0["result"]?["content"] != nil }, "\(messages)")
    }
}
