import AgentWire

/// What the sidecar calls itself on the wire.
public enum SidecarIdentity {
    public static let name = "agent-sidecar"
    public static let version = BuildInfo.version
    public static var implementation: JSONValue { ["name": .string(name), "version": .string(version)] }
}
