import AgentWire

/// What `MCPStdioServer` asks of the MCP server behind it. `StreamableHTTPUpstream` is the real
/// one; the fuzz target (`sidecar-fuzz`) plugs in one that answers from memory, so millions of
/// inputs can run through framing, parsing and dispatch without a network.
public protocol MCPUpstream: Sendable {
    /// The upstream's handshake, performed once and shared by concurrent callers.
    func handshake() async throws(UpstreamFailure) -> UpstreamHandshake
    /// The handshake if it has completed, without waiting.
    var currentHandshake: UpstreamHandshake? { get }
    /// One request; notifications that arrive before the response go to `onNotification`.
    func request(
        method: String, params: JSONObject?, toolName: String?, idempotencyKey: String?,
        onNotification: (@Sendable (UpstreamMessage) -> Void)?
    ) async throws(UpstreamFailure) -> UpstreamMessage
    /// Relays unsolicited notifications until the calling task is cancelled.
    func listenForChanges(_ onNotification: @escaping @Sendable (UpstreamMessage) -> Void) async
    /// Ends the upstream session, within `timeout`.
    func close(timeout: Duration) async
}

extension MCPUpstream {
    /// A request without a tool name, idempotency key or notifications.
    public func request(method: String, params: JSONObject?) async throws(UpstreamFailure) -> UpstreamMessage {
        try await request(method: method, params: params, toolName: nil, idempotencyKey: nil, onNotification: nil)
    }
}

extension StreamableHTTPUpstream: MCPUpstream {}
