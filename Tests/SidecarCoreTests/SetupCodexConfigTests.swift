import Foundation
import SystemSupport
import Testing

@testable import SidecarCore

@Suite struct SetupCodexConfigTests {
    static let busyConfig = #"""
        # My Codex settings
        model = "gpt-5-codex"   # trailing comment
        approval_policy = "on-request"
        notify = ["bash", "-lc", "[not a header]"]
        banner = """
        [mcp_servers.agent-sidecar]
        this is a multi-line string, not a table
        """
        literal = '''
        [also = not a header]
        '''
        matrix = [
          ["a", "b"],
          [1, 2],
        ]

        [profiles.fast]
        model = "o4-mini"
        inline = { a = 1, "b.c" = "d" }

        # the docs server
        [mcp_servers.docs]
        command = "npx"
        args = ["-y", "mcp-remote", "https://docs.example.com/mcp"]

        [mcp_servers.docs.env]
        API_BASE = "https://docs.example.com"

        [[hooks]]
        name = "one"

        [[hooks]]
        name = "two"

        """#

    static func table(
        env: [(String, String)] = [], command: String = "/usr/local/bin/agent-sidecar", forwarded: [String] = [],
        approval: ToolApproval = .writes, tools: [AgentsMarkdown.Tool] = []
    ) throws -> String {
        try CodexConfig.renderTable(
            serverName: "agent-sidecar", profile: "default", command: command, arguments: ["serve", "--profile", "default"],
            environment: env, forwardedVariables: forwarded, approval: approval, tools: tools)
    }

    func checkParses(_ bytes: [UInt8]) throws -> String {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try AtomicFile.write(bytes, to: directory.file("config.toml"), permissions: .ownerOnly)
        let result = try pythonTOMLParses(directory.file("config.toml"))
        #expect(result.ok, "tomllib rejected:\n\(String(decoding: bytes, as: UTF8.self))\n\(result.output)")
        return result.output
    }

    @Test func rendersOnlyKeysCodexKnows() throws {
        let table = try Self.table(
            env: [("AGENT_SIDECAR_HOME", "/srv/a \"b\"")], forwarded: ["HTTPS_PROXY", "SSL_CERT_FILE"], tools: SetupAgentsMarkdownTests.tools)
        #expect(
            table == """
                [mcp_servers.agent-sidecar]
                # Written by `agent-sidecar setup` (profile default); `agent-sidecar logout --purge-config` removes it.
                # No secret here: the sidecar signs in to the gateway with its own encrypted device key.
                command = "/usr/local/bin/agent-sidecar"
                args = ["serve", "--profile", "default"]
                # Passed on by name from Codex's own environment (proxy, CA bundle); their values are not written here.
                env_vars = ["HTTPS_PROXY", "SSL_CERT_FILE"]
                startup_timeout_sec = 20
                tool_timeout_sec = 360
                # `agent-sidecar setup --approve writes`: reads run without asking, each write asks first.
                default_tools_approval_mode = "prompt"

                [mcp_servers.agent-sidecar.env]
                AGENT_SIDECAR_HOME = "/srv/a \\"b\\""

                [mcp_servers.agent-sidecar.tools.search_issues]
                approval_mode = "approve"

