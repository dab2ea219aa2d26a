import AgentWire
import Foundation
import GRDB
import Testing

@testable import GatewayCore

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11, items 2, 4, 7, 9 and 10: what a hostile or greedy agent sends, reproduced as the issue
/// describes it.
@Suite("Hostile input: audit, bounds, write-only scopes, control characters")
struct GatewayHostileInputTests {
    // MARK: Item 2: the audit carries no argument text, floods are limited, bodies are capped

    @Test func auditCarriesNoArgumentText() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead, Scope.issueCreate])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let marker = "zqmark" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let long = marker + String(repeating: "x", count: 5000)
        let calls: [(String, JSONValue)] = [
            (marker + "_tool", ["project": .string(marker)]),  // unknown tool
            ("get_issue", ["issue": .string(marker)]),  // over-long issue key: validation
            ("get_issue", ["issue": .string(long)]),
            ("get_issue", ["issue": .string("WEB-1"), marker: 1]),  // unknown argument
            ("get_project_context", ["project": .string(long)]),
            ("get_project_context", ["project": .string("ZQ\(marker.suffix(6))")]),  // valid shape, no such project
            ("get_issue", ["issue": .string("ZQ\(marker.suffix(6))-1")]),
            ("search_issues", ["project": "WEB", "query": .string(marker), "cursor": .string(marker)]),  // a bad cursor
            ("create_issue", ["project": "OPS", "title": .string(marker)]),  // not granted
            ("create_issue", ["project": .string(marker), "title": .string(marker)]),
            ("update_issue", ["issue": "WEB-1", "title": .string(marker)]),  // scope denied
        ]
        for (tool, arguments) in calls {
            _ = try await client.rpc("tools/call", params: ["name": .string(tool), "arguments": arguments])
        }
        _ = try await client.call("create_issue", ["project": "OPS", "title": "x"], idempotencyKey: marker)
        _ = try await client.call("list_projects", ["bogus": .string(marker)], idempotencyKey: long)

        let events = try await gateway.admin.auditEvents(agentID: agentID)
        #expect(events.count == calls.count + 2)
        let rendered = events.map { GatewayAdmin.json($0).jsonText }.joined(separator: "\n").lowercased()
        #expect(!rendered.contains(marker), "the audit holds argument text: \(rendered.prefix(2000))")
        #expect(!rendered.contains(String(marker.suffix(6))))
        // The unknown tool is there, as a hash; refused calls carry only what resolved.
        #expect(events[0].tool == Gateway.unknownToolLabel(marker + "_tool") && events[0].errorCode == "unknown_tool")
        #expect(events[0].project == nil && events[0].targetIDs.isEmpty)
        for event in events {
            #expect(event.tool.utf8.count <= 32 && (event.project?.utf8.count ?? 0) <= 20)
            for target in event.targetIDs { #expect(target.hasPrefix("iss_") || target.hasPrefix("wks_") || target.hasPrefix("cmt_")) }
        }
        // Not in the database either, in any table, the WAL included: none of these calls stores text.
        for suffix in ["", "-wal"] {
            let bytes = Array((try? Data(contentsOf: URL(fileURLWithPath: gateway.sqlite.path + suffix))) ?? Data())
            let lowered = bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
            #expect(!contains(lowered, Array(marker.utf8)), "gateway.sqlite\(suffix) holds the marker")
        }
    }

    /// 60 unknown-tool calls carrying 300 KB each, and 60 get_issue calls with a 900 KB issue key,
    /// from an agent with only project:read: the rate limiter answers most of them with 429, and
    /// the database grows by a few kilobytes, not the 58.7 + 54 MB of the issue.
    @Test func floodOfBigUnknownAndInvalidCallsIsLimitedAndSmall() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock()) { $0.readsPerMinute = 20 }
        let (agentID, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        try gateway.sqlite.checkpoint()
        let sizeBefore = try fileSize(gateway.sqlite.path)
        let big = String(repeating: "A", count: 300_000)
        var statuses: [Int] = []
        for index in 0..<60 {
            let name = "no_such_tool_\(index)_" + String(repeating: "n", count: 100_000)
            statuses.append(try await client.rpc("tools/call", params: ["name": .string(name), "arguments": ["payload": .string(big)]]).status)
        }
        let hugeKey = "WEB-" + String(repeating: "9", count: 900_000)
        for _ in 0..<60 { statuses.append(try await client.call("get_issue", ["issue": .string(hugeKey)]).0.status) }
        #expect(statuses.filter { $0 == 200 }.count == 20)
        #expect(statuses.filter { $0 == 429 }.count == 100)
        let events = try await gateway.admin.auditEvents(agentID: agentID)
        // 20 allowed calls, and one rate-limited event (the clock does not move: one second).
        #expect(events.count == 21, "\(events.map { $0.errorCode ?? "ok" })")
        try gateway.sqlite.checkpoint()
        let growth = try fileSize(gateway.sqlite.path) - sizeBefore
        #expect(growth <= 64 * 1024, "the database grew by \(growth) bytes")
    }

    @Test func requestBodiesAreCappedPerEndpointWith413() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        // /mcp: 1 MiB. A 1.5 MB tools/call is refused before it is parsed.
        let tooBig = try await client.call("get_issue", ["issue": .string(String(repeating: "x", count: 1_500_000))]).0
        #expect(tooBig.status == 413 && tooBig.errorCode == "payload_too_large")
        #expect(tooBig.json["error"]?["message"]?.stringValue?.contains("1 MiB") == true)
        #expect(tooBig.json["error"]?["retryable"]?.boolValue == false)
        // REST: 4 KiB for pairing and sessions, 1 KiB where no body is expected.
        let claim = try await HTTP.send("POST", gateway.url + "/api/v1/pairing/claim", json: ["code": .string(String(repeating: "A", count: 10_000))])
        #expect(claim.status == 413 && claim.errorCode == "payload_too_large")
        let session = try await HTTP.send("POST", gateway.url + "/api/v1/sessions", json: ["nonce": .string(String(repeating: "A", count: 10_000))])
        #expect(session.status == 413 && session.errorCode == "payload_too_large")
        let setup = try await HTTP.send(
            "POST", gateway.url + "/api/v1/devices/current/revoke", json: ["x": .string(String(repeating: "A", count: 5000))],
            headers: client.authorization)
        #expect(setup.status == 413 && setup.errorCode == "payload_too_large")
        // Without Content-Length (chunked), the cap holds while reading.
        let port = Int(gateway.url.split(separator: ":").last!)!
        let chunked = try RawHTTP.exchange(
            port: port,
            head: "POST /api/v1/pairing/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            body: Array("{\"code\":\"".utf8) + Array(repeating: UInt8(ascii: "A"), count: 20_000) + Array("\"}".utf8))
        #expect(chunked.hasPrefix("HTTP/1.1 413"), "\(chunked.prefix(200))")
        #expect(chunked.contains("payload_too_large"))
        // The agent still works.
        #expect(try await client.call("get_issue", ["issue": "WEB-1"]).1.isToolSuccess)
    }

    // MARK: Item 7: limits in Unicode scalars and bytes

    @Test func aTitleOfThreeHundredCharactersCannotHoldMegabytes() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        // One letter plus 300,000 combining marks: one grapheme cluster, 300,001 scalars, 600,001 bytes.
        let zalgo = "a" + String(repeating: "\u{0301}", count: 300_000)
        #expect(zalgo.count == 1 && zalgo.utf8.count == 600_001)
        let refused = try await client.call("create_issue", ["project": "WEB", "title": .string(zalgo)]).1
        #expect(refused.toolErrorCode == "validation_failed")
        #expect(refused["structuredContent"]?["error"]?["message"]?.stringValue?.contains("at most 300 characters") == true)
        let update = try await client.call("update_issue", ["issue": "WEB-1", "title": .string(zalgo)]).1
        #expect(update.toolErrorCode == "validation_failed")
        let longest = try await gateway.store.read { store in
            try Int.fetchOne((store as! SQLiteTransaction).db, sql: "SELECT MAX(length(CAST(title AS BLOB))) FROM issue") ?? 0
        }
        #expect(longest < 1200)
        // 300 scalars are accepted, whatever they are: 100 letters with two combining marks each.
        let accented = String(repeating: "e\u{0301}\u{0323}", count: 100)
        #expect(try await client.call("create_issue", ["project": "WEB", "title": .string(accented)]).1.isToolSuccess)
        let over = accented + "x"
        #expect(try await client.call("create_issue", ["project": "WEB", "title": .string(over)]).1.toolErrorCode == "validation_failed")
    }

    @Test func theIdempotencyKeyHeaderIsLimitedLikeTheArgument() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (agentID, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let long = String(repeating: "k", count: 60_000)
        let refused = try await client.call("comment_issue", ["issue": "WEB-1", "body": "long key"], idempotencyKey: long)
        #expect(refused.0.status == 200)
        #expect(refused.1.toolErrorCode == "validation_failed")
        #expect(refused.1["structuredContent"]?["error"]?["message"]?.stringValue?.contains("Idempotency-Key") == true)
        let longest = String(repeating: "k", count: 200)
        #expect(try await client.call("comment_issue", ["issue": "WEB-1", "body": "200"], idempotencyKey: longest).1.isToolSuccess)
        #expect(
            try await client.call("comment_issue", ["issue": "WEB-1", "body": "201"], idempotencyKey: longest + "k").1.toolErrorCode
                == "validation_failed")
        let comments = try await gateway.store.read { store in try store.commentCount(issueID: try issueID(store, "WEB-1")) }
        #expect(comments == 1)
        #expect(try await gateway.admin.auditEvents(agentID: agentID).allSatisfy { $0.idempotencyKeyHash.map { $0.count == 64 } ?? true })
    }

    // MARK: Item 10: NUL and other control characters are refused, never cut

    @Test func aNulInATitleIsRefusedNotTruncated() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let nul = try await client.call("create_issue", ["project": "WEB", "title": "nul\u{0000}inside"]).1
        #expect(nul.toolErrorCode == "validation_failed")
        let message = nul["structuredContent"]?["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("arguments.title") && message.contains("U+0000"), "\(message)")
        let stored = try await gateway.store.read { store in
            try String.fetchAll((store as! SQLiteTransaction).db, sql: "SELECT title FROM issue WHERE title LIKE 'nul%'")
        }
        #expect(stored.isEmpty, "stored: \(stored)")

        let refusals: [(String, JSONValue)] = [
            ("update_issue", ["issue": "WEB-1", "title": "tab\there"]),  // one-line field: no tab
            ("update_issue", ["issue": "WEB-1", "title": "two\nlines"]),
            ("update_issue", ["issue": "WEB-1", "description": "bell\u{0007}"]),
            ("update_issue", ["issue": "WEB-1", "description": "carriage\r\nreturn"]),
            ("update_issue", ["issue": "WEB-1", "description": "nul\u{0000}"]),
            ("comment_issue", ["issue": "WEB-1", "body": "escape \u{001B}[31m red"]),
            ("comment_issue", ["issue": "WEB-1", "body": "c1 \u{0085} next line"]),
            ("update_issue_blocks", ["issue": "WEB-1", "blocks": [["name": "Plan", "text": "del\u{007F}"]]]),
            ("move_issue", ["issue": "WEB-1", "state": "Done\u{0000}"]),
            ("search_issues", ["project": "WEB", "query": "q\u{0000}"]),
        ]
        for (tool, arguments) in refusals {
            #expect(try await client.call(tool, arguments).1.toolErrorCode == "validation_failed", "\(tool) \(arguments)")
        }
        // Line feeds and tabs are fine where text may span lines.
        let multiline = "line one\n\tindented\nline three"
        let updated = try await client.call("update_issue", ["issue": "WEB-1", "description": .string(multiline)]).1
        #expect(updated["structuredContent"]?["issue"]?["description"]?.stringValue == marked(multiline))
        // The published schema says so.
        let tools = try await client.rpc("tools/list").json["result"]?["tools"]?.arrayValue ?? []
        let create = try #require(tools.first { $0["name"]?.stringValue == "create_issue" })
        #expect(create["inputSchema"]?["properties"]?["title"]?["pattern"]?.stringValue == TextRule.singleLinePattern)
        #expect(create["inputSchema"]?["properties"]?["description"]?["pattern"]?.stringValue == TextRule.multiLinePattern)
    }

    @Test func pairingRefusesControlCharactersInTheDeviceName() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: [Scope.projectRead])
        let key = DeviceKey()
        let claim = try await HTTP.send(
            "POST", gateway.url + "/api/v1/pairing/claim",
            json: ["code": .string(code), "publicKey": .string(key.publicKeyBase64), "deviceName": "lap\u{0000}top"])
        #expect(claim.status == 422 && claim.errorCode == "validation_failed")
    }

    // MARK: Item 9: write-only scopes do not read

    @Test func writeOnlyScopesDoNotRead() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        // Something to leak: a description, a block, labels and an assignee on WEB-1.
        let (_, adminCode) = try await gateway.newAgent(scopes: Scope.all)
        let writer = try await AgentClient.pair(baseURL: gateway.url, code: adminCode)
        let secretDescription = "secret description 41c7"
        let secretBlock = "secret plan 9e02"
        #expect(try await writer.call("update_issue", ["issue": "WEB-1", "description": .string(secretDescription)]).1.isToolSuccess)
        #expect(
            try await writer.call("update_issue_blocks", ["issue": "WEB-1", "blocks": [["name": "Plan", "text": .string(secretBlock)]]]).1
                .isToolSuccess)
        #expect(try await writer.call("assign_issue", ["issue": "WEB-1", "assignees": ["carol"]]).1.isToolSuccess)
        #expect(try await writer.call("set_issue_labels", ["issue": "WEB-1", "labels": ["docs"]]).1.isToolSuccess)
        let title = try #require(try await writer.call("get_issue", ["issue": "WEB-1"]).1["structuredContent"]?["issue"]?["title"]?.stringValue)

        func leaks(_ result: JSONValue) -> [String] {
            let text = result.jsonText
            return [secretDescription, secretBlock, title, "carol", "Carol", "docs"].filter { text.contains($0) }
        }

        // issue:update, update_issue_blocks {"blocks": []}: the issue's identity and the (no) blocks it set.
        let (_, updateCode) = try await gateway.newAgent(scopes: [Scope.issueUpdate])
        let updater = try await AgentClient.pair(baseURL: gateway.url, code: updateCode)
        let blocks = try await updater.call("update_issue_blocks", ["issue": "WEB-1", "blocks": []]).1
        #expect(blocks.isToolSuccess)
        let changed = try #require(blocks["structuredContent"]?["issue"]?.objectValue)
        #expect(Set(changed.keys) == ["id", "key", "project", "blocks", "updatedAt"])
        #expect(changed["blocks"] == [])
        #expect(leaks(blocks).isEmpty, "update_issue_blocks leaked \(leaks(blocks))")
        let context = try await updater.call("update_issue_blocks", ["issue": "WEB-1", "blocks": [["name": "Context", "text": "new context"]]]).1
        #expect(context["structuredContent"]?["issue"]?["blocks"] == [["name": "Context", "text": .string(marked("new context"))]])
        #expect(leaks(context).isEmpty)
        let priority = try await updater.call("update_issue", ["issue": "WEB-1", "priority": "high"]).1
        #expect(Set(priority["structuredContent"]?["issue"]?.objectValue?.keys ?? []) == ["id", "key", "project", "priority", "updatedAt"])
        #expect(leaks(priority).isEmpty)

        // issue:move: the new state only; an unknown state does not list the project's states.
        let (_, moveCode) = try await gateway.newAgent(scopes: [Scope.issueMove])
        let mover = try await AgentClient.pair(baseURL: gateway.url, code: moveCode)
        let moved = try await mover.call("move_issue", ["issue": "WEB-1", "state": "Done"]).1
        #expect(Set(moved["structuredContent"]?["issue"]?.objectValue?.keys ?? []) == ["id", "key", "project", "state", "updatedAt"])
        #expect(moved["structuredContent"]?["issue"]?["state"]?["name"]?.stringValue == marked("Done"))
        #expect(leaks(moved).isEmpty, "move_issue leaked \(leaks(moved))")
        let badState = try await mover.call("move_issue", ["issue": "WEB-1", "state": "Shipped"]).1
        #expect(badState.toolErrorCode == "validation_failed")
        #expect(badState.jsonText.contains("Backlog") == false)

        // issue:assign: the new assignees only (named in the call), and no member list on a typo.
        let (_, assignCode) = try await gateway.newAgent(scopes: [Scope.issueAssign])
        let assigner = try await AgentClient.pair(baseURL: gateway.url, code: assignCode)
        let assigned = try await assigner.call("assign_issue", ["issue": "WEB-1", "assignees": ["bob"]]).1
        #expect(Set(assigned["structuredContent"]?["issue"]?.objectValue?.keys ?? []) == ["id", "key", "project", "assignees", "updatedAt"])
        #expect(leaks(assigned).isEmpty, "assign_issue leaked \(leaks(assigned))")
        let typo = try await assigner.call("assign_issue", ["issue": "WEB-1", "assignees": ["mallory"]]).1
        #expect(typo.toolErrorCode == "validation_failed" && !typo.jsonText.contains("carol"))

        // issue:label, issue:comment, report:write: the same rule.
        let (_, labelCode) = try await gateway.newAgent(scopes: [Scope.issueLabel])
        let labeler = try await AgentClient.pair(baseURL: gateway.url, code: labelCode)
        let labelled = try await labeler.call("set_issue_labels", ["issue": "WEB-1", "labels": ["bug"]]).1
        #expect(Set(labelled["structuredContent"]?["issue"]?.objectValue?.keys ?? []) == ["id", "key", "project", "labels", "updatedAt"])
        #expect(leaks(labelled).isEmpty)
        let (_, commentCode) = try await gateway.newAgent(scopes: [Scope.issueComment])
        let commenter = try await AgentClient.pair(baseURL: gateway.url, code: commentCode)
        let commented = try await commenter.call("comment_issue", ["issue": "WEB-1", "body": "hello"]).1
        #expect(commented.isToolSuccess && leaks(commented).isEmpty)
        let (_, reportCode) = try await gateway.newAgent(scopes: [Scope.reportWrite])
        let reporter = try await AgentClient.pair(baseURL: gateway.url, code: reportCode)
        let started = try await reporter.call("start_work_session", ["project": "WEB", "issue": "WEB-1", "summary": "s"]).1
        #expect(started.isToolSuccess && leaks(started).isEmpty)
    }

    // MARK: Item 4: bounded notes, paged comments, a fair share of the writer

    @Test func getIssuePagesItsComments() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: Scope.all)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let issue = try await gateway.store.read { try issueID($0, "WEB-2") }
        try await gateway.store.write { store in
            for index in 0..<45 {
                try store.insertComment(
                    CommentRecord(
                        id: "cmt_\(ULID())", issueID: issue, authorUserID: "alice", authorAgentID: nil, body: "comment \(index)",
                        createdAt: 1_000 + Int64(index / 2)))
            }
        }
        var bodies: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            var arguments: JSONObject = ["issue": "WEB-2"]
            if let cursor { arguments["cursor"] = .string(cursor) }
            let page = try await client.call("get_issue", .object(arguments)).1
            #expect(page.isToolSuccess)
            let comments = page["structuredContent"]?["comments"]?.arrayValue ?? []
            #expect(comments.count <= 20)
            #expect(page["structuredContent"]?["commentCount"]?.intValue == 45)
            bodies += comments.compactMap { $0["body"]?.stringValue }
            cursor = page["structuredContent"]?["nextCursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 3)
        // Pairs of comments share a time; the id orders them, and no page repeats or skips one.
        #expect(bodies.count == 45 && Set(bodies) == Set((0..<45).map { marked("comment \($0)") }))
        let small = try await client.call("get_issue", ["issue": "WEB-2", "limit": 5]).1
        #expect(small["structuredContent"]?["comments"]?.arrayValue?.count == 5)
        #expect(try await client.call("get_issue", ["issue": "WEB-2", "cursor": "bm90IGEgY3Vyc29y"]).1.toolErrorCode == "validation_failed")

        // Big comments: a page stops at 256 KiB of comment text.
        let big = String(repeating: "b", count: 20_000)
        let bigIssue = try await gateway.store.read { try issueID($0, "WEB-3") }
        try await gateway.store.write { store in
            for index in 0..<30 {
                try store.insertComment(
                    CommentRecord(
                        id: "cmt_\(ULID())", issueID: bigIssue, authorUserID: "alice", authorAgentID: nil, body: big, createdAt: 2_000 + Int64(index))
                )
            }
        }
        let bigPage = try await client.call("get_issue", ["issue": "WEB-3", "limit": 100]).1
        let returned = bigPage["structuredContent"]?["comments"]?.arrayValue?.count ?? 0
        #expect(returned == 13, "\(returned) comments of 20,000 bytes in a page")
        #expect(bigPage["structuredContent"]?["nextCursor"]?.stringValue != nil)
    }

    @Test func workSessionNotesAreBoundedAndNotReturnedInBulk() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        let (_, code) = try await gateway.newAgent(scopes: [Scope.reportWrite])
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        let started = try await client.call("start_work_session", ["project": "WEB", "summary": "notes"]).1
        let id = try #require(started["structuredContent"]?["workSession"]?["id"]?.stringValue)
        let note = String(repeating: "n", count: 5000)
        let first = try await client.call("update_work_session", ["workSession": .string(id), "note": .string(note)])
        #expect(first.1["structuredContent"]?["workSession"]?["noteCount"]?.intValue == 1)
        #expect(first.1["structuredContent"]?["workSession"]?["note"]?["text"]?.stringValue == marked(note))
        // Each answer holds the note it added, not all of them: the 30th is as small as the first.
        var answer = first
        for _ in 1..<30 { answer = try await client.call("update_work_session", ["workSession": .string(id), "note": .string(note)]) }
        #expect(answer.1.isToolSuccess)
        #expect(answer.0.body.count < first.0.body.count + 200, "the 30th answer has \(answer.0.body.count) bytes")
        // 469 more notes straight into the store, then the answer to the 500th is still as small.
        try await gateway.store.write { store in
            for position in 30..<499 {
                try store.insertWorkSessionNote(WorkSessionNote(workSessionID: id, position: position, at: 1, text: note, issueID: nil))
            }
        }
        let fiveHundredth = try await client.call("update_work_session", ["workSession": .string(id), "note": .string(note)])
        #expect(fiveHundredth.1["structuredContent"]?["workSession"]?["noteCount"]?.intValue == 500)
        #expect(fiveHundredth.0.body.count < first.0.body.count + 200, "\(fiveHundredth.0.body.count) bytes")
        let refused = try await client.call("update_work_session", ["workSession": .string(id), "note": "one more"]).1
        #expect(refused.toolErrorCode == "validation_failed")
        #expect(refused["structuredContent"]?["error"]?["message"]?.stringValue?.contains("500 notes") == true)
        #expect(try await client.call("finish_work_session", ["workSession": .string(id), "result": "done"]).1.isToolSuccess)
    }

    /// The writer's order, without clocks: with one agent's transactions queued, another agent's
    /// transaction runs after the running one and one more, not after all of them.
    @Test func theWriterTakesAgentsInTurn() async throws {
        let scheduler = FairWriteScheduler(maximumWaitingPerAgent: 8)
        let order = OrderLog()
        let blocker = DispatchSemaphore(value: 0)
        // A's first transaction holds the writer until released.
        #expect(
            scheduler.submit(agentID: "A") {
                blocker.wait(); order.append("A-first")
            })
        await waitUntil { scheduler.waitingCount(agentID: "A") == 0 }
        for index in 0..<6 { #expect(scheduler.submit(agentID: "A") { order.append("A\(index)") }) }
        #expect(scheduler.submit(agentID: "B") { order.append("B") })
        for index in 6..<8 { #expect(scheduler.submit(agentID: "A") { order.append("A\(index)") }) }
        // Eight of A's are waiting: the ninth is refused at once.
        #expect(scheduler.waitingCount(agentID: "A") == 8)
        #expect(!scheduler.submit(agentID: "A") { order.append("refused") })
        blocker.signal()
        await waitUntil { order.entries.count == 10 }
        #expect(order.entries == ["A-first", "A0", "B", "A1", "A2", "A3", "A4", "A5", "A6", "A7"])
    }

    /// One agent has 32 comment_issue calls queued at the writer; another agent's write must not
    /// queue behind them. Counted, not timed: the writer is held by a transaction of a third party
    /// until the flood's 32 transactions and the victim's one are all waiting, then released; the
    /// victim's audit row must follow at most one of the flood's (first come, first served puts all
    /// 32 ahead). The calls go through the gateway's `callTool`, so this checks that tool calls
    /// reach the writer through the fair scheduler, which `theWriterTakesAgentsInTurn` checks alone.
    @Test func oneAgentsFloodDoesNotQueueAheadOfAnother() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock()) {
            $0.readsPerMinute = 1_000_000
            $0.writesPerMinute = 1_000_000
        }
        let (floodID, floodCode) = try await gateway.newAgent(scopes: [Scope.issueComment])
        let (victimID, victimCode) = try await gateway.newAgent(scopes: [Scope.issueComment])
        let flooder = try await AgentClient.pair(baseURL: gateway.url, code: floodCode)
        let victim = try await AgentClient.pair(baseURL: gateway.url, code: victimCode)
        let core = gateway.gateway
        let floodPrincipal = try await core.authenticate(authorization: "Bearer \(flooder.token)")
        let victimPrincipal = try await core.authenticate(authorization: "Bearer \(victim.token)")
        let before = try await gateway.store.read { try maxAuditRowID($0) }

        let release = DispatchSemaphore(value: 0)
        #expect(core.fairWriter.submit(agentID: "writer-holder") { release.wait() })
        await waitUntil { core.fairWriter.waitingCount(agentID: "writer-holder") == 0 }
        let flood = Task {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for worker in 0..<32 {
                    group.addTask {
                        let arguments: JSONValue = ["issue": "WEB-1", "body": .string("flood \(worker)")]
                        return try await core.callTool(
                            name: "comment_issue", arguments: arguments, headerIdempotencyKey: nil, principal: floodPrincipal
                        ).isToolSuccess
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        await waitUntil(seconds: 60) { core.fairWriter.waitingCount(agentID: floodID) == 32 }
        let victimCall = Task {
            try await core.callTool(
                name: "comment_issue", arguments: ["issue": "WEB-2", "body": "victim"], headerIdempotencyKey: nil,
                principal: victimPrincipal)
        }
        await waitUntil(seconds: 60) { core.fairWriter.waitingCount(agentID: victimID) == 1 }
        #expect(core.fairWriter.waitingCount(agentID: floodID) == 32)
        release.signal()

        #expect(try await victimCall.value.isToolSuccess)
        #expect(try await flood.value == 32)
        let ahead = try await gateway.store.read { store in
            let db = (store as! SQLiteTransaction).db
            let victimRow = try Int64.fetchOne(db, sql: "SELECT MAX(rowid) FROM auditEvent WHERE agentID = ?", arguments: [victimID]) ?? 0
            return try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM auditEvent WHERE agentID = ? AND rowid > ? AND rowid < ?",
                arguments: [floodID, before, victimRow]) ?? 0
        }
        #expect(ahead <= 1, "flood commits ahead of the victim's write: \(ahead) of 32")
    }
}

