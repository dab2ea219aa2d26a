/// JSON-RPC 2.0 and MCP error codes.
public enum JSONRPCErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// MCP 2026-07-28: the request's protocol version is not one the server supports.
    public static let unsupportedProtocolVersion = -32022
    /// The Agent Gateway's answer on `/mcp` to an `Mcp-Session-Id` it does not know (with 404).
    public static let unknownSession = -32001
}
