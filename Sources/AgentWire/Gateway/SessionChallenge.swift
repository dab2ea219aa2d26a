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
