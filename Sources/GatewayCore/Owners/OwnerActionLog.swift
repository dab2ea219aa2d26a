import AgentWire

/// Who performs an owner or admin action: a signed-in person, or the host's admin CLI.
public struct ActionActor: Sendable, Hashable {
    /// Nil for the admin CLI run on the gateway's host.
    public let userID: String?

    public static let hostCLI = ActionActor(userID: nil)
    public static func user(_ id: String) -> ActionActor { ActionActor(userID: id) }

    /// How the action log names the actor.
    public var label: String { userID ?? "admin CLI" }
}

/// Records owner and admin actions in the same transaction as the change they describe, so that
/// a change is never without its record. Details hold ids, names and counts, never a secret.
public enum OwnerActionLog {
    static func record(
        _ store: any StoreWriter, actor: ActionActor, action: String, subjectID: String?, subjectOwnerID: String?, detail: String = "",
        at: Int64
    ) throws {
        try store.insertOwnerAction(
            OwnerActionRecord(
                id: "act_\(ULID())", at: at, actorUserID: actor.userID, action: action, subjectID: subjectID, subjectOwnerID: subjectOwnerID,
                detail: String(detail.prefix(300))))
    }

    /// The JSON form of an action.
    public static func json(_ action: OwnerActionRecord) -> JSONValue {
        [
            "id": .string(action.id), "at": .string(Timestamp.rfc3339(milliseconds: action.at, fractional: true)),
            "actor": action.actorUserID.map { .string($0) } ?? .null, "action": .string(action.action),
            "subject": action.subjectID.map { .string($0) } ?? .null, "subjectOwner": action.subjectOwnerID.map { .string($0) } ?? .null,
            "detail": .string(action.detail),
        ]
    }
}

extension GatewayAdmin {
    /// Owner and admin actions, newest first (at most `limit`).
    public func ownerActions(limit: Int = 1_000) async throws -> [OwnerActionRecord] {
        try await store.read { try $0.ownerActions(userID: nil, limit: limit) }
    }

    /// The JSON form of an owner or admin action.
    public static func json(_ action: OwnerActionRecord) -> JSONValue { OwnerActionLog.json(action) }
}
