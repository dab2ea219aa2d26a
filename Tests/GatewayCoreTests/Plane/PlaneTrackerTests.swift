import AgentWire
import Foundation
import Testing

@testable import GatewayCore

/// The gateway in front of Plane, against the TEST DOUBLE of Plane's API (`Tests/Doubles`): the
/// same tools as on the embedded tracker, exactly once across the two, Plane's limits and failures.
@Suite("Plane adapter against the Plane API double")
struct PlaneTrackerTests {
    static let allScopes = Scope.all

    /// A gateway over a fresh double, and a paired agent of alice's with `scopes` on WEB.
    func setUp(scopes: [String] = allScopes, projects: [String] = ["WEB"]) async throws -> (PlaneDouble, InProcessGateway, AgentClient) {
        let plane = try await PlaneDouble.start()
        let gateway = try await InProcessGateway(clock: ManualClock(), plane: plane.settings())
        let (_, code) = try await gateway.newAgent(projects: projects, scopes: scopes, name: "laptop")
        let agent = try await AgentClient.pair(baseURL: gateway.url, code: code)
        return (plane, gateway, agent)
    }

    @Test func theToolsWorkOnPlanesData() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { gateway.stop() }

        let projects = try await agent.call("list_projects").1
        #expect(projects["structuredContent"]?["projects"]?.arrayValue?.compactMap { $0["key"]?.stringValue } == ["WEB"])
        let context = try await agent.call("get_project_context", ["project": "web"]).1
        let states = context["structuredContent"]?["states"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(states.starts(with: ["<untrusted-content>Backlog</untrusted-content>"]))
        #expect(context["structuredContent"]?["labels"]?.arrayValue?.count == 3)

        let created = try await agent.call(
            "create_issue",
            [
                "project": "WEB", "title": "Fix the <login> page", "description": "Steps:\nopen it", "priority": "high", "state": "Todo",
                "labels": ["bug"], "assignees": ["alice"],
                "blocks": [["name": "Acceptance criteria", "text": "it loads"]],
            ], idempotencyKey: "create-1"
        ).1
        #expect(created.isToolSuccess, "\(created)")
        let key = created["structuredContent"]?["issue"]?["key"]?.stringValue ?? ""
        #expect(key.hasPrefix("WEB-"))

        // Plane holds it: name, escaped HTML with the block as a section, the gateway's external id.
        let item = try #require(try await plane.workItems("WEB").first { $0["external_source"]?.stringValue == "agent-gateway" })
        #expect(item["name"]?.stringValue == "Fix the <login> page")
        #expect(item["description_html"]?.stringValue?.contains("<h3>Acceptance criteria</h3><p>it loads</p>") == true)
        #expect(item["description_html"]?.stringValue?.contains("&lt;") == false)
        #expect(item["external_id"]?.stringValue?.hasPrefix("agt_") == true)

        let read = try await agent.call("get_issue", ["issue": .string(key)]).1
        let issue = read["structuredContent"]?["issue"]
        #expect(issue?["description"]?.stringValue == "<untrusted-content>Steps:\nopen it</untrusted-content>")
        #expect(issue?["blocks"]?[0]?["name"]?.stringValue == "Acceptance criteria")
        #expect(issue?["priority"]?.stringValue == "high")
        #expect(issue?["createdBy"]?["agentId"]?.stringValue?.hasPrefix("agt_") == true)
        // The creation note names the agent and its owner, as every change does (comments come
        // newest first over Plane).
        let note = read["structuredContent"]?["comments"]?[0]
        #expect(note?["body"]?.stringValue == "<untrusted-content>Created this work item.</untrusted-content>")
        #expect(read["content"]?[0]?["text"]?.stringValue?.contains("agent agt_") == true)

        for (tool, arguments) in [
            ("move_issue", ["issue": JSONValue.string(key), "state": "In Progress"]),
            ("set_issue_labels", ["issue": .string(key), "labels": ["feature", "docs"]]),
            ("assign_issue", ["issue": .string(key), "assignees": []]),
            ("update_issue", ["issue": .string(key), "title": "Fix the login page", "priority": "urgent"]),
            ("update_issue_blocks", ["issue": .string(key), "blocks": [["name": "Plan", "text": "1. reproduce"]]]),
            ("comment_issue", ["issue": .string(key), "body": "Started; see the <plan>."]),
        ] as [(String, JSONObject)] {
            let answer = try await agent.call(tool, .object(arguments)).1
            #expect(answer.isToolSuccess, "\(tool): \(answer)")
        }
        let after = try await agent.call("get_issue", ["issue": .string(key), "limit": 100]).1["structuredContent"]
        #expect(after?["issue"]?["state"]?["name"]?.stringValue == "<untrusted-content>In Progress</untrusted-content>")
        #expect(after?["issue"]?["labels"]?.arrayValue?.count == 2)
        #expect(after?["issue"]?["assignees"]?.arrayValue?.isEmpty == true)
        #expect(after?["issue"]?["title"]?.stringValue == "<untrusted-content>Fix the login page</untrusted-content>")
        #expect(after?["issue"]?["blocks"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["Acceptance criteria", "Plan"])
        #expect(after?["issue"]?["description"]?.stringValue == "<untrusted-content>Steps:\nopen it</untrusted-content>")
        let bodies = after?["comments"]?.arrayValue?.compactMap { $0["body"]?.stringValue } ?? []
        #expect(bodies.count == 7, "\(bodies)")
        #expect(bodies.first == "<untrusted-content>Started; see the <plan>.</untrusted-content>")
        #expect(bodies.last == "<untrusted-content>Created this work item.</untrusted-content>")
        // In Plane the comment carries its trailer, which the agent does not see.
        let itemID = item["id"]!.stringValue!
        let webID = try await plane.projectID("WEB")
        let planeComments = try await plane.api("GET", "projects/\(webID)/issues/\(itemID)/comments/?per_page=100").json["results"]?.arrayValue ?? []
        #expect(planeComments.contains { $0["comment_html"]?.stringValue?.contains("— agent laptop (agt_") == true })

        let search = try await agent.call("search_issues", ["project": "WEB", "state": "In Progress", "query": "login"]).1
        #expect(search["structuredContent"]?["issues"]?.arrayValue?.count == 1)

        // Nothing destructive ever reached Plane.
        #expect(try await plane.calls().destructive.isEmpty)
    }

