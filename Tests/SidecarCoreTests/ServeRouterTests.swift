import AgentWire
import TestSupport
import Testing

@testable import SidecarCore

/// `RequestRouter`: every JSON-RPC and MCP error code the router answers with, through a server
/// over `MemoryUpstream`, and the rule that every request is answered once at most.
@Suite struct RequestRouterTests {
    static func code(_ message: JSONValue?) -> JSONValue? { message?["error"]?["code"] }

    /// The one message the server wrote in answer to `line`, which cannot name a request.
    static func answerWithoutID(to line: String, session version: String? = nil) async -> [JSONValue] {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        if let version { _ = await serve.request(initialize(id: 0, version: version)) }
        let before = serve.messages().count
        serve.send(line)
        let all = await serve.stop()
        return Array(all.dropFirst(before))
    }

    @Test func parseErrorCarriesANullIDOrNoneByRevision() async {
        let early = await Self.answerWithoutID(to: #"{"jsonrpc":"2.0","id":1,"method":"#, session: "2025-06-18")
        #expect(early.count == 1)
        #expect(Self.code(early.first) == -32700)
        #expect(early.first?["id"] == .null)
        let late = await Self.answerWithoutID(to: "not json", session: "2025-11-25")
        #expect(Self.code(late.first) == -32700)
        #expect(late.first?["id"] == nil)
    }

    @Test func invalidRequests() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.code(await serve.request(["jsonrpc": "1.0", "id": 1, "method": "ping"])) == -32600)
        #expect(Self.code(await serve.request(["jsonrpc": "2.0", "id": 2, "method": 5])) == -32600)
        #expect(Self.code(await serve.request(["jsonrpc": "2.0", "id": 3, "method": "ping", "params": 5])) == -32600)
        serve.send(#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#)
        serve.send("[]")
        serve.send(#"[{"jsonrpc":"2.0","id":9,"method":"ping"}]"#)
        serve.feed(.oversized(byteCount: 5_000_000))
        let all = await serve.stop()
        #expect(all.count == 7)
        #expect(all.allSatisfy { Self.code($0) == -32600 })
        #expect(all.last?["error"]?["message"]?.stringValue?.contains("5000000 bytes") == true)
    }

    @Test func batchesAreRefusedOutside20250326AndModernRequestsInsideIt() async throws {
        let refused = await Self.answerWithoutID(to: #"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, session: "2025-06-18")
        #expect(Self.code(refused.first) == -32600)
        #expect(refused.first?["error"]?["message"]?.stringValue?.contains("revision 2025-06-18") == true)

        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        _ = await serve.request(initialize(id: 0, version: "2025-03-26"))
        serve.send(.array([modernRequest(id: 1, method: "tools/list")]))
        let all = await serve.stop()
        let batch = try #require(all.last?.arrayValue)
        #expect(Self.code(batch.first) == -32600)
        #expect(batch.first?["id"] == 1)
    }

    @Test func aRequestIDInFlightCannotBeReused() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        // An open subscription stays in flight for as long as the test needs.
        serve.send(modernRequest(id: "held", method: "subscriptions/listen", params: ["notifications": [:]]))
        await serve.messages { $0.contains { $0["method"] == "notifications/subscriptions/acknowledged" } }
        let duplicate = try #require(await serve.request(modernRequest(id: "held", method: "tools/list")))
        #expect(Self.code(duplicate) == -32600)
        #expect(duplicate["error"]?["message"]?.stringValue?.contains("already in use") == true)
        _ = await serve.stop()
    }

    @Test func unknownMethodsAndMethodsTheUpstreamDoesNotOffer() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.code(await serve.request(["jsonrpc": "2.0", "id": 1, "method": "tools/destroy"])) == -32601)
        // The memory upstream offers resources: forwarded, and its answer relayed.
        #expect(await serve.request(["jsonrpc": "2.0", "id": 2, "method": "resources/list"])?["result"] == ["resources": []])
        _ = await serve.stop()

        let down = InMemoryStdioServer(upstream: MemoryUpstream(mode: .unreachable))
        let notOffered = await down.request(["jsonrpc": "2.0", "id": 3, "method": "prompts/list"])
        #expect(Self.code(notOffered) == -32601)
        #expect(notOffered?["error"]?["message"]?.stringValue?.contains("offers no prompts") == true)
        _ = await down.stop()
    }

    @Test func invalidParams() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.code(await serve.request(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [1]])) == -32602)
        #expect(Self.code(await serve.request(["jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ["arguments": [:]]])) == -32602)
        #expect(Self.code(await serve.request(call(id: 3, tool: "echo", arguments: [1, 2]))) == -32602)
        #expect(Self.code(await serve.request(["jsonrpc": "2.0", "id": 4, "method": "logging/setLevel", "params": ["level": "loud"]])) == -32602)
        #expect(await serve.request(["jsonrpc": "2.0", "id": 5, "method": "logging/setLevel", "params": ["level": "debug"]])?["result"] == [:])
        _ = await serve.stop()
    }

    @Test func anUnsupportedVersionIsRefusedWithTheSupportedOnes() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        var request = modernRequest(id: 1, method: "tools/list")
        guard case .object(var object) = request, var params = object["params"]?.objectValue, var meta = params["_meta"]?.objectValue else {
            Issue.record("modernRequest builds an object with _meta")
            return
        }
        meta[ModernMetaKey.protocolVersion] = "2031-01-01"
        params["_meta"] = .object(meta)
        object["params"] = .object(params)
        request = .object(object)
        let error = try #require(await serve.request(request)?["error"])
        #expect(error["code"] == -32022)
        #expect(error["data"]?["requested"] == "2031-01-01")
        #expect(error["data"]?["supported"]?.arrayValue?.first == "2026-07-28")
        _ = await serve.stop()
    }

    @Test func internalErrorsAndToolFailures() async throws {
        let down = InMemoryStdioServer(upstream: MemoryUpstream(mode: .unreachable))
        let list = await down.request(["jsonrpc": "2.0", "id": 1, "method": "tools/list"])
        #expect(Self.code(list) == -32603)
        #expect(list?["error"]?["message"]?.stringValue?.hasPrefix("tools/list failed: cannot reach the upstream") == true)
        // A failed call is a tool result the model reads, not a protocol error.
        let failed = try #require(await down.request(call(id: 2, tool: "echo"))?["result"])
        #expect(failed["isError"] == true)
        _ = await down.stop()

        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        #expect(Self.code(await serve.request(call(id: 3, tool: "noresult"))) == -32603)
        #expect(Self.code(await serve.request(call(id: 4, tool: "scalar"))) == -32603)
        #expect(Self.code(await serve.request(call(id: 5, tool: "error"))) == -32603, "the upstream's own error, relayed")
        #expect(await serve.request(call(id: 6, tool: "fail"))?["result"]?["isError"] == true)
        _ = await serve.stop()
    }

    @Test func responsesAndNotificationsFromTheClientGetNoAnswer() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        serve.send(#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
        serve.send(#"{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}"#)
        serve.send(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        serve.send(#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":404}}"#)
        serve.send(#"{"jsonrpc":"2.0","method":"notifications/unheard-of"}"#)
        #expect(await serve.stop().isEmpty)
    }
}
