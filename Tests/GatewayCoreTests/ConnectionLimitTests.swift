import AgentWire
import Foundation
import GatewayCore
import Testing

/// Connections that never finish a request must not exhaust the gateway (issue 11, item 3). Every
/// client here is on 127.0.0.1 or another 127.x.y.z source address; every wait is bounded.
@Suite("Connection limits and timeouts", .serialized)
struct ConnectionLimitTests {
    static let partialHeader = Array("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl".utf8)

    /// Milliseconds of `count` sequential `get_issue` calls; every call must succeed.
    static func latencies(_ client: AgentClient, count: Int) async throws -> [Double] {
        var result: [Double] = []
        for _ in 0..<count {
            let started = Date()
            let (answer, value) = try await client.call("get_issue", ["issue": "WEB-1"])
            guard answer.status == 200, value.isToolSuccess else { throw TestFailure("get_issue failed: \(answer.status) \(answer.errorCode ?? "")") }
            result.append(Date().timeIntervalSince(started) * 1000)
        }
        return result.sorted()
    }

    static func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
        sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
    }

    @Test("1,000 half-open connections: agents keep working, /healthz answers, the half-open ones are closed after the header timeout")
    func halfOpenFlood() async throws {
        // A descriptor limit (soft and hard, so the gateway cannot raise it) that 1,000 connections
        // exhaust: before the limits, /healthz and the agent's calls failed here.
        let server = try await GatewayProcess.start(extraArguments: ["--header-timeout", "3"], descriptorLimit: 1000)
        defer { server.stop() }
        let (_, code) = try server.newAgent(scopes: [Scope.projectRead])
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        let before = try await Self.latencies(client, count: 40)

        let opened = Date()
        // 1,000 distinct source addresses, so no per-address cap applies: only the total cap and the timeout.
        let flood = try LoopbackConnections(
            port: server.port, sources: LoopbackConnections.sources(1000, firstBlock: 10), payload: Self.partialHeader)
        let openingSeconds = Date().timeIntervalSince(opened)
        let during = try await Self.latencies(client, count: 40)
        let health = try await loopbackRequest(port: server.port, source: "127.0.0.1", path: "/healthz", seconds: 15)
        #expect(health.status == 200, "/healthz during the flood: \(health.status.map(String.init) ?? "no answer")")
        flood.poll()
        let openDuring = flood.openCount

        let allClosed = await flood.wait(seconds: 3 + 30) { $0.openCount == 0 }
        let closedAfter = Date().timeIntervalSince(opened)
        #expect(allClosed, "\(flood.openCount) of 1000 half-open connections still open \(Int(closedAfter)) s after they were opened")
        #expect(Self.percentile(during, 0.5) < 1000, "median get_issue latency during the flood: \(Self.percentile(during, 0.5)) ms")
        print(
            String(
                format:
                    "half-open flood: 1000 connections opened in %.1f s, %d still open after the agent's calls; get_issue p50/p99 %.1f/%.1f ms before, %.1f/%.1f ms during; all closed %.1f s after opening (header timeout 3 s)",
                openingSeconds, openDuring, Self.percentile(before, 0.5), Self.percentile(before, 0.99), Self.percentile(during, 0.5),
                Self.percentile(during, 0.99), closedAfter))
        #expect(try await client.call("list_projects").1.isToolSuccess)
    }

    @Test("one address holds at most its cap; a new request from it replaces its longest-idle connection")
    func perAddressCap() async throws {
        let server = try await GatewayProcess.start(extraArguments: ["--header-timeout", "60", "--max-connections-per-address", "64"])
        defer { server.stop() }
        let flood = try LoopbackConnections(port: server.port, sources: Array(repeating: "127.0.20.1", count: 200), payload: Self.partialHeader)
        let capped = await flood.wait(seconds: 20) { $0.openCount <= 64 }
        #expect(capped, "\(flood.openCount) of 200 connections from one address are open (cap 64)")
        // Connections only just accepted are not replaced (their client is likely still sending):
        // the surplus was refused with 503.
        let refused = flood.closed.filter { flood.status($0) == 503 && flood.body($0).contains("too_many_connections") }
        #expect(!refused.isEmpty)
        // Past that grace, a new connection from the address takes the place of its longest-idle one.
        try await Task.sleep(for: .milliseconds(1500))
        let openBefore = Set(flood.descriptors.indices).subtracting(flood.closed)
        let health = try await loopbackRequest(port: server.port, source: "127.0.20.1", path: "/healthz", seconds: 15)
        #expect(health.status == 200)
        flood.poll()
        #expect(flood.closed.intersection(openBefore).count == 1, "one half-open connection should have made room")
        // Other addresses are not affected.
        let other = try await loopbackRequest(port: server.port, source: "127.0.20.2", path: "/healthz", seconds: 15)
        #expect(other.status == 200)
    }

    @Test("at a cap with no idle connection to replace, a new connection gets 503 too_many_connections")
    func refusedWhenEveryConnectionIsBusy() async throws {
        let server = try await GatewayProcess.start(extraArguments: ["--max-connections-per-address", "4", "--body-timeout", "60"])
        defer { server.stop() }
        // Four connections busy sending a body.
        let busy = try LoopbackConnections(
            port: server.port, sources: Array(repeating: "127.0.21.1", count: 4),
            payload: Array(
                "POST /api/v1/pairing/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"code\":"
                    .utf8))
        try await Task.sleep(for: .milliseconds(300))
        let refused = try await loopbackRequest(port: server.port, source: "127.0.21.1", path: "/healthz", seconds: 15)
        #expect(refused.status == 503)
        #expect(refused.body.contains("too_many_connections"))
        busy.poll()
        #expect(busy.openCount == 4)
        let other = try await loopbackRequest(port: server.port, source: "127.0.21.2", path: "/healthz", seconds: 15)
        #expect(other.status == 200)
    }

    @Test("a trickled header, a stalled body and an idle keep-alive connection are each closed after their timeout")
    func headerBodyAndIdleTimeouts() async throws {
        let server = try await GatewayProcess.start(extraArguments: ["--header-timeout", "2", "--body-timeout", "2", "--idle-timeout", "2"])
        defer { server.stop() }
        let started = Date()
        // 0: a header trickled one byte every 200 ms, forever; 1: a head and 10 of 100 body bytes;
        // 2: one complete keep-alive request, then nothing.
        let connections = try LoopbackConnections(port: server.port, sources: ["127.0.22.1", "127.0.22.2", "127.0.22.3"], payload: [])
        connections.send(0, Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8))
        connections.send(1, Array("POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"deviceId".utf8))
        connections.send(2, Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        var closedAt: [Int: Double] = [:]
        let deadline = Date().addingTimeInterval(25)
        while closedAt.count < 3, Date() < deadline {
            if !connections.closed.contains(0) { connections.send(0, Array("X-Slow: 1\r\n".utf8.prefix(1))) }
            connections.poll()
            for index in connections.closed where closedAt[index] == nil { closedAt[index] = Date().timeIntervalSince(started) }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(closedAt[0] != nil, "the trickled header was not cut off")
        #expect(closedAt[1] != nil, "the stalled body was not cut off")
        #expect(closedAt[2] != nil, "the idle keep-alive connection was not closed")
        #expect(connections.status(2) == 200)
        print(
            "timeouts (2 s each): trickled header closed after \(closedAt[0].map { String(format: "%.1f s", $0) } ?? "never"), stalled body after \(closedAt[1].map { String(format: "%.1f s", $0) } ?? "never"), idle keep-alive after \(closedAt[2].map { String(format: "%.1f s", $0) } ?? "never")"
        )
    }
}