                """)
        #expect(!(try Self.table()).contains(".env]"))
        let parsed = try checkParses(Array(table.utf8))
        let json = try JSONSerialization.jsonObject(with: Data(parsed.utf8)) as! [String: Any]
        let server = (json["mcp_servers"] as! [String: Any])["agent-sidecar"] as! [String: Any]
        #expect(
            Set(server.keys) == [
                "command", "args", "env_vars", "startup_timeout_sec", "tool_timeout_sec", "default_tools_approval_mode", "env", "tools",
            ])
        #expect((server["env"] as! [String: String])["AGENT_SIDECAR_HOME"] == "/srv/a \"b\"")
        #expect(server["env_vars"] as? [String] == ["HTTPS_PROXY", "SSL_CERT_FILE"])
        #expect((server["tools"] as? [String: [String: String]]) == ["search_issues": ["approval_mode": "approve"]])
    }

    @Test(arguments: ToolApproval.allCases)
    func eachApprovalChoiceBecomesCodexKeys(approval: ToolApproval) throws {
        let table = try Self.table(approval: approval, tools: SetupAgentsMarkdownTests.tools)
        let parsed = try checkParses(Array(table.utf8))
        let json = try JSONSerialization.jsonObject(with: Data(parsed.utf8)) as! [String: Any]
        let server = (json["mcp_servers"] as! [String: Any])["agent-sidecar"] as! [String: Any]
        let tools = server["tools"] as? [String: [String: String]]
        switch approval {
        case .writes:
            #expect(server["default_tools_approval_mode"] as? String == "prompt")
            #expect(tools == ["search_issues": ["approval_mode": "approve"]], "the read tool runs without asking, the write asks")
        case .all:
            #expect(server["default_tools_approval_mode"] as? String == "prompt")
            #expect(tools == nil)
        case .none:
            #expect(server["default_tools_approval_mode"] as? String == "approve")
            #expect(tools == nil)
        }
        #expect(table.contains("--approve \(approval.rawValue)`: \(approval.summary)."))
        #expect(server["env_vars"] as? [String] == [])
    }

    @Test func forwardsOnlyTheProxyAndCAVariablesPresent() {
        let environment = [
            "HTTPS_PROXY": "http://user:hunter2@proxy:3128", "no_proxy": "localhost", "SSL_CERT_FILE": "/etc/ca.pem", "HTTP_PROXY": "",
            "AGENT_SIDECAR_PAIRING_CODE": "ABCD-EFGH", "AWS_SECRET_ACCESS_KEY": "x", "AGENT_SIDECAR_LOG_LEVEL": "debug",
        ]
        #expect(ForwardedEnvironment.present(in: environment) == ["HTTPS_PROXY", "no_proxy", "SSL_CERT_FILE", "AGENT_SIDECAR_LOG_LEVEL"])
        let table = (try? Self.table(forwarded: ForwardedEnvironment.present(in: environment))) ?? ""
        #expect(!table.contains("hunter2") && !table.contains("ABCD") && !table.contains("/etc/ca.pem"), "names only, never values")
    }

    /// The real Codex CLI, when the machine has one: `AGENT_SIDECAR_TEST_CODEX`, else the pinned one
    /// `scripts/install-deps --codex` puts in `.venv/codex`, else `codex` on PATH.
    static let codex: String? = {
        if let path = ProcessInfo.processInfo.environment["AGENT_SIDECAR_TEST_CODEX"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        let pinned = FileSystem.join(SetupTemplateTests.repositoryRoot, ".venv/codex/bin/codex")
        if FileManager.default.isExecutableFile(atPath: pinned) { return pinned }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/codex"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    @Test(
        "the real Codex CLI loads the entry with --strict-config and reads back env_vars and approvals",
        .enabled(if: codex != nil, "needs the Codex CLI (scripts/install-deps --codex, or AGENT_SIDECAR_TEST_CODEX=PATH)"),
        arguments: ToolApproval.allCases)
    func realCodexAcceptsTheEntry(approval: ToolApproval) throws {
        let codex = try #require(Self.codex)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let table = try Self.table(
            env: [("AGENT_SIDECAR_HOME", directory.file("sidecar"))], command: "/bin/true", forwarded: ["HTTPS_PROXY", "SSL_CERT_FILE"],
            approval: approval, tools: SetupAgentsMarkdownTests.tools)
        let config = try CodexConfig.merge(
            existing: Array("# mine\nmodel = \"gpt-5\"\n\n[mcp_servers.docs]\ncommand = \"/bin/true\"\n".utf8), serverName: "agent-sidecar",
            table: table)
        try AtomicFile.write(config, to: directory.file("config.toml"), permissions: .ownerOnly)
        let home = "CODEX_HOME=\(directory.path)"
        // --strict-config refuses any key this Codex does not know; the fake provider fails fast
        // afterwards (no model is needed to check the configuration).
        let exec = try run(
            "/usr/bin/env",
            [
                home, codex, "exec", "--strict-config", "--skip-git-repo-check", "-c", "model_provider=fake", "-c",
                #"model_providers.fake={name="fake",base_url="http://127.0.0.1:9/v1",wire_api="responses",request_max_retries=0,stream_max_retries=0}"#,
                "hi",
            ])
        #expect(!exec.output.contains("unknown configuration field") && !exec.output.contains("Error loading config"), "\(exec.output)")
        #expect(exec.output.contains("127.0.0.1:9"), "codex exec did not get as far as the model: \(exec.output)")

        let get = try run("/usr/bin/env", [home, codex, "mcp", "get", "agent-sidecar", "--json"])
        #expect(get.status == 0, "\(get.output)")
        // Codex may print warnings around the JSON (on stderr, which run() merges in).
        let open = try #require(get.output.firstIndex(of: "{"), "\(get.output)")
        let close = try #require(get.output.lastIndex(of: "}"), "\(get.output)")
        let jsonText = String(get.output[open...close])
        let entry = try #require(try JSONSerialization.jsonObject(with: Data(jsonText.utf8)) as? [String: Any])
        let transport = try #require(entry["transport"] as? [String: Any])
        #expect(transport["env_vars"] as? [String] == ["HTTPS_PROXY", "SSL_CERT_FILE"])
        #expect((transport["env"] as? [String: String])?["AGENT_SIDECAR_HOME"] == directory.file("sidecar"))
        let shown = try run("/usr/bin/env", [home, codex, "mcp", "get", "agent-sidecar"])
        #expect(shown.output.contains("default_tools_approval_mode: \(approval.codexDefaultMode)"), "\(shown.output)")
    }

    @Test(
        "a config.toml that is not TOML is refused by line number, never merged into",
        arguments: [
            "model = \"o3\"\nthis line is not toml\n", "[mcp_servers.docs\ncommand = \"x\"\n", "= \"no key\"\n",
        ])
    func refusesInvalidTOML(text: String) throws {
        #expect(throws: SetupError(.unparseableConfig, "")) {
            _ = try CodexConfig.merge(existing: Array(text.utf8), serverName: "agent-sidecar", table: try Self.table())
        }
        let table = try Self.table()
        do {
            _ = try CodexConfig.merge(existing: Array(text.utf8), serverName: "agent-sidecar", table: table)
        } catch {
            #expect(error.message.contains("is not valid TOML"))
            #expect(!error.message.contains("not toml") && !error.message.contains("no key"), "the line's text is not echoed")
        }
    }

    @Test func appendsToABusyFileAndKeepsEveryByte() throws {
        let existing = Array(Self.busyConfig.utf8)
        let merged = try CodexConfig.merge(existing: existing, serverName: "agent-sidecar", table: try Self.table())
        #expect(Array(merged.prefix(existing.count)) == existing)
        #expect(String(decoding: merged, as: UTF8.self).hasSuffix("\n\n" + (try Self.table())))
        let parsed = try checkParses(merged)
        #expect(parsed.contains("\"agent-sidecar\": {\"command\": \"/usr/local/bin/agent-sidecar\""))
        #expect(parsed.contains("this is a multi-line string, not a table"))

        // Idempotent: merging again gives the same bytes.
        #expect(try CodexConfig.merge(existing: merged, serverName: "agent-sidecar", table: try Self.table()) == merged)
        // Removal restores the original exactly.
        #expect(CodexConfig.remove(existing: merged, serverName: "agent-sidecar") == existing)
    }

    @Test func replacesOurTablesInPlace() throws {
        let before = """
            model = "x"

