/// How `agent-sidecar serve` behaves toward its client.
public struct ServeOptions: Sendable {
    /// The largest line accepted on stdin; longer ones are answered with an error and skipped.
    public var maximumMessageBytes = 64 * 1024 * 1024
    /// How long in-flight calls may finish after stdin closes or a signal arrives.
    public var shutdownGrace: Duration = .seconds(2)
    /// How long `initialize` waits for the upstream handshake, to pass on its instructions.
    public var initializeWaitForUpstream: Duration = .seconds(3)
    /// Paired mode: how long `tools/list` waits for the gateway before it lists the stored catalog
    /// (an MCP host gives a server's start-up about 10 s, tools/list included).
    public var toolsListWaitForUpstream: Duration = .seconds(5)
    /// Only tools whose `readOnlyHint` is true are listed or callable (see `ToolNarrowing`).
    public var readOnly = false
    /// Tools that are neither listed nor callable.
    public var excludedTools: Set<String> = []
    /// Instructions for the model, added after the upstream's own.
    public var extraInstructions: String?

    public init() {}
}
