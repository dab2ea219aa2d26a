import AgentWire
import Logging
import NIOConcurrencyHelpers
import SodiumKit
import SystemSupport

/// The gateway's behaviour, independent of HTTP: pairing, sessions, authentication and tool calls
/// with grants, scopes, rate limits, idempotency and audit.
public final class Gateway: Sendable {
    /// The operator's lines on stderr (database trouble, break-glass, webhook failures), in the
    /// format `serve --log-format` chose; never a secret or argument text.
    static let operatorLog = Logger(label: "agent-gateway")
    public let store: any GatewayStore
    public let configuration: GatewayConfiguration
    let hashKey: [UInt8]
    /// Session tokens and MCP session ids.
    let random: RandomSource
    /// Rate buckets, idempotency claims, the pairing guard and MCP sessions: in this process on
    /// SQLite, in the database on PostgreSQL, where several gateways share them (`SharedState`).
    let shared: any SharedState
    /// Refused calls audited per device per minute (`RefusalAudit.swift`).
    let refusalAudit = RefusalAuditLimiter(perMinute: 60)
    let fairWriter = FairWriteScheduler()
    /// Reads' audit events, committed together (`AuditBatcher`).
    let auditBatcher = AuditBatcher()
    /// Authenticated sessions, checked against the principal epoch at every call.
    let principalCache = PrincipalCache()
    /// Where the tools' tracker data lives (`configuration.plane` chooses Plane).
    let tracker: any Tracker
    /// Rate-limited tool calls audited once per agent per second.
    let refusalSampler = RefusalAuditSampler()
    /// The Prometheus metrics (``GatewayMetricsServer`` serves them).
    public let metrics = GatewayMetrics()
    private let origins = NIOLockedValueBox<[String]>([])
    /// The capability policy in force (``CapabilityPolicy``), replaced whole on reload.
    let policyBox: NIOLockedValueBox<CapabilityPolicy>
    /// Announces new approval requests (`configuration.approvalWebhook`).
    let webhook: ApprovalWebhook?

    /// - Throws: ``SodiumKit/CryptoError`` when libsodium cannot initialise (no random source).
    public init(store: any GatewayStore, hashKey: [UInt8], configuration: GatewayConfiguration) throws(CryptoError) {
        self.random = try RandomSource.system()
        self.store = store
        self.hashKey = hashKey
        self.configuration = configuration
        self.policyBox = NIOLockedValueBox(configuration.policy)
        self.webhook = configuration.approvalWebhook.map { ApprovalWebhook(settings: $0) }
        var pairingPolicy = PairingGuard.Policy()
        pairingPolicy.perAddress.free = configuration.pairingFailuresPerMinute
        pairingPolicy.perPrefix.free = configuration.pairingFailuresPerPrefix
        pairingPolicy.global.free = configuration.pairingFailuresPerMinuteGlobal
        if let postgres = store as? PostgresGatewayStore {
            let clock = configuration.clock
            self.shared = PostgresSharedState(
                store: postgres, pairingPolicy: pairingPolicy, random: random, clock: { clock.nowMilliseconds() })
        } else {
            self.shared = ProcessSharedState(pairingPolicy: pairingPolicy, random: random)
        }
        origins.withLockedValue { $0 = configuration.publicOrigins }
        self.tracker = configuration.plane.map { PlaneTracker(settings: $0, store: store) } ?? EmbeddedTracker(store: store)
    }

    /// Why the gateway cannot serve calls now (`/readyz`), or `nil` when it can: its database must
    /// answer a read. `/healthz` is liveness only and never touches the database.
    public func readinessFailure() async -> String? {
        do {
            _ = try await store.read { try $0.setting(TrackerBinding.settingName) }
            return nil
        } catch {
            return "the database did not answer a read (\(String(describing: error).flattenedToOneLine(limit: 200)))"
        }
    }

    /// Which tracker the tools work on.
    public var trackerKind: TrackerKind { tracker.kind }

