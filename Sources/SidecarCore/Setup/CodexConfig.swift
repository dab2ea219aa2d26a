/// Merges the sidecar's MCP server entry into Codex's `config.toml` and takes it out again,
/// changing only the lines of our own tables.
///
/// The entry uses only keys Codex 0.147 knows (checked with `codex exec --strict-config`):
/// `command`, `args`, `env_vars`, `startup_timeout_sec`, `tool_timeout_sec`,
/// `default_tools_approval_mode`, an `env` subtable and `tools.NAME.approval_mode` subtables.
public enum CodexConfig {
    /// The rendered `[mcp_servers.NAME]` table (with `[mcp_servers.NAME.env]` when `environment`
    /// is not empty, and `[mcp_servers.NAME.tools.TOOL]` for each tool that runs without asking),
    /// ending in a newline.
    ///
    /// - Parameters:
    ///   - serverName: The MCP server name (a bare TOML key).
    ///   - profile: The profile name.
    ///   - command: The absolute path of the sidecar binary.
    ///   - arguments: The arguments (`serve --profile NAME`).
    ///   - environment: Non-secret variables Codex must set (Codex passes only a few by default).
    ///   - forwardedVariables: Variables Codex passes on by name from its own environment (`env_vars`).
    ///   - approval: Which calls ask the user first.
    ///   - tools: The gateway's tools (their read-only flags decide the per-tool approvals).
    public static func renderTable(
        serverName: String, profile: String, command: String, arguments: [String], environment: [(String, String)],
        forwardedVariables: [String] = [], approval: ToolApproval = .writes, tools: [AgentsMarkdown.Tool] = []
    ) throws(SetupError) -> String {
        let server = TOMLString.key(serverName)
        var envTable = ""
        if !environment.isEmpty {
            envTable = "\n[mcp_servers.\(server).env]\n"
            for (name, value) in environment { envTable += "\(TOMLString.key(name)) = \(TOMLString.quote(value))\n" }
        }
        var toolTables = ""
        for tool in approval.codexPreapprovedTools(tools) {
            toolTables += "\n[mcp_servers.\(server).tools.\(TOMLString.key(tool))]\napproval_mode = \"approve\"\n"
        }
        let rendered = try TemplateRenderer.render(
            EmbeddedTemplates.codex,
            values: [
                "server_name": server,
                "profile": profile,
                "command": TOMLString.quote(command),
                "args": "[" + arguments.map(TOMLString.quote).joined(separator: ", ") + "]",
                "env_vars": "[" + forwardedVariables.map(TOMLString.quote).joined(separator: ", ") + "]",
                "approve": approval.rawValue,
                "approval_summary": approval.summary,
                "default_tools_approval_mode": TOMLString.quote(approval.codexDefaultMode),
                "env_table": envTable,
                "tool_tables": toolTables,
            ])
        return TextLines.trimmingTrailingNewlines(rendered) + "\n"
    }

    /// `existing` with our server's tables replaced by `table` (or `table` appended).
    ///
    /// Every byte outside our tables stays as it was. Our tables are `[mcp_servers.NAME]` and
    /// any `[mcp_servers.NAME.*]` below it; when there are several, the new text takes the place
    /// of the first and the others are removed.
    ///
    /// - Throws: ``SetupError/Code/conflictingDefinition`` when the file defines the server (or
    ///   `mcp_servers` itself) as an inline value, which a table cannot be merged into.
    public static func merge(existing: [UInt8], serverName: String, table: String) throws(SetupError) -> [UInt8] {
        let newline = TextLines.newline(of: existing)
        let lines = TOMLTableLocator.lines(existing)
        try checkReadable(lines)
        try checkNoInlineDefinition(lines, serverName: serverName)
        let block = Array(TextLines.withNewline(table, newline).utf8)
        let regions = TOMLTableLocator.tableRegions(lines, prefix: ["mcp_servers", serverName])
        guard let first = regions.first else {
            var output = existing
            if !output.isEmpty {
                if output.last != UInt8(ascii: "\n") { output += Array(newline.utf8) }
                if !TextLines.endsWithBlankLine(output) { output += Array(newline.utf8) }
            }
            return output + block
        }
        var output: [UInt8] = []
        var cursor = 0
        for region in regions {
            let start = lines[region.lowerBound].range.lowerBound
            output += existing[cursor..<start]
            if region == first { output += block }
            cursor = lines[region.upperBound - 1].range.upperBound
            if region != first {
                // Drop one blank line that only separated the removed table from its neighbours.
                cursor = TextLines.closeGap(&output, source: existing, at: cursor)
            }
        }
        output += existing[cursor...]
        return output
    }

