import AgentWire
import Foundation
import TestSupport
import Testing

/// A user's clone has nothing beside it: the message checks must run from the clone alone.
@Suite("A fresh clone with nothing beside it runs the message checks", .serialized)
struct CleanCloneTests {
    @Test("clone into an empty folder, install the checker there, and validate real sidecar output for three revisions")
    func cloneRunsTheChecksAlone() async throws {
        let root = BuiltProducts.repositoryRoot
        let lonely = FileManager.default.temporaryDirectory.appendingPathComponent("sidecar-clone-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: lonely, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: lonely) }
        let clone = lonely.appendingPathComponent("agent-sidecar")

        let cloned = try await Command.run(
            "/usr/bin/git", ["clone", "--quiet", "--depth", "1", "file://\(root.path)", clone.path], environment: ["HOME": lonely.path],
            timeout: .seconds(120))
        try #require(cloned.status == 0, "git clone failed: \(cloned)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: lonely.path) == ["agent-sidecar"])

        // Nothing the build or the tests run may look beside the clone for the specification.
        let besideMarker = "shared" + "/reference"
        let scanned = try await Command.run(
            "/usr/bin/git",
            [
                "-C", clone.path, "grep", "-l", "-e", besideMarker, "-e", "../" + "shared", "--", "Tests", "scripts", "Sources", ".ci",
                "Package.swift",
            ],
            environment: ["HOME": lonely.path])
        #expect(scanned.stdout.isEmpty, "files that reach beside the clone:\n\(scanned.stdout)")

        // The clone's own install step makes its own checker (PyPI's mcp-types), nothing else.
        let installed = try await Command.run(
            clone.appendingPathComponent("scripts/install-deps").path, ["--python"],
            environment: ["HOME": ProcessInfo.processInfo.environment["HOME"] ?? lonely.path], timeout: .seconds(600))
        try #require(installed.status == 0, "install-deps --python in the clone failed: \(installed)")
        let python = clone.appendingPathComponent(".venv/mcp2/bin/python").path
        let validator = clone.appendingPathComponent("Tests/Tooling/validate-mcp-messages.py").path

        let fixture = try await FixtureServer.start()
        for revision in ["2025-03-26", "2025-11-25", "2026-07-28"] {
            let sidecar = try SidecarUnderTest(arguments: ["--upstream", fixture.url], revision: revision)
            if revision == "2026-07-28" {
                _ = try await sidecar.call(1, "server/discover", ["_meta": SidecarUnderTest.modernMeta])
                _ = try await sidecar.call(2, "tools/list", ["_meta": SidecarUnderTest.modernMeta])
                _ = try await sidecar.callTool(3, "echo", ["text": "hi"], meta: SidecarUnderTest.modernMeta)
            } else {
                _ = try await sidecar.call(
                    1, "initialize", ["protocolVersion": .string(revision), "capabilities": [:], "clientInfo": ["name": "t", "version": "1"]])
                sidecar.send(["jsonrpc": "2.0", "method": "notifications/initialized"])
                _ = try await sidecar.call(2, "tools/list")
                _ = try await sidecar.callTool(3, "echo", ["text": "hi"])
            }
            sidecar.write(raw: "{not json")
            _ = try await sidecar.child.nextMessage(timeout: .seconds(15))

            let transcript = try Transcript(in: lonely, sent: sidecar.sent, received: sidecar.child.allStdoutLines)
            let checked = try await Command.run(
                python, [validator, "--revision", revision, "--sent", transcript.sent, "--received", transcript.received],
                environment: ["HOME": lonely.path])
            #expect(checked.status == 0, "the clone's check of \(revision) failed: \(checked)")
        }

        // The check has teeth: a tools/list result without tool names fails it.
        let broken = try Transcript(
            in: lonely, sent: [#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#],
            received: [#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"inputSchema":{"type":"object"}}]}}"#])
        let refused = try await Command.run(
            python, [validator, "--revision", "2025-11-25", "--sent", broken.sent, "--received", broken.received],
            environment: ["HOME": lonely.path])
        #expect(refused.status == 1 && refused.stdout.contains("tools.0.name"), "\(refused)")
    }

    /// The two JSON-lines files the checker reads.
    struct Transcript {
        let sent: String
        let received: String

        init(in directory: URL, sent: [String], received: [String]) throws {
            let name = UUID().uuidString
            self.sent = directory.appendingPathComponent("\(name).sent.jsonl").path
            self.received = directory.appendingPathComponent("\(name).received.jsonl").path
            try (sent.joined(separator: "\n") + "\n").write(toFile: self.sent, atomically: true, encoding: .utf8)
            try (received.joined(separator: "\n") + "\n").write(toFile: self.received, atomically: true, encoding: .utf8)
        }
    }
}
