import AgentWire
import Testing

@testable import SidecarCore

/// What `doctor` reads back without other programs: our Codex table, JSON entries, `Date` headers.
@Suite struct DoctorReadingTests {
    @Test func readsTheCodexTableSetupWrites() throws {
        let table = try CodexConfig.renderTable(
            serverName: "agent-sidecar-work", profile: "work", command: "/opt/agent \"sidecar\"/bin", arguments: ["serve", "--profile", "work"],
            environment: [("AGENT_SIDECAR_HOME", "/srv/é")], forwardedVariables: ["HTTPS_PROXY"], approval: .writes,
            tools: SetupApprovalTests.tools)
        let file = try CodexConfig.merge(existing: Array(SetupCodexConfigTests.busyConfig.utf8), serverName: "agent-sidecar-work", table: table)
        let entry = try ClientEntryReader.codexTOML(file, serverName: "agent-sidecar-work")
        #expect(entry.command == "/opt/agent \"sidecar\"/bin")
        #expect(entry.arguments == ["serve", "--profile", "work"])
        #expect(entry.environment == ["AGENT_SIDECAR_HOME": "/srv/é"])
        #expect(entry.forwardedVariables == ["HTTPS_PROXY"])
        #expect(entry.enabled)
        #expect(throws: ClientEntryReader.Failure.self) { try ClientEntryReader.codexTOML(file, serverName: "agent-sidecar") }
        #expect(throws: ClientEntryReader.Failure.self) {
            try ClientEntryReader.codexTOML(file + Array("x = [\n".utf8), serverName: "agent-sidecar-work")
        }
    }

    @Test func readsTOMLStrings() {
        #expect(TOMLValue.string(#" "a\"b\\c\u00e9" # comment"#) == "a\"b\\cé")
        #expect(TOMLValue.string(" 'C:\\raw' ") == "C:\\raw")
        #expect(TOMLValue.strings(#" ["serve", '--profile' , "x"] "#) == ["serve", "--profile", "x"])
        #expect(TOMLValue.strings("[]") == [])
        #expect(TOMLValue.string("\"open") == nil)
        #expect(TOMLValue.strings("[1, 2]") == nil)
    }

    @Test func readsJSONEntriesAndCodexOutput() throws {
        let vscode = Array(#"{"servers":{"agent-sidecar":{"type":"stdio","command":"/bin/a","args":["serve","--profile","default"],"env":{}}}}"#.utf8)
        let entry = try ClientEntryReader.json(vscode, serversKey: "servers", serverName: "agent-sidecar")
        #expect(entry.command == "/bin/a" && entry.arguments == ["serve", "--profile", "default"])
        #expect(throws: ClientEntryReader.Failure.self) { try ClientEntryReader.json(vscode, serversKey: "mcpServers", serverName: "agent-sidecar") }
        let printed = """
            WARNING: something first
            {"name":"agent-sidecar","enabled":false,"transport":{"type":"stdio","command":"/bin/a","args":["serve"],"env":{"A":"1"},"env_vars":["HTTPS_PROXY"]}}
            """
        let codex = try ClientEntryReader.codexJSON(printed, serverName: "agent-sidecar")
        #expect(codex.command == "/bin/a" && codex.environment == ["A": "1"] && codex.forwardedVariables == ["HTTPS_PROXY"] && !codex.enabled)
    }

    @Test func parsesHTTPDates() {
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(HTTPDate.parse("Sat, 28 Nov 2026 23:13:27 GMT") == 1_795_907_607)
        #expect(HTTPDate.parse("yesterday") == nil)
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 CET") == nil)
    }

    @Test func reportHoldsOnlyWhenEveryCheckIsOK() {
        let good = DoctorReport(profile: "p", checks: [DoctorCheck("a", .ok, "fine")])
        #expect(good.holds && good.text.hasSuffix("All 1 checks hold.\n"))
        let bad = DoctorReport(
            profile: "p",
            checks: [DoctorCheck("a", .ok, "fine"), DoctorCheck("b", .failed, "broken\nbadly", fix: "fix it"), DoctorCheck("c", .skipped, "…")])
        #expect(!bad.holds)
        #expect(bad.text.contains("  FAIL  b  broken badly; fix it\n"))
        #expect(bad.json["ok"] == false)
        #expect(bad.json["checks"]?[1]?["fix"] == "fix it")
    }
}
