import AgentWire
import SodiumKit

/// People, their roles and entitlements, and sign-in links. The admin CLI and the owner API both
/// call these (the API after its authorization check), so every change is written in one place.
extension GatewayAdmin {
    /// The longest a sign-in link may live.
    public static let loginLinkMaxTTLSeconds = 86_400

    /// Every person, by id.
    public func users() async throws -> [UserRecord] {
        try await store.read { try $0.users() }
    }

    /// Adds a person (no password: they sign in by link, or through the trusted proxy).
    public func createUser(id: String, name: String, role: UserRole, by actor: ActionActor = .hostCLI) async throws {
        guard (1...64).contains(id.count),
            id.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || "0123456789-_.".unicodeScalars.contains($0)) })
        else { throw AdminError(code: "validation_failed", message: "a user id has 1 to 64 letters, digits, '-', '_' or '.'") }
        guard (1...100).contains(name.count) else { throw AdminError(code: "validation_failed", message: "the name must have 1 to 100 characters") }
        let now = clock.nowMilliseconds()
        try await store.write { store in
            if try store.user(id: id) != nil { throw AdminError(code: "user_exists", message: "user \(id) exists already; pick another id") }
            try store.insertUser(UserRecord(id: id, name: name, blockedAt: nil, createdAt: now, role: role.rawValue, agentsEntitled: true))
            try OwnerActionLog.record(
                store, actor: actor, action: "create_user", subjectID: id, subjectOwnerID: id, detail: "role \(role.rawValue)", at: now)
        }
    }

    /// Switches a person's agent entitlement. Switching it off ends every session of every agent of
    /// theirs and expires their unused pairing codes, so that their agents stop at the next call.
    public func setEntitlement(userID: String, entitled: Bool, by actor: ActionActor = .hostCLI) async throws {
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard try store.user(id: userID) != nil else { throw Self.unknownUser(userID, in: store) }
            try store.setUserEntitled(id: userID, entitled: entitled)
            if !entitled { try store.endSessions(ownerID: userID, at: now) }
            try OwnerActionLog.record(
                store, actor: actor, action: "set_entitlement", subjectID: userID, subjectOwnerID: userID,
                detail: entitled ? "agents on" : "agents off",
                at: now)
        }
    }

    /// A fresh single-use sign-in link token for the person (`agl_…`); only its keyed hash is stored.
    public func createLoginLink(userID: String, ttlSeconds: Int = 900, by actor: ActionActor = .hostCLI) async throws -> String {
        guard hashKey.count == 32 else {
            throw AdminError(
                code: "hash_key_file_required",
                message: "this database keeps its hash key in a file; pass --hash-key-file FILE (the one agent-gateway serve uses)")
        }
        guard (30...Self.loginLinkMaxTTLSeconds).contains(ttlSeconds) else {
            throw AdminError(code: "validation_failed", message: "--ttl must be 30 to \(Self.loginLinkMaxTTLSeconds) seconds")
        }
        let token = "agl_" + Base64.encode(random.bytes(32), variant: .urlSafeNoPadding)
        let hash = Self.loginLinkHash(token, key: hashKey)
        let now = clock.nowMilliseconds()
        try await store.write { store in
            guard let user = try store.user(id: userID) else { throw Self.unknownUser(userID, in: store) }
            if user.blockedAt != nil { throw AdminError(code: "owner_blocked", message: "user \(userID) is blocked; unblock them first") }
            try store.insertLoginLink(
                LoginLinkRecord(tokenHash: hash, userID: userID, createdAt: now, expiresAt: now + Int64(ttlSeconds) * 1000, usedAt: nil))
            try OwnerActionLog.record(
                store, actor: actor, action: "create_login_link", subjectID: userID, subjectOwnerID: userID, detail: "valid \(ttlSeconds) s", at: now)
        }
        return token
    }

    static func loginLinkHash(_ token: String, key: [UInt8]) -> String {
        Hex.encode(Hash.keyed(Array("login-link\n\(token)".utf8), key: key))
    }

    static func unknownUser(_ id: String, in store: any StoreReader) -> AdminError {
        let known = ((try? store.users()) ?? []).map(\.id).joined(separator: ", ")
        return AdminError(code: "unknown_user", message: "unknown user \(id); known people: \(known.isEmpty ? "none (run seed-demo)" : known)")
    }
}