    /// `existing` without our server's tables (and without the blank line that separated them).
    public static func remove(existing: [UInt8], serverName: String) -> [UInt8] {
        let lines = TOMLTableLocator.lines(existing)
        let regions = TOMLTableLocator.tableRegions(lines, prefix: ["mcp_servers", serverName])
        guard !regions.isEmpty else { return existing }
        var output: [UInt8] = []
        var cursor = 0
        for region in regions {
            output += existing[cursor..<lines[region.lowerBound].range.lowerBound]
            cursor = TextLines.closeGap(&output, source: existing, at: lines[region.upperBound - 1].range.upperBound)
        }
        output += existing[cursor...]
        return output
    }

    /// Refuses a file with a line that is neither a table header, a `key = value`, a continuation,
    /// a comment nor blank: it is not TOML, Codex would refuse it too, and merging into it would
    /// hide that. (The line is named by number only: config files can hold secrets.) Values are
    /// not checked in full; Codex does that when it starts.
    private static func checkReadable(_ lines: [TOMLTableLocator.Line]) throws(SetupError) {
        guard let bad = lines.firstIndex(where: { $0.kind == .unrecognized }) else { return }
        throw SetupError(
            .unparseableConfig,
            "config.toml line \(bad + 1) is not valid TOML, so Codex would refuse the file too; fix that line, then run setup again")
    }

    private static func checkNoInlineDefinition(_ lines: [TOMLTableLocator.Line], serverName: String) throws(SetupError) {
        for line in lines {
            guard case .keyValue(let keyPath) = line.kind else { continue }
            let full = line.table + keyPath
            if full == ["mcp_servers"] || (full.count >= 2 && full[0] == "mcp_servers" && full[1] == serverName && line.table.count < 2) {
                throw SetupError(
                    .conflictingDefinition,
                    "config.toml defines `\(full.joined(separator: "."))` inline; rewrite it as a [mcp_servers.\(serverName)] table or remove it, then run setup again"
                )
            }
        }
    }
}

/// Line-ending and blank-line arithmetic shared by the mergers.
enum TextLines {
    /// `"\r\n"` when the document uses it, else `"\n"`.
    static func newline(of bytes: [UInt8]) -> String {
        guard let firstNewline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return "\n" }
        return firstNewline > 0 && bytes[firstNewline - 1] == UInt8(ascii: "\r") ? "\r\n" : "\n"
    }

    static func withNewline(_ text: String, _ newline: String) -> String {
        newline == "\n" ? text : text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: newline)
    }

    static func trimmingTrailingNewlines(_ text: String) -> String {
        var result = Substring(text)
        while result.last == "\n" || result.last == "\r\n" { result = result.dropLast() }
        return String(result)
    }

    /// Whether the bytes end with an empty line (`…\n\n`, `…\r\n\r\n`) or are empty.
    static func endsWithBlankLine(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        var index = bytes.count - 1
        guard bytes[index] == UInt8(ascii: "\n") else { return false }
        index -= 1
        if index >= 0, bytes[index] == UInt8(ascii: "\r") { index -= 1 }
        while index >= 0, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index -= 1 }
        return index < 0 || bytes[index] == UInt8(ascii: "\n")
    }

    /// After a block was cut out of `source` (everything before it is in `output`, `offset` is
    /// just past it), removes the one blank line that separated it from its neighbours, so that
    /// taking a block out leaves the spacing as it was before the block was added.
    ///
    /// - Returns: where to continue copying `source`.
    static func closeGap(_ output: inout [UInt8], source: [UInt8], at offset: Int) -> Int {
        var lineEnd = offset
        while lineEnd < source.count, source[lineEnd] == UInt8(ascii: " ") || source[lineEnd] == UInt8(ascii: "\t") || source[lineEnd] == 0x0D {
            lineEnd += 1
        }
        let atEnd = lineEnd >= source.count
        let restStartsBlank = !atEnd && source[lineEnd] == UInt8(ascii: "\n")
        if output.isEmpty {
            // The block opened the file: drop the blank line that followed it.
            return restStartsBlank ? lineEnd + 1 : offset
        }
        guard atEnd || restStartsBlank, endsWithBlankLine(output) else { return offset }
        // Remove the blank line's own line break, keeping the one that ends the content before it.
        output.removeLast()
        if output.last == UInt8(ascii: "\r") { output.removeLast() }
        while output.last == UInt8(ascii: " ") || output.last == UInt8(ascii: "\t") { output.removeLast() }
        return offset
    }
}
