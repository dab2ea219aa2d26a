import AgentWire
import Foundation
import Testing

@testable import GatewayCore

/// The real `agent-gateway` binary on both backends: `--db` takes a SQLite file or a
/// `postgres://` URL for serve and the admin commands alike, and never shows the URL's password.
@Suite("agent-gateway on both store backends")
struct BackendCLITests {
    @Test(arguments: StoreBackend.allCases)
    func serveAndAdminCommandsShareOneDatabase(backend: StoreBackend) async throws {
        let database = try await backend.makeLocation()
        let ready = try runGatewayCommandResult(["init", "--db", database])
        #expect(ready.status == 0, "\(ready.stderr)")
        let server = try GatewayProcess(database: database)
        defer { server.stop() }
        let (agentID, code) = try server.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        let created = try await client.call("create_issue", ["project": "WEB", "title": "Through the binary ✓"], idempotencyKey: "cli-1").1
        #expect(created.isToolSuccess, "\(created)")
        let replayed = try await client.call("create_issue", ["project": "WEB", "title": "Through the binary ✓"], idempotencyKey: "cli-1").1
        #expect(replayed["_meta"]?["io.agent-gateway/replayed"]?.boolValue == true)
        #expect(try await client.call("search_issues", ["project": "WEB", "query": "THROUGH"]).1.isToolSuccess)

        let audit = try JSONValue(parsing: try server.admin(["audit", "--agent", agentID, "--json"]))
        let tools = audit["events"]?.arrayValue?.compactMap { $0["tool"]?.stringValue }
        #expect(tools == ["create_issue", "create_issue", "search_issues"])
        let agents = try server.admin(["agent", "list", "--json"])
        #expect(agents.contains(agentID))
        try server.admin(["agent", "revoke", agentID])
        let refused = try await client.call("get_issue", ["issue": "WEB-1"])
        #expect(refused.0.status == 401 || refused.1.toolErrorCode != nil)

        if backend == .postgres {
            let password = try #require(try PostgresURL(parsing: database).password)
            #expect(!ready.stdout.contains(password) && !ready.stderr.contains(password))
            #expect(ready.stdout.contains("postgres://gateway@127.0.0.1"))
        }
    }

    /// A command other than init, serve and seed-demo refuses a PostgreSQL database without the
    /// gateway's tables, as it refuses a missing SQLite file.
    @Test func adminCommandRefusesAnEmptyPostgresDatabase() async throws {
        let database = try await StoreBackend.postgres.makeLocation()
        let result = try runGatewayCommandResult(["agent", "list", "--db", database])
        #expect(result.status != 0)
        #expect(result.stderr.contains("has no gateway tables"), "\(result.stderr)")
        let password = try #require(try PostgresURL(parsing: database).password)
        #expect(!result.stderr.contains(password))
    }

    /// A server that cannot be reached: one line naming the server without the password, and no hang.
    @Test func unreachablePostgresFailsInOneLineWithoutThePassword() throws {
        let result = try runGatewayCommandResult(["agent", "list", "--db", "postgres://someone:Sup3rSecretPw@127.0.0.1:1/nowhere"])
        #expect(result.status != 0)
        #expect(!result.stderr.contains("Sup3rSecretPw") && !result.stdout.contains("Sup3rSecretPw"))
        #expect(result.stderr.contains("postgres://someone@127.0.0.1:1/nowhere"), "\(result.stderr)")
        #expect(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(result.stderr)")
    }
}