    /// Where a person sees an issue in the tracker's own interface (Plane's web app), if anywhere.
    public func trackerIssueLink(projectKey: String, number: Int) -> String? {
        tracker.issueLink(projectKey: projectKey, number: number)
    }

    /// Origins a session signature may name.
    public var acceptedOrigins: [String] { origins.withLockedValue { $0 } }

    /// Sets the accepted origins once the listening address is known (unless configured explicitly).
    public func adoptListenOrigins(_ derived: [String]) {
        origins.withLockedValue { if $0.isEmpty { $0 = derived } }
    }

    var now: Int64 { configuration.clock.nowMilliseconds() }

    // MARK: Hashing

    func keyedHash(_ purpose: String, _ secret: String) -> String {
        Hex.encode(Hash.keyed(Array("\(purpose)\n\(secret)".utf8), key: hashKey))
    }
    func tokenHash(_ token: String) -> String { keyedHash("session-token", token) }
    func pairingCodeHash(_ code: String) -> String { keyedHash("pairing-code", code) }
    func idempotencyKeyHash(agentID: String, key: String) -> String { keyedHash("idempotency-key", "\(agentID)\n\(key)") }

    // MARK: Pairing

    /// `POST /api/v1/pairing/claim`. A claim takes its place in the pairing guard before the code
    /// is looked up (see ``PairingGuard``): it may be held a few seconds, or refused with 429.
    public func claimPairingCode(_ body: JSONValue, clientAddress: String) async throws(GatewayError) -> JSONValue {
        guard let typed = body["code"]?.stringValue else { throw .validationFailed("code is required (the XXXX-XXXX pairing code)") }
        guard let publicKeyText = body["publicKey"]?.stringValue, let publicKey = (try? Base64.decode(publicKeyText)), publicKey.count == 32
        else { throw .validationFailed("publicKey must be the standard base64 of a 32-byte Ed25519 public key") }
        let deviceName = body["deviceName"]?.stringValue ?? "device"
        guard (1...100).contains(deviceName.unicodeScalars.count), deviceName.unicodeScalars.allSatisfy(TextRule.singleLine.allows) else {
            throw .validationFailed("deviceName must have 1 to 100 characters, on one line, without control characters")
        }

        // Text that is not a code at all is refused without a lookup: it tells the sender nothing.
        guard let code = PairingCodeFormat.normalize(typed) else { throw .pairingCodeInvalid }
        let decision: PairingGuard.Decision
        let ticket: PairingGuard.Ticket?
        do {
            (decision, ticket) = try await shared.beginPairing(address: clientAddress, prefix: PairingGuard.prefix(of: code), now: now)
        } catch { throw Self.asGatewayError(error) }
        switch decision {
        case .refuse(let retryAfter): throw .pairingRateLimited(retryAfter: retryAfter)
        case .proceed(let delay):
            if delay > 0 { try? await Task.sleep(for: .milliseconds(delay)) }
        }
        let startedAt = now
        let codeHash = pairingCodeHash(code)
        let deviceID = "dev_\(ULID())"
        let result: Result<JSONValue, GatewayError>
        do {
            result = try await store.write { store -> Result<JSONValue, GatewayError> in
                guard let record = try store.pairingCode(hash: codeHash) else { return .failure(.pairingCodeInvalid) }
                guard record.usedAt == nil else { return .failure(.pairingCodeUsed) }
                guard record.expiresAt > startedAt else { return .failure(.pairingCodeExpired) }
                guard let agent = try store.agent(id: record.agentID), let owner = try store.user(id: agent.ownerID) else {
                    return .failure(.pairingCodeInvalid)
                }
                if agent.revokedAt != nil { return .failure(.agentRevoked) }
                if owner.blockedAt != nil { return .failure(.ownerBlocked) }
                if !owner.agentsEntitled { return .failure(.ownerNotEntitled) }
                try store.markPairingCodeUsed(hash: codeHash, at: startedAt)
                try store.insertDevice(
                    DeviceRecord(
                        id: deviceID, agentID: agent.id, name: deviceName, publicKey: Base64.encode(publicKey), createdAt: startedAt,
                        revokedAt: nil))
                let grants = try store.grants(agentID: agent.id)
                return .success([
                    "deviceId": .string(deviceID), "agent": ["id": .string(agent.id), "name": .string(agent.name)],
                    "owner": ["id": .string(owner.id), "name": .string(owner.name)],
                    "grants": .array(grants.map { ["project": .string($0.projectKey), "scopes": .array($0.scopes.map { .string($0) })] }),
                ])
            }
        } catch {
            if let ticket { await shared.giveBack(ticket) }
            throw Self.asGatewayError(error)
        }
        switch result {
        case .success(let value):
            if let ticket { await shared.giveBack(ticket) }
            return value
        case .failure(let error):
            // Only a wrong, used or expired code is a failed guess; a right code refused for another reason is not.
            if ![GatewayError.pairingCodeInvalid, .pairingCodeUsed, .pairingCodeExpired].contains(error), let ticket {
                await shared.giveBack(ticket)
            }
            throw error
        }
    }

