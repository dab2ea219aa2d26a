/// The MCP revisions this project knows: the sidecar speaks all of them, to its client and to its
/// upstream; the gateway serves the legacy ones from 2025-03-26 (`MCPVersions`). The fixture
/// server keeps its own list on purpose, as an independent oracle.
public enum ProtocolRevision: String, CaseIterable, Sendable, Comparable {
    case v2024_11_05 = "2024-11-05"
    case v2025_03_26 = "2025-03-26"
    case v2025_06_18 = "2025-06-18"
    case v2025_11_25 = "2025-11-25"
    case v2026_07_28 = "2026-07-28"

    /// Revisions that open with the `initialize` handshake.
    public static let legacy: [ProtocolRevision] = [.v2024_11_05, .v2025_03_26, .v2025_06_18, .v2025_11_25]
    public static let latestLegacy = ProtocolRevision.v2025_11_25
    /// Stateless revisions: version and capabilities travel in each request's `_meta`.
    public static let modern: [ProtocolRevision] = [.v2026_07_28]
    /// Newest first, as `server/discover` and version errors list them.
    public static let supportedNewestFirst: [String] = allCases.reversed().map(\.rawValue)

    public var isModern: Bool { self >= .v2026_07_28 }
    /// JSON-RPC batches exist only in 2025-03-26.
    public var allowsBatches: Bool { self == .v2025_03_26 }
    /// `ping` and `logging/setLevel` were removed in 2026-07-28.
    public var hasPing: Bool { !isModern }
    public var hasLoggingSetLevel: Bool { !isModern }

    public static func < (lhs: ProtocolRevision, rhs: ProtocolRevision) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// `_meta` keys of the 2026-07-28 revision.
public enum ModernMetaKey {
    public static let protocolVersion = "io.modelcontextprotocol/protocolVersion"
    public static let clientCapabilities = "io.modelcontextprotocol/clientCapabilities"
    public static let clientInfo = "io.modelcontextprotocol/clientInfo"
    public static let serverInfo = "io.modelcontextprotocol/serverInfo"
    public static let logLevel = "io.modelcontextprotocol/logLevel"
    public static let subscriptionID = "io.modelcontextprotocol/subscriptionId"
}
