import AgentWire
import TestSupport
import Testing

@testable import SidecarCore

/// `ResponseFraming`: the upstream's response relayed as its own bytes, with the client's id
/// spliced in, raw CR/LF dropped, and `resultType` added for a modern client.
@Suite struct ResponseFramingTests {
    static let upstream = MemoryUpstream(mode: .legacy)

    static func relay(_ text: String, id: JSONValue = "abc", modern: Bool = false) throws -> String {
        let reply = ResponseFraming.relay(try upstream.message(text), to: RequestKey(id)!, modern: modern)
        return String(decoding: reply.frame ?? [], as: UTF8.self)
    }

    @Test func unknownFieldsAreRelayedByteForByte() throws {
        // Members no revision has yet, number literals and escapes as the upstream wrote them.
        let result = #"{"content":[],"icons":[{"src":"x"}],"x-future":{"n":1.50E+3,"s":"\u00e9\/","deep":[[{}]]},"_meta":{"k":null}}"#
        let message = #"{"jsonrpc":"2.0","id":99,"result":"# + result + "}"
        #expect(try Self.relay(message) == #"{"jsonrpc":"2.0","id":"abc","result":"# + result + "}")
        #expect(try Self.relay(message, id: 12) == #"{"jsonrpc":"2.0","id":12,"result":"# + result + "}")
    }

    @Test func rawLineBreaksAreDroppedSoAMessageStaysOneLine() throws {
        let message = "{\r\n\"jsonrpc\": \"2.0\",\n\"id\": 3,\r\n\"result\": {\r\n  \"content\": [ ],\n  \"text\": \"a\\nb\"\r\n}\r\n}"
        #expect(try Self.relay(message) == #"{"jsonrpc":"2.0","id":"abc","result":{  "content": [ ],  "text": "a\nb"}}"#)
    }

    @Test func aModernResultGetsResultTypeSplicedInFront() throws {
        #expect(
            try Self.relay(#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#, modern: true)
                == #"{"jsonrpc":"2.0","id":"abc","result":{"resultType":"complete","content":[]}}"#)
        #expect(
            try Self.relay(#"{"jsonrpc":"2.0","id":1,"result":{ }}"#, modern: true)
                == #"{"jsonrpc":"2.0","id":"abc","result":{"resultType":"complete" }}"#)
        // One the upstream typed itself is left alone, as is a legacy client's.
        let typed = #"{"resultType":"complete","content":[]}"#
        #expect(
            try Self.relay(#"{"jsonrpc":"2.0","id":1,"result":"# + typed + "}", modern: true) == #"{"jsonrpc":"2.0","id":"abc","result":"# + typed
                + "}")
        #expect(try Self.relay(#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#) == #"{"jsonrpc":"2.0","id":"abc","result":{"content":[]}}"#)
        // A nested resultType is not the result's own.
        #expect(
            try Self.relay(#"{"jsonrpc":"2.0","id":1,"result":{"x":{"resultType":"y"}}}"#, modern: true)
                == #"{"jsonrpc":"2.0","id":"abc","result":{"resultType":"complete","x":{"resultType":"y"}}}"#)
    }

    @Test func anErrorIsRelayedAsItCame() throws {
        let error = #"{"code":-32601,"message":"Method not found","data":{"extra":[1,2]}}"#
        #expect(try Self.relay(#"{"jsonrpc":"2.0","id":4,"error":"# + error + "}") == #"{"jsonrpc":"2.0","id":"abc","error":"# + error + "}")
        #expect(try Self.relay(#"{"jsonrpc":"2.0","id":4,"error":"# + error + "}", modern: true).contains("resultType") == false)
    }

    @Test func responsesTheClientCannotUseBecomeInternalErrors() throws {
        func code(_ text: String, modern: Bool = false) throws -> JSONValue? {
            try JSONValue(parsing: try Self.relay(text, modern: modern))["error"]?["code"]
        }
        #expect(try code(#"{"jsonrpc":"2.0","id":7}"#) == -32603)
        #expect(try code(#"{"jsonrpc":"2.0","id":7,"result":5}"#) == -32603)
        #expect(try code(#"{"jsonrpc":"2.0","id":7,"result":[]}"#) == -32603)
        // input_required exists only from 2026-07-28 on.
        let input = #"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{}}}"#
        #expect(try code(input) == -32603)
        #expect(try code(input, modern: true) == nil)
    }

    @Test func topLevelMembersAreFoundInPlace() {
        let object = Array(#"xx{"a":{"b":1},"b":[true]}"#.utf8)[2...]
        #expect(ResponseFraming.topLevelMember("b", in: object).map { String(decoding: $0, as: UTF8.self) } == "[true]")
        #expect(ResponseFraming.topLevelMember("c", in: object) == nil)
    }

    @Test func aBatchIsOneArrayOfWholeMessages() {
        let frames = [Array(#"{"a":1}"#.utf8), Array(#"{"b":2}"#.utf8)]
        #expect(String(decoding: ResponseFraming.batchArray(frames), as: UTF8.self) == #"[{"a":1},{"b":2}]"#)
    }

    // MARK: Through a server

    @Test func aToolResultReachesTheClientAsTheUpstreamWroteIt() async throws {
        let upstream = MemoryUpstream(mode: .legacy)
        let arguments: JSONValue = ["z": 1.5e3, "a": "é\u{1}", "nested": ["unknown": [nil, true]]]
        // What the upstream sends for this call: pretty-printed over CRLF lines.
        let sent = try await upstream.request(
            method: "tools/call", params: ["name": "echo", "arguments": arguments], toolName: "echo", idempotencyKey: nil, onNotification: nil)
        #expect(sent.bytes.contains(0x0D))
        let expected =
            #"{"jsonrpc":"2.0","id":5,"result":"# + String(decoding: ResponseFraming.compacted(try #require(sent.raw("result"))), as: UTF8.self) + "}"

        let serve = InMemoryStdioServer(upstream: upstream)
        _ = await serve.request(initialize(id: 0, version: "2025-11-25"))
        _ = await serve.request(call(id: 5, tool: "echo", arguments: arguments))
        #expect(serve.lines().contains(expected))
        _ = await serve.stop()
    }

    @Test func aBatchIsAnsweredAsOneLine() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        _ = await serve.request(initialize(id: 0, version: "2025-03-26"))
        serve.send(
            #"[{"jsonrpc":"2.0","id":10,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":11,"method":"ping"}]"#
        )
        await serve.settle()
        #expect(serve.lines().last == #"[{"jsonrpc":"2.0","id":10,"result":{}},{"jsonrpc":"2.0","id":11,"result":{}}]"#)
        // Notifications alone get no answer at all.
        serve.send(#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#)
        let all = await serve.stop()
        #expect(all.count == 2)
    }
}
