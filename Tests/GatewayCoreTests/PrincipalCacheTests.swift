import AgentWire
import Foundation
import Testing

@testable import GatewayCore

/// Authentication is cached per token, and every change to who may call moves the principal epoch,
/// so that a revocation is effective at the next call, whichever process made it.
@Suite("Principal cache and epoch")
struct PrincipalCacheTests {
    @Test(arguments: StoreBackend.allCases) func everyChangeToWhoMayCallMovesTheEpoch(backend: StoreBackend) async throws {
        let store = try await backend.makeStore()
        let admin = try GatewayAdmin(store: store, hashKey: try await GatewayAdmin.loadHashKey(store: store, hashKeyFile: nil))
        _ = try await admin.seedDemo()
        let changes: [(String, @Sendable (any StoreWriter) throws -> Void)] = [
            ("block", { try $0.setUserBlocked(id: "bob", at: 1) }), ("unblock", { try $0.setUserBlocked(id: "bob", at: nil) }),
            ("role", { try $0.setUserRole(id: "bob", role: .admin) }), ("entitlement", { try $0.setUserEntitled(id: "bob", entitled: false) }),
            (
                "grant",
                { try $0.insertGrant(GrantRecord(agentID: try $0.agents(ownerID: nil).first!.id, projectKey: "OPS", scopes: ["project:read"])) }
            ),
            ("revoke agent", { try $0.setAgentRevoked(id: try $0.agents(ownerID: nil).first!.id, at: 1) }),
            ("revoke device", { try $0.setDeviceRevoked(id: "dev_none", at: 1) }), ("end session", { try $0.endSession(id: "ses_none", at: 1) }),
            ("end device sessions", { try $0.endSessions(deviceID: "dev_none", at: 1) }),
            ("end owner sessions", { try $0.endSessions(ownerID: "bob", at: 1) }),
        ]
        _ = try await admin.createAgent(ownerID: "alice", name: "epoch", projects: ["WEB"], scopes: [Scope.projectRead])
        for (name, change) in changes {
            let before = try await store.read { try PrincipalEpoch.read($0) }
            try await store.write { try change($0) }
            let after = try await store.read { try PrincipalEpoch.read($0) }
            #expect(Int(after)! > Int(before)!, "\(name) did not move the epoch")
        }
    }

    @Test func aCachedSessionIsRefusedRightAfterARevocationFromAnotherProcess() async throws {
        let server = try await GatewayProcess.start()
        let (agentID, code) = try await offThePool { try server.newAgent(scopes: [Scope.projectRead]) }
        let agent = try await AgentClient.pair(baseURL: server.url, code: code)
        // Two calls: the second is answered from the cache.
        for _ in 0..<2 { #expect(try await agent.call("list_projects").1.isToolSuccess) }
        try await offThePool { _ = try server.admin(["agent", "revoke", agentID]) }
        let refused = try await agent.call("list_projects").0
        #expect(refused.status == 401)
        #expect(refused.errorCode == "agent_revoked")
    }
}
