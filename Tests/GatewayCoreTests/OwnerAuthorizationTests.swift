import AgentWire
import Foundation
import GatewayCore
import Testing

/// Who sees and changes what through the owner API and the console, what the console shows
/// (escaped), and how entitlement and blocking stop an owner's agents.
@Suite("Owner API authorization")
struct OwnerAuthorizationTests {
    @Test("another owner's agent by its id is a 404 everywhere; an admin sees it")
    func anotherOwnersAgentIs404() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        let bobsAgent = try await gateway.admin.createAgent(ownerID: "bob", name: "bob's", projects: ["WEB"], scopes: ["project:read"])
        let bob = try await ConsoleBrowser.signIn(gateway, as: "bob")
        let device = try await bob.api("POST", "/agents/\(bobsAgent)/pairing-codes")
        let client = try await AgentClient.pair(baseURL: gateway.url, code: try #require(device.json["code"]?.stringValue))
        let alice = try await ConsoleBrowser.signIn(gateway, as: "alice")
        for path in ["/agents/\(bobsAgent)", "/agents/\(bobsAgent)/devices", "/agents/\(bobsAgent)/sessions", "/audit?agent=\(bobsAgent)"] {
            #expect(try await alice.api("GET", path).status == 404, "GET \(path)")
        }
        for path in [
            "/agents/\(bobsAgent)/revoke", "/agents/\(bobsAgent)/pairing-codes", "/agents/\(bobsAgent)/devices/\(client.deviceID)/revoke",
        ] {
            #expect(try await alice.api("POST", path).status == 404, "POST \(path)")
        }
        #expect(try await alice.get("/console/agents/\(bobsAgent)").status == 404)
        #expect(try await alice.post("/console/agents/\(bobsAgent)/revoke").status == 404)
        #expect(try await alice.api("GET", "/admin/users").status == 404, "admin routes are not found for an owner")
        #expect(try await alice.post("/console/admin/users/bob/block", [("blocked", "yes")]).status == 404)
        #expect(try await alice.api("GET", "/agents").json["agents"]?.arrayValue?.isEmpty == true)
        #expect(try await client.call("list_projects").1.isToolSuccess, "bob's agent still works")

        let ada = try await ConsoleBrowser.signIn(gateway, as: "ada")
        #expect(try await ada.api("GET", "/agents/\(bobsAgent)").status == 200)
        #expect(try await ada.api("GET", "/admin/users").json["users"]?.arrayValue?.count == 5)
    }

    @Test("script payloads in agent names, device names, issue titles and comments are rendered inert")
    func scriptPayloadsAreInert() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        let payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
        let alice = try await ConsoleBrowser.signIn(gateway, as: "alice")
        let created = try await alice.api(
            "POST", "/agents",
            json: ["name": .string("a" + payload), "grants": [["project": "WEB", "scopes": ["project:read", "issue:create", "issue:comment"]]]])
        let agentID = try #require(created.json["agent"]?["id"]?.stringValue)
        let code = try #require(try await alice.api("POST", "/agents/\(agentID)/pairing-codes").json["code"]?.stringValue)
        let key = DeviceKey()
        let claim = try await HTTP.send(
            "POST", gateway.url + "/api/v1/pairing/claim",
            json: ["code": .string(code), "publicKey": .string(key.publicKeyBase64), "deviceName": .string("d" + payload)])
        #expect(claim.status == 201)
        var client = AgentClient(baseURL: gateway.url, deviceID: try #require(claim.json["deviceId"]?.stringValue), key: key, token: "")
        try await client.newSession()
        try await client.initialize()
        let issue = try await client.call("create_issue", ["project": "WEB", "title": .string("t" + payload), "description": .string(payload)])
        let issueKey = try #require(issue.1["structuredContent"]?["issue"]?["key"]?.stringValue)
        _ = try await client.call("comment_issue", ["issue": .string(issueKey), "body": .string("c" + payload)])
        let number = issueKey.split(separator: "-").last!
        for path in ["/console", "/console/agents/\(agentID)", "/console/tracker/WEB", "/console/tracker/WEB/\(number)"] {
            let page = try await alice.get(path)
            let html = String(decoding: page.body, as: UTF8.self)
            #expect(page.status == 200, "\(path)")
            #expect(!html.contains("<script>") && !html.contains("<img src=x"), "\(path) carries live markup")
            #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(path) shows the payload as text")
        }
        let issuePage = String(decoding: try await alice.get("/console/tracker/WEB/\(number)").body, as: UTF8.self)
        #expect(issuePage.contains("agent a&lt;script&gt;"), "the history names the agent")
        #expect(issuePage.contains(" for Alice"), "and its owner")
        #expect(issuePage.contains("commented"))
    }