    // MARK: Sessions

    /// `POST /api/v1/sessions`: verifies the device's signature and mints a session token.
    public func createSession(_ body: JSONValue) async throws(GatewayError) -> JSONValue {
        let startedAt = now
        guard let deviceID = body["deviceId"]?.stringValue, !deviceID.isEmpty else { throw .validationFailed("deviceId is required") }
        guard case .number(let number) = body["timestamp"], let timestamp = Int64(number.literal) else {
            throw .validationFailed("timestamp must be an integer number of Unix seconds")
        }
        guard let nonce = body["nonce"]?.stringValue, let nonceBytes = (try? Base64.decode(nonce)), nonceBytes.count >= 16, nonce.utf8.count <= 256
        else { throw .validationFailed("nonce must be the base64 of at least 16 random bytes") }
        guard let signatureText = body["signature"]?.stringValue, let signature = (try? Base64.decode(signatureText)), signature.count == 64
        else { throw .validationFailed("signature must be the base64 of a 64-byte Ed25519 signature") }

        let device: DeviceRecord?
        do { device = try await store.read { try $0.device(id: deviceID) } } catch { throw Self.asGatewayError(error) }
        guard let device, let publicKey = (try? Base64.decode(device.publicKey)) else { throw .deviceUnknown }
        guard abs(timestamp - startedAt / 1000) <= Int64(configuration.timestampSkewSeconds) else { throw .timestampOutOfRange }
        let verified = acceptedOrigins.contains { origin in
            Ed25519.verify(
                signature: signature, message: SessionChallenge.message(origin: origin, deviceID: deviceID, timestamp: timestamp, nonce: nonce),
                publicKey: publicKey)
        }
        guard verified else { throw .signatureInvalid }

        let token = "ags_" + Base64.encode(random.bytes(32), variant: .urlSafeNoPadding)
        let session = SessionRecord(
            id: "ses_\(ULID())", deviceID: deviceID, tokenHash: tokenHash(token), createdAt: startedAt,
            expiresAt: startedAt + Int64(configuration.sessionTTLSeconds) * 1000, endedAt: nil)
        let failure: GatewayError?
        let refused: RefusedCaller?
        do {
            (failure, refused) = try await store.write { store -> (GatewayError?, RefusedCaller?) in
                guard let device = try store.device(id: deviceID), let agent = try store.agent(id: device.agentID),
                    let owner = try store.user(id: agent.ownerID)
                else { return (.deviceUnknown, nil) }
                // The signature verified: the caller holds this device's key, so a refusal is audited.
                let caller = RefusedCaller(agentID: agent.id, ownerID: owner.id, deviceID: device.id, sessionID: nil)
                if agent.revokedAt != nil { return (.agentRevoked, caller) }
                if device.revokedAt != nil { return (.deviceRevoked, caller) }
                if owner.blockedAt != nil { return (.ownerBlocked, caller) }
                if !owner.agentsEntitled { return (.ownerNotEntitled, caller) }
                if try store.nonceSeen(deviceID: deviceID, nonce: nonce) { return (.nonceReused, nil) }
                try store.insertNonce(deviceID: deviceID, nonce: nonce, at: startedAt)
                try store.insertSession(session)
                return (nil, nil)
            }
        } catch { throw Self.asGatewayError(error) }
        if let failure {
            if let refused { await recordRefusal(failure, caller: refused, call: .api("create_session")) }
            throw failure
        }
        return [
            "token": .string(token), "sessionId": .string(session.id), "expiresAt": .string(Timestamp.rfc3339(milliseconds: session.expiresAt)),
            "expiresInSeconds": .int(configuration.sessionTTLSeconds),
        ]
    }

