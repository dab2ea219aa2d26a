import AgentWire
import SidecarCore

/// An upstream that answers from memory at once, so that one fuzz input costs microseconds and
/// its outcome depends only on its bytes, and a unit test drives the stdio server without a
/// network. Tool names choose what the "upstream" does, to reach every relay path of the sidecar:
/// errors, failures, notifications during a call, odd results. `sidecar-fuzz` and the unit tests
/// share it; a change here changes what the fuzz corpus reaches.
public final class MemoryUpstream: MCPUpstream {
    public enum Mode: Sendable {
        /// `initialize` era, with a session, resources, prompts, logging and tool-change notifications.
        case legacy
        /// Stateless 2026-07-28.
        case modern
        /// Every handshake and call fails as if the upstream were down.
        case unreachable
    }

    /// The tools the upstream lists; `hidden` is the one the harness excludes.
    public static let tools: JSONValue = [
        ["name": "echo", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ["name": "write", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": false]],
        ["name": "plain", "inputSchema": ["type": "object"]],
        ["name": "hidden", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ["name": "progress", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ["name": "slow", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ["name": 5, "inputSchema": ["type": "object"]],
    ]

    public let mode: Mode
    public let handshakeValue: UpstreamHandshake

    public init(mode: Mode) {
        self.mode = mode
        let capabilities: JSONValue = [
            "tools": ["listChanged": true], "resources": ["subscribe": true], "prompts": [:], "completions": [:], "logging": [:],
        ]
        switch mode {
        case .legacy, .unreachable:
            handshakeValue = UpstreamHandshake(
                era: .legacy(version: "2025-11-25", sessionID: "memory"), capabilities: capabilities, instructions: "Use the tools.")
        case .modern:
            handshakeValue = UpstreamHandshake(era: .modern(version: "2026-07-28"), capabilities: capabilities)
        }
    }

    public static let down = UpstreamFailure(
        code: .unreachable, message: "cannot reach the upstream at memory:// (connection refused); check that it is running, then retry")

    public func handshake() async throws(UpstreamFailure) -> UpstreamHandshake {
        if mode == .unreachable { throw Self.down }
        return handshakeValue
    }

    public var currentHandshake: UpstreamHandshake? { mode == .unreachable ? nil : handshakeValue }

    public func request(
        method: String, params: JSONObject?, toolName: String?, idempotencyKey: String?,
        onNotification: (@Sendable (UpstreamMessage) -> Void)?
    ) async throws(UpstreamFailure) -> UpstreamMessage {
        if mode == .unreachable { throw Self.down }
        switch method {
        case "tools/list":
            return try message(#"{"jsonrpc":"2.0","id":1,"result":{"tools":"# + String(decoding: Self.tools.serialized(), as: UTF8.self) + "}}")
        case "tools/call":
            return try await callTool(toolName ?? "", params: params, onNotification: onNotification)
        case "resources/list":
            return try message("{\r\n  \"jsonrpc\": \"2.0\",\r\n  \"id\": 2,\r\n  \"result\": {\"resources\": []}\r\n}")
        case "prompts/list":
            return try message(#"{"jsonrpc":"2.0","id":2,"result":{"prompts":[],"resultType":"complete"}}"#)
        case "logging/setLevel":
            return try message(#"{"jsonrpc":"2.0","id":3,"result":{}}"#)
        default:
            return try message(#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"Method not found"}}"#)
        }
    }

    func callTool(
        _ name: String, params: JSONObject?, onNotification: (@Sendable (UpstreamMessage) -> Void)?
    ) async throws(UpstreamFailure) -> UpstreamMessage {
        let arguments = params?["arguments"] ?? [:]
        switch name {
        case "echo":
            // Pretty-printed with CRLF, as some servers send: the sidecar must relay it as one line.
            let text = JSONValue.string(String(decoding: arguments.serialized(), as: UTF8.self)).jsonText
            return try message(
                "{\r\n\"jsonrpc\":\"2.0\",\r\n\"id\":7,\n\"result\":{\"content\":[{\"type\":\"text\",\"text\":\(text)}],\n\"structuredContent\":{\"arguments\":\(arguments.jsonText)}}}"
            )
        case "error":
            return try message(#"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"the upstream says no"}}"#)
        case "fail":
            throw UpstreamFailure(code: .upstreamError, message: "the upstream failed (HTTP 500); retry later")
        case "cancel":
            throw UpstreamFailure(code: .cancelled, message: "cancelled")
        case "progress":
            let token = params?["_meta"]?["progressToken"] ?? "none"
            if let onNotification {
                onNotification(
                    try message(
                        #"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"# + token.jsonText
                            + #","progress":1,"total":2}}"#))
                onNotification(
                    try message(#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"halfway"}}"#))
                onNotification(try message(#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#))
            }
            return try message(#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#)
        case "slow":
            try? await Task.sleep(for: .milliseconds(2))
            if Task.isCancelled { throw UpstreamFailure(code: .cancelled, message: "cancelled") }
            return try message(#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"late"}]}}"#)
        case "noresult":
            return try message(#"{"jsonrpc":"2.0","id":7}"#)
        case "scalar":
            return try message(#"{"jsonrpc":"2.0","id":7,"result":5}"#)
        case "empty":
            return try message(#"{"jsonrpc":"2.0","id":7,"result":{ }}"#)
        case "typed":
            return try message(#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","content":[]}}"#)
        case "input":
            return try message(#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{}}}"#)
        default:
            return try message(#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"done"}],"isError":false}}"#)
        }
    }

    /// An upstream message from its text, as the upstream would have sent it.
    public func message(_ text: String) throws(UpstreamFailure) -> UpstreamMessage {
        do {
            return try UpstreamMessage(bytes: Array(text.utf8))
        } catch {
            throw UpstreamFailure(code: .badResponse, message: "the upstream sent invalid JSON (\(error)); report it to its operator")
        }
    }

    public func listenForChanges(_ onNotification: @escaping @Sendable (UpstreamMessage) -> Void) async {}

    public func close(timeout: Duration) async {}
}
