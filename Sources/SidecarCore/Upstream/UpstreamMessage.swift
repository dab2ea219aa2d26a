import AgentWire

/// One JSON-RPC message received from the upstream, kept as the bytes it arrived in plus the
/// positions of its top-level members, so that large results are relayed without being rebuilt.
public struct UpstreamMessage: Sendable {
    public let bytes: [UInt8]
    public let layout: JSONObjectLayout

    public init(bytes: [UInt8]) throws(JSONParseError) {
        self.bytes = bytes
        self.layout = try bytes.withUnsafeBufferPointer { (buffer) throws(JSONParseError) in try JSONObjectLayout.scan(buffer) }
    }

    public func raw(_ key: String) -> ArraySlice<UInt8>? {
        guard let member = layout.member(key) else { return nil }
        return bytes[member.valueRange]
    }

    public func value(_ key: String) -> JSONValue? {
        guard let raw = raw(key) else { return nil }
        return try? JSONParser.parse(Array(raw))
    }

    public var method: String? { value("method")?.stringValue }
    public var hasID: Bool { layout.member("id") != nil }
    public var isResponse: Bool { layout.member("result") != nil || layout.member("error") != nil }
    public var isNotification: Bool { method != nil && !hasID }
    public var isRequest: Bool { method != nil && hasID }

    /// The whole message as a tree.
    public func parsed() -> JSONValue { (try? JSONParser.parse(bytes)) ?? .null }
}
