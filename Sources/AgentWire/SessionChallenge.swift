/// The bytes a device signs to mint a session: both the sidecar and the gateway build them here,
/// so the two sides can never disagree on the format.
///
/// The message binds the signature to one gateway origin (a signature made for one gateway is
/// useless at another), one device, one moment (the gateway rejects timestamps more than five
/// minutes off) and one nonce (the gateway rejects nonces it has already seen).
public enum SessionChallenge {
    public static let context = "agent-sidecar-session-v1"

    public static func message(origin: String, deviceID: String, timestamp: Int64, nonce: String) -> [UInt8] {
        Array("\(context)\n\(origin)\n\(deviceID)\n\(timestamp)\n\(nonce)".utf8)
    }
}

/// A one-time pairing code: 8 characters of Crockford base32, shown as `XXXX-XXXX`.
public enum PairingCodeFormat {
    public static let length = 8

    /// The canonical `XXXX-XXXX` form of what a person typed (case, dashes, spaces and the usual
    /// confusions are forgiven), or `nil` when it cannot be a pairing code.
    public static func normalize(_ typed: String) -> String? {
        var values: [UInt8] = []
        for character in typed where character != "-" && character != " " {
            guard let value = CrockfordBase32.value(of: character) else { return nil }
            values.append(CrockfordBase32.alphabet[Int(value)])
        }
        guard values.count == length else { return nil }
        return String(decoding: values[0..<4], as: UTF8.self) + "-" + String(decoding: values[4..<8], as: UTF8.self)
    }
}

/// JSON-RPC 2.0 and MCP error codes.
public enum JSONRPCErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// MCP 2026-07-28: the request's protocol version is not one the server supports.
    public static let unsupportedProtocolVersion = -32022
}