    /// Resolves `Authorization: Bearer ags_…` to the caller, checking on every call that the session,
    /// device, agent and owner are all still in good standing.
    ///
    /// - Parameter refusedCall: What the request asks, read only when a known session is refused
    ///   (revoked agent or device, blocked owner, expired or ended session): such a refusal leaves
    ///   a `refused` audit event. Nil (or a nil answer) audits nothing.
    public func authenticate(
        authorization: String?, refusedCall: (@Sendable () async -> RefusedCall?)? = nil
    ) async throws(GatewayError) -> Principal {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { throw .tokenMissing }
        let token = String(authorization.dropFirst(7)).trimmingSpaces()
        guard token.hasPrefix("ags_"), token.utf8.count < 200 else { throw .tokenInvalid }
        let hash = tokenHash(token)
        let moment = now
        if let cached = principalCache.entry(hash), cached.principal.session.expiresAt > moment {
            let epoch: String
            do { epoch = try await store.principalEpoch() } catch { throw Self.asGatewayError(error) }
            if epoch == cached.epoch { return cached.principal }
            principalCache.forget(hash)
        }
        let outcome: Result<Principal, GatewayError>
        let refused: RefusedCaller?
        let epoch: String
        do {
            (outcome, refused, epoch) = try await store.read { store -> (Result<Principal, GatewayError>, RefusedCaller?, String) in
                let epoch = try PrincipalEpoch.read(store)
                let (outcome, refused) = try Self.principal(tokenHash: hash, at: moment, in: store)
                return (outcome, refused, epoch)
            }
        } catch { throw Self.asGatewayError(error) }
        let authenticated = outcome.map { principal in
            var principal = principal
            principal.epoch = epoch
            return principal
        }
        if case .success(let principal) = authenticated { principalCache.store(principal, epoch: epoch, tokenHash: hash) }
        if case .failure(let error) = outcome, let refused, let refusedCall, let call = await refusedCall() {
            await recordRefusal(error, caller: refused, call: call)
        }
        return try authenticated.get()
    }

    /// The principal a token hash names at `moment`, or why it may not call (with who it is, when known).
    static func principal(
        tokenHash hash: String, at moment: Int64, in store: any StoreReader
    ) throws -> (Result<Principal, GatewayError>, RefusedCaller?) {
        guard let session = try store.session(tokenHash: hash),
            Sodium.constantTimeEqual(Array(session.tokenHash.utf8), Array(hash.utf8))
        else { return (.failure(.tokenInvalid), nil) }
        guard let device = try store.device(id: session.deviceID), let agent = try store.agent(id: device.agentID),
            let owner = try store.user(id: agent.ownerID)
        else { return (.failure(.tokenInvalid), nil) }
        let caller = RefusedCaller(agentID: agent.id, ownerID: owner.id, deviceID: device.id, sessionID: session.id)
        if agent.revokedAt != nil { return (.failure(.agentRevoked), caller) }
        if device.revokedAt != nil { return (.failure(.deviceRevoked), caller) }
        if owner.blockedAt != nil { return (.failure(.ownerBlocked), caller) }
        if !owner.agentsEntitled { return (.failure(.ownerNotEntitled), caller) }
        if session.endedAt != nil { return (.failure(.sessionEnded), caller) }
        if session.expiresAt <= moment { return (.failure(.tokenExpired), caller) }
        return (
            .success(
                Principal(agent: agent, owner: owner, device: device, session: session, grants: try store.grants(agentID: agent.id))),
            nil
        )
    }