            [mcp_servers.before]
            command = "a"

            [mcp_servers."agent-sidecar"]   # quoted, as a user might write it
            command = "/old/path"
            args = ["serve"]
            # a comment inside our table

            [mcp_servers.agent-sidecar.env]
            OLD = "1"

            # comment introducing the next table
            [mcp_servers.after]
            command = "b"

            """
        let table = try Self.table(env: [("AGENT_SIDECAR_HOME", "/h")])
        let merged = String(decoding: try CodexConfig.merge(existing: Array(before.utf8), serverName: "agent-sidecar", table: table), as: UTF8.self)
        #expect(
            merged == """
                model = "x"

                [mcp_servers.before]
                command = "a"

                \(table)
                # comment introducing the next table
                [mcp_servers.after]
                command = "b"

                """)
        _ = try checkParses(Array(merged.utf8))

        // Replacing with a table without env drops the old env subtable too.
        let withoutEnv = String(
            decoding: try CodexConfig.merge(existing: Array(merged.utf8), serverName: "agent-sidecar", table: try Self.table()), as: UTF8.self)
        #expect(!withoutEnv.contains("AGENT_SIDECAR_HOME"))
        #expect(withoutEnv.contains("[mcp_servers.after]"))
        _ = try checkParses(Array(withoutEnv.utf8))
    }

    @Test func separatedSubtablesAreGatheredIntoOne() throws {
        let before = """
            [mcp_servers.agent-sidecar]
            command = "/old"

