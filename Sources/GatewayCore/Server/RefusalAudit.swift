import AgentWire
import NIOConcurrencyHelpers
import SodiumKit

/// A call the gateway refused before it ran, as the audit records it: what was asked, never its
/// argument text. `tool` is the tool of a `tools/call`, `mcp:METHOD` for another MCP request, or
/// `api:NAME` for a REST call (`api:create_session`, `api:setup`, `api:revoke_device`).
public struct RefusedCall: Sendable, Hashable {
    public var tool: String
    /// SHA-256 of the canonical arguments of a `tools/call` (as for allowed calls), else of `{}`.
    public var argumentsSHA256: String

    public init(tool: String, arguments: JSONObject = [:]) {
        self.tool = Self.bounded(tool)
        var fingerprinted = arguments
        fingerprinted["idempotencyKey"] = nil
        self.argumentsSHA256 = Hex.encode(Hash.sha256(JSONValue.object(fingerprinted).canonicalized().serialized()))
    }

    /// A REST call.
    public static func api(_ name: String) -> RefusedCall { RefusedCall(tool: "api:\(name)") }

    /// An MCP message, or nil for what is not a request (a notification or a response): only
    /// requests are calls.
    public static func mcp(_ message: JSONValue?) -> RefusedCall? {
        guard let message else { return RefusedCall(tool: "mcp:unreadable") }
        guard let object = message.objectValue else { return RefusedCall(tool: "mcp:unreadable") }
        guard let method = object["method"]?.stringValue else { return nil }
        guard let id = object["id"], !id.isNull else { return nil }
        guard method == "tools/call" else { return RefusedCall(tool: "mcp:\(method)") }
        let params = object["params"]
        let name = params?["name"]?.stringValue ?? "mcp:tools/call"
        return RefusedCall(tool: name, arguments: params?["arguments"]?.objectValue ?? [:])
    }

    /// At most 64 characters of `A-Z a-z 0-9 _ - . / :`; anything else becomes `?`. The name comes
    /// from a refused caller, so it is kept short and plain.
    static func bounded(_ text: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:")
        let kept = String(text.prefix(64).map { allowed.contains($0) ? $0 : "?" })
        return kept.isEmpty ? "?" : kept
    }
}

/// Who a refused call came from: the parties of the session or device it presented.
struct RefusedCaller: Sendable {
    let agentID: String
    let ownerID: String
    let deviceID: String
    let sessionID: String?
}

/// Refusal audit events per device, in a sliding one-minute window: a revoked sidecar that keeps
/// calling leaves a trace without filling the database. Bounded in devices too.
final class RefusalAuditLimiter: Sendable {
    let perMinute: Int
    static let maximumDevices = 10_000
    private let recent = NIOLockedValueBox<[String: [Int64]]>([:])

    init(perMinute: Int) { self.perMinute = perMinute }

    /// Whether one more refusal of this device may be audited now (and counts it).
    func allow(deviceID: String, now: Int64) -> Bool {
        recent.withLockedValue { recent in
            if recent.count >= Self.maximumDevices, recent[deviceID] == nil {
                recent = recent.filter { entry in entry.value.contains { now - $0 < 60_000 } }
                if recent.count >= Self.maximumDevices { return false }
            }
            var times = (recent[deviceID] ?? []).filter { now - $0 < 60_000 }
            defer { recent[deviceID] = times }
            guard times.count < perMinute else { return false }
            times.append(now)
            return true
        }
    }
}

extension Gateway {
    /// The refusals that name a known caller, and so are audited: a revoked agent or device, a
    /// blocked owner, an expired or ended session.
    static let auditedRefusals: Set<GatewayErrorCode> = [.agentRevoked, .deviceRevoked, .ownerBlocked, .sessionEnded, .tokenExpired]

    /// Writes one `refused` audit event (outcome `refused`, the refusal's code as the error code),
    /// unless the device is over its refusal-audit budget. Best effort: the caller is answered with
    /// the refusal whether or not the event could be written.
    func recordRefusal(_ error: GatewayError, caller: RefusedCaller, call: RefusedCall) async {
        guard Self.auditedRefusals.contains(error.code) else { return }
        let moment = now
        guard refusalAudit.allow(deviceID: caller.deviceID, now: moment) else { return }
        let event = AuditEventRecord(
            id: ULID().text, at: moment, agentID: caller.agentID, ownerID: caller.ownerID, deviceID: caller.deviceID,
            sessionID: caller.sessionID, tool: call.tool, project: nil, targetIDs: [], argumentsSHA256: call.argumentsSHA256,
            outcome: "refused", errorCode: error.code.rawValue, idempotencyKeyHash: nil, replayed: false, latencyMicroseconds: 0)
        _ = try? await store.write { try $0.insertAuditEvent(event) }
    }
}
