import AgentWire
import Foundation
import SidecarCore
import TestSupport
import Testing

/// `--version` on both binaries (issue 18): the version from AgentWire's `BuildInfo` and the commit
/// baked in at build time, printed without git on PATH.
@Suite("--version on agent-sidecar and agent-gateway")
struct VersionTests {
    @Test("prints the program, the version and the build's commit, with no git to ask", arguments: ["agent-sidecar", "agent-gateway"])
    func versionLine(program: String) async throws {
        // No PATH to find git on, and a working directory outside any clone.
        let result = try await Command.run(
            "/bin/sh", ["-c", "cd / && exec \"$0\" --version", BuiltProducts.path(program)], environment: ["PATH": "/nonexistent"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == BuildInfo.versionLine(program: program) + "\n")
        #expect(result.stdout.hasPrefix("\(program) \(BuildInfo.version) (commit "))
        let commit = BuildInfo.commit
        let stamped = commit.range(of: "^[0-9a-f]{12}(-dirty)?$", options: .regularExpression) != nil
        #expect(stamped || commit == "unknown", "commit \(commit)")
        // scripts/build-release (and scripts/test) write the stamp before building: when it is
        // there, the binary carries its commit, not the fallback.
        let stamp = BuiltProducts.repositoryRoot.appendingPathComponent("Sources/AgentWire/Build/BuildCommit.generated.swift").path
        if let text = try? String(contentsOfFile: stamp, encoding: .utf8) {
            #expect(stamped && text.contains("\"\(commit)\""), "the stamp says \(text), the binary \(commit)")
        }
    }

    @Test("the sidecar names the same version on the wire (serverInfo, clientInfo)")
    func wireVersion() {
        #expect(SidecarIdentity.implementation["version"]?.stringValue == BuildInfo.version)
    }
}
