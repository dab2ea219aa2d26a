import AgentWire
import Foundation
import Testing

/// Codex's app server starts one MCP server process per thread, so one profile can have several
/// sidecars running at once, started together. They share the profile, the key and whatever state
/// the sidecar keeps on disk; each must mint its own session and none may wait on another.
@Suite("Several sidecars of one profile at once", .secretScan)
struct ConcurrentSidecarsTests {
    static let count = 8

    /// Every file under the sidecar's home with its bytes, temporary files included.
    static func snapshot(_ root: String) -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return files }
        while let relative = walker.nextObject() as? String {
            let path = "\(root)/\(relative)"
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[relative] = FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
            }
        }
        return files
    }

    @Test("eight serve --profile started together, calls in all of them: no lock-up, no damaged state, a session each")
    func eightAtOnce() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let paired = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        try #require(paired.status == 0, "\(paired)")
        try world.secretMaterial()
        // State that serve keeps (the tool catalog cache) is removed, so that all eight write it
        // again at the same moment: the race this test is for.
        let stateDirectory = world.path("sidecar-home/state")
        let keptState = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
        for name in keptState { try FileManager.default.removeItem(atPath: "\(stateDirectory)/\(name)") }
        let before = Self.snapshot(world.sidecarHome)
        let sessionsBefore = Int(try await gateway.sql("SELECT count(*) FROM session")) ?? 0
        let started = ContinuousClock.now

        // Start all eight before any of them is spoken to, as a client that opens eight threads does.
        let sidecars = try (0..<Self.count).map { _ in try world.serve() }
        let outcomes = try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
            for (index, sidecar) in sidecars.enumerated() {
                group.addTask {
                    var problems: [String] = []
                    let initialized = try await sidecar.initialize(timeout: .seconds(60))
                    if initialized["result"] == nil { problems.append("initialize: \(initialized)") }
                    let tools = try await sidecar.call(1, "tools/list", timeout: .seconds(60))
                    let names = (tools["result"]?["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                    if names.count != 6 { problems.append("tools/list gave \(names): \(tools)") }
                    let calls: [(String, JSONValue)] = [
                        ("list_projects", [:]),
                        ("create_issue", ["project": "WEB", "title": .string("From sidecar \(index)"), "idempotencyKey": .string("eight-\(index)")]),
                        ("search_issues", ["project": "WEB", "query": .string("sidecar \(index)")]),
                        ("get_issue", ["issue": "WEB-1"]),
                    ]
                    for (offset, (name, arguments)) in calls.enumerated() {
                        let answer = try await sidecar.callTool(2 + offset, name, arguments, timeout: .seconds(60))
                        if answer["result"]?["isError"] != false { problems.append("\(name): \(answer)") }
                    }
                    return (index, problems)
                }
            }
            var all: [Int: [String]] = [:]
            for try await (index, problems) in group { all[index] = problems }
            return all
        }
        let elapsed = ContinuousClock.now - started
        for index in 0..<Self.count { #expect(outcomes[index] == [], "sidecar \(index): \(outcomes[index] ?? ["no outcome"])") }
        print("eight sidecars of one profile: started, initialized, listed and made 4 calls each in \(elapsed)")

        // A session each: every sidecar's calls were audited under a session of its own.
        let callSessions = Int(try await gateway.sql("SELECT count(DISTINCT sessionID) FROM auditEvent")) ?? 0
        #expect(callSessions == Self.count, "the calls came from \(callSessions) sessions")
        let sessionsAfter = Int(try await gateway.sql("SELECT count(*) FROM session")) ?? 0
        #expect(sessionsAfter - sessionsBefore >= Self.count)
        // Each write landed once.
        for index in 0..<Self.count {
            #expect(try await gateway.sql("SELECT count(*) FROM issue WHERE title = 'From sidecar \(index)'") == "1")
        }

        for sidecar in sidecars { sidecar.child.closeStdin() }
        for (index, sidecar) in sidecars.enumerated() {
            #expect(try await sidecar.child.waitForExit(timeout: .seconds(30)) == 0, "sidecar \(index): \(sidecar.child.stderr)")
            let own = sidecar.child.stderr.split(separator: "\n").filter { $0.hasPrefix("agent-sidecar: ") }
            #expect(own.isEmpty, "sidecar \(index) reported: \(own)")
        }
        #expect(try await gateway.sql("SELECT count(*) FROM session WHERE endedAt IS NULL") == "0", "a session was left open")

        // The state on disk: the profile and key untouched, every file whole (each JSON file parses),
        // no temporary file left behind by a write that lost a race.
        let after = Self.snapshot(world.sidecarHome)
        for (path, bytes) in before { #expect(after[path] == bytes, "\(path) changed") }
        for (path, bytes) in after {
            #expect(!path.contains(".tmp-"), "a temporary file was left: \(path)")
            if path.hasSuffix(".json") || path.hasSuffix(".key") {
                #expect((try? JSONValue(parsing: bytes)) != nil, "\(path) does not parse after the run")
            }
        }
        if !keptState.isEmpty {
            let rewritten = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory)) ?? []
            #expect(Set(rewritten) == Set(keptState), "the state serve keeps was not written again: \(rewritten)")
        }
        let status = try await world.sidecar(["status"])
        #expect(status.status == 0, "\(status)")
    }
}