    @Test("switching the entitlement off stops every session of the owner's agents at the next call")
    func entitlementOffStopsEverySession() async throws {
        try await stopsEverySession(
            change: { ada in
                try await ada.api("POST", "/admin/users/alice/entitlement", json: ["enabled": false])
            }, code: "owner_blocked", messageMentions: "entitlement")
    }

    @Test("blocking the owner stops every session of the owner's agents at the next call")
    func blockingStopsEverySession() async throws {
        try await stopsEverySession(
            change: { ada in
                try await ada.api("POST", "/admin/users/alice/block", json: ["blocked": true])
            }, code: "owner_blocked", messageMentions: "blocked")
    }

    func stopsEverySession(change: (ConsoleBrowser) async throws -> HTTPAnswer, code: String, messageMentions: String) async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        var clients: [AgentClient] = []
        for _ in 0..<2 {
            let (_, pairing) = try await gateway.newAgent(scopes: ["project:read"])
            clients.append(try await AgentClient.pair(baseURL: gateway.url, code: pairing))
        }
        let (firstAgent, _) = try await gateway.newAgent(scopes: ["project:read"])
        let secondCode = try await gateway.admin.createPairingCode(agentID: firstAgent)
        clients.append(try await AgentClient.pair(baseURL: gateway.url, code: secondCode))
        let bobsAgent = try await gateway.admin.createAgent(ownerID: "bob", name: "bob's", projects: ["WEB"], scopes: ["project:read"])
        let bobs = try await AgentClient.pair(baseURL: gateway.url, code: try await gateway.admin.createPairingCode(agentID: bobsAgent))
        for client in clients + [bobs] { #expect(try await client.call("list_projects").1.isToolSuccess) }

        let ada = try await ConsoleBrowser.signIn(gateway, as: "ada")
        #expect(try await change(ada).status == 200)
        for client in clients {
            let (answer, _) = try await client.call("list_projects")
            #expect(answer.errorCode == code, "next call: \(answer.status) \(answer.errorCode ?? "-")")
            #expect(answer.json["error"]?["message"]?.stringValue?.contains(messageMentions) == true)
        }
        #expect(try await bobs.call("list_projects").1.isToolSuccess, "another owner's agent keeps working")
        let owner = try? await ConsoleBrowser.signIn(gateway, as: "alice")
        if code == "owner_blocked", messageMentions == "entitlement", let owner {
            let create = try await owner.api("POST", "/agents", json: ["name": "more", "grants": [["project": "WEB", "scopes": ["project:read"]]]])
            #expect(create.status == 403, "without the entitlement an owner creates no agents")
        } else {
            #expect(owner == nil, "a blocked person cannot sign in")
        }
        let actions = try await gateway.store.read { try $0.ownerActions(userID: "alice", limit: 10) }
        #expect(
            actions.contains { $0.actorUserID == "ada" && ["set_entitlement", "block_user"].contains($0.action) && $0.subjectID == "alice" },
            "the admin's action is recorded with its actor")
    }

    @Test("the audit feed filters by agent, tool and outcome, pages with a cursor; activity shows stale agents")
    func auditFeedAndActivity() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock)
        defer { gateway.stop() }
        let (agentID, code) = try await gateway.newAgent(scopes: ["project:read", "report:write"])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        for _ in 0..<3 { _ = try await client.call("list_projects") }
        _ = try await client.call("get_issue", ["issue": "WEB-999"])
        _ = try await client.call("start_work_session", ["project": "WEB", "summary": "work"])
        let alice = try await ConsoleBrowser.signIn(gateway, as: "alice")
        let first = try await alice.api("GET", "/audit?agent=\(agentID)&tool=list_projects&limit=2")
        #expect(first.json["events"]?.arrayValue?.count == 2)
        let cursor = try #require(first.json["nextCursor"]?.stringValue)
        let second = try await alice.api("GET", "/audit?agent=\(agentID)&tool=list_projects&limit=2&cursor=\(cursor)")
        #expect(second.json["events"]?.arrayValue?.count == 1)
        let rejected = try await alice.api("GET", "/audit?outcome=rejected")
        #expect(rejected.json["events"]?.arrayValue?.map { $0["tool"]?.stringValue } == ["get_issue"])
        let future = try await alice.api("GET", "/audit?since=\(Int64(clock.nowSeconds + 60) * 1000)")
        #expect(future.json["events"]?.arrayValue?.isEmpty == true)
        #expect(try await alice.api("GET", "/audit?limit=100000").status == 422)

        let active = try await alice.api("GET", "/agents/\(agentID)")
        #expect(active.json["agent"]?["state"]?.stringValue == "connected")
        #expect(active.json["agent"]?["activity"]?["lastTool"]?.stringValue == "start_work_session")
        clock.advance(seconds: 901)
        let stale = try await alice.api("GET", "/agents/\(agentID)")
        #expect(stale.json["agent"]?["state"]?.stringValue == "stale")
        #expect(stale.json["agent"]?["activity"]?["stale"]?.boolValue == true)
    }
}