    /// Opens an MCP session for the caller (`initialize`), at most the read rate a minute.
    func openMCPSession(_ principal: Principal, protocolVersion: String) async throws -> String {
        let moment = now
        if let wait = try await shared.takeToken(
            agentID: principal.agent.id, bucket: .mcpSession, ratePerMinute: configuration.readsPerMinute, now: moment)
        {
            throw GatewayError.rateLimited(retryAfter: wait)
        }
        return try await shared.openMCPSession(agentID: principal.agent.id, protocolVersion: protocolVersion, now: moment)
    }

    /// `DELETE /api/v1/sessions/current`.
    public func endSession(_ principal: Principal) async throws(GatewayError) {
        let moment = now
        do { try await store.write { try $0.endSession(id: principal.session.id, at: moment) } } catch { throw Self.asGatewayError(error) }
    }

    /// `POST /api/v1/devices/current/revoke`: revokes the device and ends its sessions.
    public func revokeDevice(_ principal: Principal) async throws(GatewayError) -> JSONValue {
        let moment = now
        do {
            try await store.write { store in
                try store.setDeviceRevoked(id: principal.device.id, at: moment)
                try store.endSessions(deviceID: principal.device.id, at: moment)
            }
        } catch { throw Self.asGatewayError(error) }
        return ["revoked": true, "deviceId": .string(principal.device.id)]
    }

    /// The tools this caller may see: those whose scope some grant holds.
    public func visibleTools(_ principal: Principal) -> [ToolDefinition] {
        ToolCatalog.all.filter { principal.holdsAnywhere($0.scope) }
    }

    /// `GET /api/v1/agent-session/setup`.
    public func setupPacket(_ principal: Principal) async throws(GatewayError) -> JSONValue {
        let projects: [ProjectRecord]
        do { projects = try await store.read { try $0.projects() } } catch { throw Self.asGatewayError(error) }
        let names = Dictionary(uniqueKeysWithValues: projects.map { ($0.key, $0.name) })
        return [
            "agent": ["id": .string(principal.agent.id), "name": .string(principal.agent.name)],
            "owner": ["id": .string(principal.owner.id), "name": .string(principal.owner.name)],
            "device": ["id": .string(principal.device.id), "name": .string(principal.device.name)],
            "grants": .array(
                principal.grants.map {
                    [
                        "project": .string($0.projectKey), "name": .string(names[$0.projectKey] ?? $0.projectKey),
                        "scopes": .array($0.scopes.map { .string($0) }),
                    ]
                }),
            "tools": .array(
                visibleTools(principal).map {
                    ["name": .string($0.name), "title": .string($0.title), "readOnly": .bool($0.readOnly), "scope": .string($0.scope)]
                }),
            "policy": [
                "noDelete": true, "sessionTTLSeconds": .int(configuration.sessionTTLSeconds), "readsPerMinute": .int(configuration.readsPerMinute),
                "writesPerMinute": .int(configuration.writesPerMinute), "idempotencyReplayHours": .int(configuration.idempotencyReplaySeconds / 3600),
            ],
            "session": ["id": .string(principal.session.id), "expiresAt": .string(Timestamp.rfc3339(milliseconds: principal.session.expiresAt))],
        ]
    }

    static func asGatewayError(_ error: any Error) -> GatewayError {
        if let error = error as? GatewayError { return error }
        if let error = error as? PostgresStoreError, error.meansUnavailable {
            StoreTrouble.report("the database did not answer: \(error.message)")
            return .databaseUnavailable
        }
        StoreTrouble.report("a call failed inside the gateway: \(String(describing: error))")
        return .internalError
    }
}

extension Gateway {
    /// The Prometheus text exposition of ``metrics``, with the open MCP sessions counted now (left
    /// at the last count when the store cannot answer).
    public func metricsExposition() async -> [UInt8] {
        metrics.exposition(openMCPSessions: try? await shared.openMCPSessionCount())
    }
}
