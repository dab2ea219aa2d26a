import AgentWire
import Foundation
import GatewayCore
import Testing

/// The admin CLI as a new operator meets it: a typo in `--db`, listings to find ids, headers.
@Suite("agent-gateway admin CLI", .serialized)
struct AdminCLITests {
    @Test(
        "a missing --db is refused by name and never created, for every command that does not create one",
        arguments: [
            ["audit"], ["agent", "list"], ["agent", "create", "--owner", "alice", "--name", "x", "--project", "WEB", "--scope", "project:read"],
            ["agent", "pair", "agt_x"], ["agent", "revoke", "agt_x"], ["device", "list", "--agent", "agt_x"],
            ["session", "list", "--agent", "agt_x"],
            ["owner", "block", "alice"],
        ])
    func typoInDatabasePath(command: [String]) throws {
        let directory = temporaryDirectory()
        let typo = directory + "/gatway.sqlite"
        let words = command.first == "audit" ? 1 : 2
        let result = try runGatewayCommandResult(Array(command.prefix(words)) + ["--db", typo] + Array(command.dropFirst(words)))
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("there is no database at \(typo)"), "\(result)")
        #expect(result.stderr.contains("agent-gateway init --db"), "\(result)")
        #expect(result.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: typo), "the typo made a database")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }

    @Test("init, serve and seed-demo create the database; a directory is refused")
    func creatingCommands() throws {
        let directory = temporaryDirectory()
        let made = try runGatewayCommandResult(["init", "--db", directory + "/a.sqlite"])
        #expect(made.status == 0 && made.stdout.contains("is ready"), "\(made)")
        #expect(try runGatewayCommandResult(["audit", "--db", directory + "/a.sqlite"]).status == 0)
        #expect(try runGatewayCommandResult(["seed-demo", "--db", directory + "/b.sqlite"]).status == 0)
        let folder = try runGatewayCommandResult(["audit", "--db", directory])
        #expect(folder.status != 0 && folder.stderr.contains("is not a database file"), "\(folder)")
    }

    @Test("agent, device and session lists find the ids revoke needs; the audit has column headers")
    func listings() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        #expect(try runGatewayCommandResult(["agent", "list", "--db", server.database]).stderr.contains("no agents yet"))
        let (agentID, code) = try server.newAgent(scopes: [Scope.projectRead])
        _ = try server.newAgent(scopes: [Scope.projectRead], owner: "bob")
        var client = try await AgentClient.pair(baseURL: server.url, code: code)
        _ = try await client.call("list_projects", [:])

        let agents = try server.admin(["agent", "list"])
        let lines = agents.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("AGENT") == true && lines.first?.contains("LAST CALL") == true, "\(agents)")
        #expect(lines.count == 3, "\(agents)")
        let row = try #require(lines.first { $0.hasPrefix(agentID) })
        #expect(row.contains("alice") && row.contains("active") && row.contains("WEB"), "\(row)")
        #expect(!row.contains("never"), "the agent made a call: \(row)")

        let mine = try JSONValue(parsing: server.admin(["agent", "list", "--owner", "alice", "--json"]))
        #expect(mine["agents"]?.arrayValue?.count == 1)
        #expect(mine["agents"]?[0]?["openSessions"] == 1)
        #expect(mine["agents"]?[0]?["activeDevices"] == 1)

        let devices = try JSONValue(parsing: server.admin(["device", "list", "--agent", agentID, "--json"]))
        let deviceID = try #require(devices["devices"]?[0]?["id"]?.stringValue)
        #expect(try server.admin(["device", "list", "--agent", agentID]).hasPrefix("DEVICE"))
        let sessions = try JSONValue(parsing: server.admin(["session", "list", "--agent", agentID, "--json"]))
        let sessionID = try #require(sessions["sessions"]?[0]?["id"]?.stringValue)
        #expect(try server.admin(["session", "list", "--agent", agentID]).hasPrefix("SESSION"))

        let audit = try server.admin(["audit"])
        #expect(audit.split(separator: "\n").first?.hasPrefix("TIME") == true, "\(audit)")
        #expect(audit.contains("list_projects"))

        // Ending the session stops its token; revoking the device stops it signing in again.
        try server.admin(["session", "end", sessionID])
        let ended = try await HTTP.send("GET", server.url + "/api/v1/agent-session/setup", headers: client.authorization)
        #expect(ended.status == 401, "\(ended.json)")
        try server.admin(["device", "revoke", deviceID])
        #expect(try server.admin(["device", "list", "--agent", agentID]).contains("revoked"))
        let unknown = try runGatewayCommandResult(["device", "revoke", "--db", server.database, "dev_nope"])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown device dev_nope"), "\(unknown)")
        client.mcpSessionID = nil
    }

    @Test("a mistyped command gets a suggestion")
    func typo() throws {
        let result = try runGatewayCommandResult(["audti", "--db", "x"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("unknown command 'audti'; did you mean 'audit'?"), "\(result)")
    }
}