// MARK: Helpers

func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
}

func issueID(_ store: any StoreReader, _ key: String) throws -> String {
    let parts = key.split(separator: "-")
    let project = try store.project(key: String(parts[0]))!
    return try store.issue(projectID: project.id, number: Int(parts[1])!)!.id
}

func auditRows(_ store: any StoreReader, agentID: String) throws -> Int {
    try Int.fetchOne((store as! SQLiteTransaction).db, sql: "SELECT COUNT(*) FROM auditEvent WHERE agentID = ?", arguments: [agentID]) ?? 0
}

func maxAuditRowID(_ store: any StoreReader) throws -> Int64 {
    try Int64.fetchOne((store as! SQLiteTransaction).db, sql: "SELECT COALESCE(MAX(rowid), 0) FROM auditEvent") ?? 0
}

/// Polls `condition` every 10 ms, for at most `seconds`.
func waitUntil(seconds: Double = 10, _ condition: () async -> Bool) async {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if await condition() { return }
        try? await Task.sleep(nanoseconds: 10_000_000)
    }
}

final class OrderLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ item: String) { lock.withLock { items.append(item) } }
    var entries: [String] { lock.withLock { items } }
}

/// One HTTP/1.1 exchange over a plain socket, for what URLSession will not send (a chunked body).
enum RawHTTP {
    static func exchange(port: Int, head: String, body: [UInt8]) throws -> String {
        #if os(Linux)
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let sendFlags = Int32(MSG_NOSIGNAL)
        #else
        let descriptor = socket(AF_INET, SOCK_STREAM, 0)
        let sendFlags: Int32 = 0
        #endif
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect() failed") }
        var request = Array(head.utf8)
        request += Array(String(body.count, radix: 16).utf8) + Array("\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let written = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, sendFlags) }
            if written <= 0 { break }  // the server may answer and stop reading early
            sent += written
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while answer.count < 1 << 20 {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            answer += buffer[0..<count]
            let text = String(decoding: answer, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n"), let length = contentLength(text[..<end.lowerBound]),
                answer.count >= text.utf8.distance(from: text.startIndex, to: end.upperBound) + length
            {
                break
            }
        }
        return String(decoding: answer, as: UTF8.self)
    }

    static func contentLength(_ head: Substring) -> Int? {
        for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            return Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