            [mcp_servers.other]
            command = "b"

            [mcp_servers.agent-sidecar.env]
            X = "1"

            """
        let merged = try CodexConfig.merge(existing: Array(before.utf8), serverName: "agent-sidecar", table: try Self.table())
        let text = String(decoding: merged, as: UTF8.self)
        #expect(text == (try Self.table()) + "\n[mcp_servers.other]\ncommand = \"b\"\n")
        _ = try checkParses(merged)
    }

    @Test func keepsWindowsLineEndings() throws {
        let before = "a = 1\r\n\r\n[x]\r\nb = 2\r\n"
        let merged = try CodexConfig.merge(existing: Array(before.utf8), serverName: "agent-sidecar", table: try Self.table())
        let text = String(decoding: merged, as: UTF8.self)
        #expect(text.hasPrefix(before + "\r\n[mcp_servers.agent-sidecar]\r\n"))
        #expect(!text.replacing("\r\n", with: "").contains("\r"))
        _ = try checkParses(merged)
        #expect(CodexConfig.remove(existing: merged, serverName: "agent-sidecar") == Array(before.utf8))
    }

    @Test func handlesFilesWithoutTrailingNewlineAndEmptyFiles() throws {
        let merged = try CodexConfig.merge(existing: Array("a = 1".utf8), serverName: "agent-sidecar", table: try Self.table())
        #expect(String(decoding: merged, as: UTF8.self) == "a = 1\n\n" + (try Self.table()))
        #expect(try CodexConfig.merge(existing: [], serverName: "agent-sidecar", table: try Self.table()) == Array((try Self.table()).utf8))
    }

    @Test(arguments: [
        "[mcp_servers]\nagent-sidecar = { command = \"x\" }\n",
        "mcp_servers.agent-sidecar.command = \"x\"\n",
        "mcp_servers = { docs = { command = \"x\" } }\n",
    ])
    func refusesInlineDefinitions(_ text: String) {
        #expect(throws: SetupError(.conflictingDefinition, "")) {
            try CodexConfig.merge(existing: Array(text.utf8), serverName: "agent-sidecar", table: try Self.table())
        }
    }

    @Test func otherProfilesHaveTheirOwnTable() throws {
        let first = try CodexConfig.merge(existing: [], serverName: "agent-sidecar", table: try Self.table())
        let workTable = try CodexConfig.renderTable(
            serverName: "agent-sidecar-work", profile: "work", command: "/bin/agent-sidecar", arguments: ["serve", "--profile", "work"],
            environment: [])
        let both = try CodexConfig.merge(existing: first, serverName: "agent-sidecar-work", table: workTable)
        _ = try checkParses(both)
        // The prefix match is on whole key components: removing "agent-sidecar" keeps "agent-sidecar-work".
        let onlyWork = CodexConfig.remove(existing: both, serverName: "agent-sidecar")
        #expect(String(decoding: onlyWork, as: UTF8.self) == workTable)
    }

    @Test func locatorClassifiesLines() {
        let lines = TOMLTableLocator.lines(Array("a = \"\"\"\n[x]\n\"\"\"\n[ 'q r' . \"s\\u0074\" ]  # c\n[[arr]]\n  # c\n".utf8))
        #expect(
            lines.map(\.kind) == [
                .keyValue(keyPath: ["a"]), .continuation, .continuation, .header(path: ["q r", "st"], isArray: false),
                .header(path: ["arr"], isArray: true), .blankOrComment,
            ])
    }
}
