import AgentWire
import Logging
import TestSupport
import Testing

@testable import SidecarCore

/// `Subscriptions`: change notifications in the client's era, and 2026-07-28's
/// `subscriptions/listen`. `MemoryUpstream`'s `progress` tool sends, during the call, a progress
/// notification, a log message and `notifications/tools/list_changed`.
@Suite struct SubscriptionTests {
    static let subscriptionID = ModernMetaKey.subscriptionID

    static func listen(id: String, toolsListChanged: Bool) -> JSONValue {
        modernRequest(id: .string(id), method: "subscriptions/listen", params: ["notifications": ["toolsListChanged": .bool(toolsListChanged)]])
    }

    static func isToolsChanged(_ message: JSONValue) -> Bool { message["method"] == "notifications/tools/list_changed" }

    @Test func aModernSubscriptionIsAcknowledgedTaggedAndCompletedAtShutdown() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        serve.send(Self.listen(id: "sub", toolsListChanged: true))
        let acknowledged = await serve.messages { $0.contains { $0["method"] == "notifications/subscriptions/acknowledged" } }
        let ack = try #require(acknowledged.first { $0["method"] == "notifications/subscriptions/acknowledged" })
        #expect(ack["params"]?["_meta"]?[Self.subscriptionID] == "sub")
        #expect(ack["params"]?["notifications"] == ["toolsListChanged": true])
        #expect(await serve.settle(), "an open subscription is not a call in flight")

        // A tool-list change during a call reaches the subscription, tagged with its id.
        let answer = await serve.request(modernRequest(id: 7, method: "tools/call", params: ["name": "progress", "arguments": [:]]))
        #expect(answer?["result"]?["resultType"] == "complete")
        let written = await serve.messages { $0.contains(where: Self.isToolsChanged) }
        let changed = written.filter(Self.isToolsChanged)
        #expect(changed.count == 1)
        #expect(changed.first?["params"]?["_meta"]?[Self.subscriptionID] == "sub")
        #expect(!written.contains { $0["method"] == "notifications/progress" }, "no progressToken, no progress")
        #expect(written.contains { $0["method"] == "notifications/message" })
        #expect(!written.contains { $0["id"] == "sub" }, "the subscription stays open")

        let all = await serve.stop()
        let completion = try #require(all.first { $0["id"] == "sub" })
        #expect(completion["result"] == ["resultType": "complete", "_meta": [Self.subscriptionID: "sub"]])
    }

    @Test func aSubscriptionThatDidNotAskForToolChangesGetsNone() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        serve.send(Self.listen(id: "quiet", toolsListChanged: false))
        _ = await serve.request(modernRequest(id: 1, method: "tools/call", params: ["name": "progress"]))
        let all = await serve.stop()
        #expect(!all.contains(where: Self.isToolsChanged))
        #expect(all.contains { $0["id"] == "quiet" && $0["result"]?["resultType"] == "complete" })
    }

    @Test func aCancelledSubscriptionEndsWithoutAnAnswer() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        serve.send(Self.listen(id: "gone", toolsListChanged: true))
        await serve.messages { $0.contains { $0["method"] == "notifications/subscriptions/acknowledged" } }
        serve.send(["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": "gone"]])
        _ = await serve.request(modernRequest(id: 1, method: "tools/call", params: ["name": "progress"]))
        let all = await serve.stop()
        #expect(!all.contains { $0["id"] == "gone" })
        #expect(!all.contains(where: Self.isToolsChanged))
    }

    @Test func listenNeedsANotificationsObjectAndAModernRevision() async {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        let bare = await serve.request(modernRequest(id: "bad", method: "subscriptions/listen"))
        #expect(bare?["error"]?["code"] == -32602)
        let legacy = await serve.request(["jsonrpc": "2.0", "id": "old", "method": "subscriptions/listen", "params": ["notifications": [:]]])
        #expect(legacy?["error"]?["code"] == -32601, "a legacy request has no subscriptions/listen")
        _ = await serve.stop()
    }

    @Test func aLegacyClientGetsPlainChangeNotifications() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        _ = await serve.request(initialize(id: 0, version: "2025-06-18"))
        _ = await serve.request(call(id: 1, tool: "progress"))
        let written = await serve.messages { $0.contains(where: Self.isToolsChanged) }
        let changed = try #require(written.first(where: Self.isToolsChanged))
        #expect(changed["params"] == nil)
        _ = await serve.stop()
    }

    // MARK: The part alone

    @Test func unsolicitedNotificationsAreFilteredAndReissuedInTheClientsEra() async throws {
        let upstream = MemoryUpstream(mode: .legacy)
        let output = OutputFile()
        let writer = StdoutWriter(fileDescriptor: output.descriptor)
        let negotiation = ProtocolNegotiation(extraInstructions: nil)
        let narrowing = ToolNarrowing(readOnly: true, excludedTools: [], upstream: MemoryUpstream(mode: .unreachable))
        let subscriptions = Subscriptions(
            writer: writer, negotiation: negotiation, narrowing: narrowing, logger: Logger(label: "test") { _ in DiscardingLogHandler() })
        _ = negotiation.negotiate(id: RequestKey(.int(1))!, params: ["protocolVersion": "2025-11-25"])

        // The upstream's own bookkeeping stays with the sidecar.
        subscriptions.relayUnsolicited(try upstream.message(#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}"#))
        // An update loses the upstream's _meta; a list change goes out bare.
        subscriptions.relayUnsolicited(
            try upstream.message(#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a","_meta":{"x":1}}}"#))
        _ = narrowing.visibleTools(MemoryUpstream.tools.arrayValue ?? [])
        #expect(await narrowing.refusal(toolName: "echo") == nil)
        subscriptions.relayUnsolicited(try upstream.message(#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{}}}"#))
        #expect(await narrowing.refusal(toolName: "echo") != nil, "a tool-list change forgets the read-only hints")

        writer.close()
        #expect(writer.flush(timeoutNanoseconds: 10_000_000_000))
        let lines = String(decoding: output.contents(), as: UTF8.self).split(separator: "\n").map(String.init)
        #expect(
            lines == [
                #"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}"#,
                #"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            ])
    }
}