    @Test func anUngrantedProjectIsRefusedBeforeAnyCallToPlane() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { gateway.stop() }
        try await plane.clearCalls()
        for (tool, arguments) in [
            ("get_project_context", ["project": JSONValue.string("OPS")]), ("get_issue", ["issue": "OPS-1"]),
            ("create_issue", ["project": "OPS", "title": "x"]), ("comment_issue", ["issue": "OPS-1", "body": "x"]),
        ] as [(String, JSONObject)] {
            let answer = try await agent.call(tool, .object(arguments)).1
            #expect(answer["structuredContent"]?["error"]?["code"]?.stringValue == "project_not_granted", "\(tool)")
        }
        #expect(try await plane.calls().all.isEmpty)
    }

    @Test func aRetryFindsTheWorkItemInsteadOfMakingASecond() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { gateway.stop() }
        let arguments: JSONValue = ["project": "WEB", "title": "Once only"]
        let first = try await agent.call("create_issue", arguments, idempotencyKey: "once-1").1
        // A replay from the gateway's record.
        let second = try await agent.call("create_issue", arguments, idempotencyKey: "once-1").1
        #expect(second["_meta"]?[ResultMeta.replayed]?.boolValue == true)
        #expect(first["structuredContent"]?["issue"]?["key"] == second["structuredContent"]?["issue"]?["key"])

        // The gateway lost its record (as if it died between Plane's write and its own commit):
        // Plane answers the create with 409 and the existing id, and the call answers with that item.
        try await gateway.store.write { store in
            let db = (store as! SQLiteTransaction).db
            try db.execute(sql: "DELETE FROM idempotencyRecord")
        }
        let third = try await agent.call("create_issue", arguments, idempotencyKey: "once-1").1
        #expect(third.isToolSuccess, "\(third)")
        #expect(third["structuredContent"]?["issue"]?["key"] == first["structuredContent"]?["issue"]?["key"])
        let made = try await plane.workItems("WEB").filter { $0["name"]?.stringValue == "Once only" }
        #expect(made.count == 1)
        #expect(try await plane.calls().all.contains { $0["status"]?.intValue == 409 })
    }

    @Test func planesRateLimitIsWaitedOutOrReportedAsRetryable() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { gateway.stop() }
        // One 429 with Retry-After: 1 is waited out inside the call.
        try await plane.fault(["count": 1, "status": 429, "retry_after": 1, "method": "POST"])
        let waited = try await agent.call("create_issue", ["project": "WEB", "title": "after a 429"], idempotencyKey: "rl-1").1
        #expect(waited.isToolSuccess, "\(waited)")
        // A long Retry-After is not waited: a retryable tool error, and nothing written.
        try await plane.fault(["count": 5, "status": 429, "retry_after": 120, "method": "POST"])
        let refused = try await agent.call("create_issue", ["project": "WEB", "title": "held back"], idempotencyKey: "rl-2").1
        #expect(refused["isError"]?.boolValue == true)
        #expect(refused["structuredContent"]?["error"]?["code"]?.stringValue == "tracker_rate_limited")
        #expect(refused["structuredContent"]?["error"]?["retryable"]?.boolValue == true)
        #expect(try await plane.workItems("WEB").allSatisfy { $0["name"]?.stringValue != "held back" })
        // Once Plane takes requests again, the same call with the same key makes it once.
        _ = try await HTTP.send("DELETE", plane.url + "/_double/faults")
        let retried = try await agent.call("create_issue", ["project": "WEB", "title": "held back"], idempotencyKey: "rl-2").1
        #expect(retried.isToolSuccess)
        #expect(try await plane.workItems("WEB").filter { $0["name"]?.stringValue == "held back" }.count == 1)
    }

    @Test func planeDownIsAClearErrorAndNothingHalfWritten() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { gateway.stop() }
        try await plane.fault(["count": 3, "status": 503])
        let answer = try await agent.call("create_issue", ["project": "WEB", "title": "during an outage"], idempotencyKey: "down-1").1
        #expect(answer["structuredContent"]?["error"]?["code"]?.stringValue == "tracker_unavailable")
        let records = try await gateway.store.read { store in
            try Int.fetchOne((store as! SQLiteTransaction).db, sql: "SELECT COUNT(*) FROM idempotencyRecord") ?? -1
        }
        #expect(records == 0)
        plane.process.signal(SIGKILL)
        _ = try await plane.process.waitForExit(timeout: .seconds(10))
        let down = try await agent.call("get_issue", ["issue": "WEB-1"]).1
        #expect(down["structuredContent"]?["error"]?["code"]?.stringValue == "tracker_unavailable")
        #expect(down["content"]?[0]?["text"]?.stringValue?.contains("retry later") == true)
        // The gateway itself keeps serving.
        #expect(try await HTTP.send("GET", gateway.url + "/healthz").status == 200)
    }

    @Test func commentsArePagedWithPlanesCursorsAndPeoplesHTMLIsText() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { gateway.stop() }
        let created = try await agent.call("create_issue", ["project": "WEB", "title": "paged"]).1
        let key = try #require(created["structuredContent"]?["issue"]?["key"]?.stringValue)
        let itemID = try #require(created["structuredContent"]?["issue"]?["id"]?.stringValue)
        let webID = try await plane.projectID("WEB")
        for index in 0..<4 {
            _ = try await plane.api(
                "POST", "projects/\(webID)/issues/\(itemID)/comments/",
                json: ["comment_html": .string("<p>person \(index) <script>steal()</script><img src=x onerror=y></p>")])
        }
        var cursor: JSONValue = .null
        var seen: [String] = []
        var pages = 0
        repeat {
            var arguments: JSONObject = ["issue": .string(key), "limit": 2]
            if case .string = cursor { arguments["cursor"] = cursor }
            let page = try await agent.call("get_issue", .object(arguments)).1["structuredContent"]
            seen += page?["comments"]?.arrayValue?.compactMap { $0["body"]?.stringValue } ?? []
            cursor = page?["nextCursor"] ?? .null
            pages += 1
        } while cursor != .null && pages < 10
        #expect(pages == 3)
        #expect(seen.count == 5)
        #expect(seen.dropLast().allSatisfy { $0.hasPrefix("<untrusted-content>person ") && !$0.contains("steal") && !$0.contains("<img") })
    }

    @Test func workSessionsStayInTheGatewayAndNamePlanesItems() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { withExtendedLifetime(plane) { gateway.stop() } }
        let created = try await agent.call("create_issue", ["project": "WEB", "title": "session target"]).1
        #expect(created.isToolSuccess, "\(created)")
        let key = try #require(created["structuredContent"]?["issue"]?["key"]?.stringValue)
        let started = try await agent.call("start_work_session", ["project": "WEB", "issue": .string(key), "summary": "working"]).1
        #expect(started.isToolSuccess, "\(started)")
        let id = try #require(started["structuredContent"]?["workSession"]?["id"]?.stringValue)
        let updated = try await agent.call("update_work_session", ["workSession": .string(id), "note": "half way"]).1
        #expect(updated["structuredContent"]?["workSession"]?["note"]?["issue"]?.stringValue == key)
        let finished = try await agent.call("finish_work_session", ["workSession": .string(id), "result": "done"]).1
        #expect(finished["structuredContent"]?["workSession"]?["status"]?.stringValue == "completed")
    }

    @Test func aDatabaseServesOneTracker() async throws {
        let plane = try await PlaneDouble.start()
        let directory = temporaryDirectory()
        let store = try SQLiteGatewayStore(path: directory + "/gateway.sqlite")
        let key = try await GatewayAdmin.loadHashKey(store: store, hashKeyFile: nil)
        _ = try await GatewayAdmin(store: store, hashKey: key).seedDemo()
        // The embedded demo's projects are not Plane's: refused, with what to do.
        await #expect(throws: AdminError.self) { try await TrackerBinding.bind(store, plane: plane.settings()) }
        try await TrackerBinding.bind(store, plane: nil)
        await #expect(throws: AdminError.self) { try await TrackerBinding.bind(store, plane: plane.settings()) }
    }

    @Test func theAPIKeyComesFromAnOwnerOnlyFileOrTheEnvironment() throws {
        let directory = temporaryDirectory()
        let file = directory + "/key"
        _ = FileManager.default.createFile(atPath: file, contents: Data("plane_api_0123456789\n".utf8), attributes: [.posixPermissions: 0o644])
        #expect(throws: AdminError.self) {
            _ = try PlaneSettings.fromOptions(url: "http://127.0.0.1:1", workspace: "acme", apiKeyFile: file, webURL: nil, environment: [:])
        }
        chmod(file, 0o600)
        let settings = try PlaneSettings.fromOptions(url: "http://127.0.0.1:1", workspace: "acme", apiKeyFile: file, webURL: nil, environment: [:])
        #expect(settings.apiKey.count == "plane_api_0123456789".utf8.count)
        #expect(!"\(settings)".contains("0123456789"))
        let fromEnvironment = try PlaneSettings.fromOptions(
            url: "http://127.0.0.1:1", workspace: "acme", apiKeyFile: nil, webURL: nil,
            environment: [PlaneSettings.apiKeyVariable: "plane_api_abcdefgh"])
        #expect(fromEnvironment.apiKey.count == 18)
        #expect(throws: AdminError.self) {
            _ = try PlaneSettings.fromOptions(url: "http://127.0.0.1:1", workspace: "acme", apiKeyFile: nil, webURL: nil, environment: [:])
        }
        #expect(throws: AdminError.self) {
            _ = try PlaneSettings.fromOptions(url: "ftp://x", workspace: "acme", apiKeyFile: file, webURL: nil, environment: [:])
        }
        #expect(throws: AdminError.self) {
            _ = try PlaneSettings.fromOptions(url: "http://127.0.0.1:1", workspace: "../x", apiKeyFile: file, webURL: nil, environment: [:])
        }
    }

    /// The real `agent-gateway` killed with SIGKILL after Plane wrote the work item and before the
    /// gateway stored its record (the double holds its answer); the same call with the same key on
    /// the restarted gateway finds the work item (Plane's 409) and answers with it: one work item.
    @Test func aGatewayKilledBetweenPlanesWriteAndItsOwnRecordMakesOneWorkItem() async throws {
        let plane = try await PlaneDouble.start()
        // Plane's answer is held 60 s and the gateway waits for it up to 120 s (--plane-timeout), so the
        // kill below comes first however loaded the machine is.
        let arguments = [
            "--tracker", "plane", "--plane-url", plane.url, "--plane-workspace", "acme", "--plane-api-key-file", plane.keyFile,
            "--plane-timeout", "120",
        ]
        let first = try await GatewayProcess.start(extraArguments: arguments, seed: false)
        let (_, code) = try await offThePool { () -> (String, String) in
            try first.admin(["seed-demo"])
            return try first.newAgent(scopes: [Scope.projectRead, Scope.issueCreate])
        }
        let agent = try await AgentClient.pair(baseURL: first.url, code: code)
        let title = "crash between the two writes"
        try await plane.fault(["count": 1, "delay_after_ms": 60000, "method": "POST", "path_contains": "/issues/"])
        let lost = Task { try? await agent.call("create_issue", ["project": "WEB", "title": .string(title)], idempotencyKey: "crash-1") }
        await waitUntil(seconds: 50) { (try? await plane.workItems("WEB").contains { $0["name"]?.stringValue == title }) ?? false }
        try await offThePool { first.stop(signal: SIGKILL) }
        _ = await lost.value
        let recorded = try await offThePool { try runGatewayCommand(["audit", "--db", first.database, "--json"]) }
        // The killed gateway stored no answer for the call (a refusal may be audited if the test's own
        // HTTP client gave up first and the gateway saw the connection close).
        let events = try JSONValue(parsing: Array(recorded.utf8))["events"]?.arrayValue ?? []
        #expect(!events.contains { $0["tool"] == "create_issue" && $0["outcome"] != "denied" && $0["outcome"] != "failed" }, "\(recorded)")

        let second = try await GatewayProcess.start(extraArguments: arguments, database: first.database, seed: false)
        var again = AgentClient(baseURL: second.url, deviceID: agent.deviceID, key: agent.key, token: agent.token)
        try await again.initialize()
        let retried = try await again.call("create_issue", ["project": "WEB", "title": .string(title)], idempotencyKey: "crash-1").1
        #expect(retried.isToolSuccess, "\(retried)")
        let items = try await plane.workItems("WEB").filter { $0["name"]?.stringValue == title }
        #expect(items.count == 1)
        #expect(retried["structuredContent"]?["issue"]?["id"]?.stringValue == items.first?["id"]?.stringValue)
        #expect(try await plane.calls().all.contains { $0["method"]?.stringValue == "POST" && $0["status"]?.intValue == 409 })
        // And once recorded, a third try is the gateway's replay.
        let third = try await again.call("create_issue", ["project": "WEB", "title": .string(title)], idempotencyKey: "crash-1").1
        #expect(third["_meta"]?[ResultMeta.replayed]?.boolValue == true)
        try await offThePool { second.stop() }
    }

    /// Over Plane the console lists Plane's projects and work items and links each work item to Plane.
    @Test func theConsoleLinksWorkItemsToPlane() async throws {
        let (plane, gateway, agent) = try await setUp()
        defer { withExtendedLifetime(plane) { gateway.stop() } }
        let created = try await agent.call("create_issue", ["project": "WEB", "title": "linked from the console"]).1
        let key = try #require(created["structuredContent"]?["issue"]?["key"]?.stringValue)
        let browser = try await ConsoleBrowser.signIn(gateway, as: "alice")
        let projects = String(decoding: try await browser.get("/console/tracker").body, as: UTF8.self)
        #expect(projects.contains("Read-only, from Plane") && projects.contains("/console/tracker/WEB"))
        let list = String(decoding: try await browser.get("/console/tracker/WEB").body, as: UTF8.self)
        #expect(list.contains("href=\"\(plane.url)/acme/browse/\(key)/\""), "\(list)")
        // The projects an owner may grant are Plane's.
        let form = String(decoding: try await browser.get("/console/agents/new").body, as: UTF8.self)
        #expect(form.contains("Website") && form.contains("Operations"), "\(form)")
        let number = key.split(separator: "-").last.map(String.init) ?? ""
        let page = try await browser.get("/console/tracker/WEB/\(number)")
        #expect(page.status == 303)
        #expect(page.header("Location") == "\(plane.url)/acme/browse/\(key)/")
    }
}
