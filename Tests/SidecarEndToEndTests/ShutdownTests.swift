import AgentWire
import Foundation
import Testing

@Suite("Exit on end of input and on signals: finish what is in flight, flush, exit 0", .secretScan)
struct ShutdownTests {
    @Test("stdin EOF with nothing in flight exits 0 promptly and ends the upstream session")
    func endOfInputIdle() async throws {
        let fixture = try await FixtureServer.start(["--era", "legacy"])
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        _ = try await sidecar.callTool(1, "echo", ["text": "x"])
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(3)) == 0)
        let deleted = try await fixture.log()["deletedSessions"]?.arrayValue ?? []
        #expect(deleted.count == 1)
    }

    @Test("stdin EOF with a call in flight lets it finish, then exits 0")
    func endOfInputFinishesCall() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        sidecar.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["name": "slow", "arguments": ["ms": 500]]])
        try await Task.sleep(for: .milliseconds(100))
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(5)) == 0)
        #expect(sidecar.child.allStdoutLines.contains { (try? JSONValue(parsing: $0))?["id"] == 1 })
    }

    @Test("SIGTERM with a long call in flight cancels it after the grace period and exits 0", arguments: [SIGTERM, SIGINT])
    func signalDuringLongCall(signal: Int32) async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        sidecar.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["name": "slow", "arguments": ["ms": 30_000]]])
        try await Task.sleep(for: .milliseconds(200))
        kill(sidecar.child.pid, signal)
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(6)) == 0)
        try await sidecar.validateAgainstSchema()
    }

    @Test("SIGTERM and SIGINT to an idle sidecar exit 0, every time", arguments: [SIGTERM, SIGINT])
    func signalWhenIdle(signal: Int32) async throws {
        // Repeated: delivery used to depend on which thread the kernel picked.
        let fixture = try await FixtureServer.start()
        for _ in 0..<8 {
            let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
            _ = try await sidecar.callTool(1, "add", ["a": 1, "b": 2])
            kill(sidecar.child.pid, signal)
            #expect(try await sidecar.child.waitForExit(timeout: .seconds(5)) == 0)
        }
    }

    @Test("the sidecar never puts its stdin or stdout into non-blocking mode (they are shared with the parent)")
    func stdioStaysBlocking() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url)
        _ = try await sidecar.callTool(1, "echo", ["text": "x"])
        let pid = sidecar.child.pid
        for descriptor in [0, 1] {
            let info = try String(contentsOfFile: "/proc/\(pid)/fdinfo/\(descriptor)", encoding: .utf8)
            let flagsLine = try #require(info.split(separator: "\n").first { $0.hasPrefix("flags:") })
            let flags = try #require(Int(flagsLine.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8))
            #expect(flags & Int(O_NONBLOCK) == 0, "fd \(descriptor) is non-blocking")
        }
    }
}
