/// The instruction block in `AGENTS.md`, between
/// `<!-- agent-sidecar:begin profile=NAME -->` and `<!-- agent-sidecar:end profile=NAME -->`.
public enum AgentsMarkdown {
    /// Codex reads at most this many bytes of project docs by default (`project_doc_max_bytes`).
    public static let codexProjectDocBudget = 32 * 1024

    /// A tool as the setup data describes it.
    public struct Tool: Sendable, Equatable {
        public var name: String
        public var title: String
        public var readOnly: Bool
        public var scope: String?
        public init(name: String, title: String, readOnly: Bool, scope: String?) {
            self.name = name
            self.title = title
            self.readOnly = readOnly
            self.scope = scope
        }
    }

    public static func beginMarker(profile: String) -> String { "<!-- agent-sidecar:begin profile=\(profile) -->" }
    public static func endMarker(profile: String) -> String { "<!-- agent-sidecar:end profile=\(profile) -->" }

    /// The block, markers included, ending in a newline.
    ///
    /// - Parameters:
    ///   - profile: The profile, its agent, owner and grants.
    ///   - serverName: The MCP server name the host knows the sidecar by.
    ///   - tools: The tool summary from the gateway's setup data.
    public static func renderBlock(profile: SidecarProfile, serverName: String, tools: [Tool]) throws(SetupError) -> String {
        let grants =
            profile.grants.isEmpty
            ? "- (none yet: ask \(inline(profile.owner.name)) to grant a project)"
            : profile.grants.map { grant in
                let title = grant.name.map { "\(inline($0)) (`\(code(grant.project))`)" } ?? "`\(code(grant.project))`"
                let scopes = grant.scopes.isEmpty ? "no scopes" : grant.scopes.map { "`\(code($0))`" }.joined(separator: ", ")
                return "- \(title): \(scopes)"
            }.joined(separator: "\n")
        let toolList =
            tools.isEmpty
            ? "- (the gateway listed no tools; run `agent-sidecar setup` again once it does)"
            : tools.map { tool in
                var line = "- `\(code(tool.name))`: \(inline(tool.title))"
                var notes: [String] = [tool.readOnly ? "read-only" : "writes"]
                if let scope = tool.scope { notes.append("scope `\(code(scope))`") }
                line += " (" + notes.joined(separator: ", ") + ")"
                return line
            }.joined(separator: "\n")
        let rendered = try TemplateRenderer.render(
            EmbeddedTemplates.agentsMarkdown,
            values: [
                "profile": profile.name,
                "agent_name": inline(profile.agent.name),
                "owner_name": inline(profile.owner.name),
                "server_name": serverName,
                "gateway": inline(profile.gatewayURL),
                "grants": grants,
                "tools": toolList,
            ])
        return TextLines.trimmingTrailingNewlines(rendered) + "\n"
    }

    /// The located block: byte range of its lines (from the begin marker's line start through the
    /// end marker's line end), or `nil` when absent.
    static func locate(_ text: [UInt8], profile: String) throws(SetupError) -> Range<Int>? {
        let begin = Array(beginMarker(profile: profile).utf8)
        let end = Array(endMarker(profile: profile).utf8)
        let beginAt = find(begin, in: text, from: 0)
        let endAt = find(end, in: text, from: beginAt ?? 0)
        switch (beginAt, endAt) {
        case (nil, nil):
            return nil
        case (let beginAt?, let endAt?):
            let start = text[..<beginAt].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            let afterEnd = endAt + end.count
            let stop = text[afterEnd...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? text.count
            return start..<stop
        default:
            throw SetupError(
                .malformedMarkers,
                "AGENTS.md has an agent-sidecar begin or end marker for profile \(profile) without its partner; remove the stray marker and run setup again"
            )
        }
    }

    /// `existing` with the block replaced, or appended after one blank line.
    public static func merge(existing: [UInt8], block: String) throws(SetupError) -> [UInt8] {
        guard let profile = profileOf(block: block) else {
            throw SetupError(.template, "the AGENTS.md block has no begin marker; this is a bug in agent-sidecar")
        }
        let newline = TextLines.newline(of: existing)
        let blockBytes = Array(TextLines.withNewline(block, newline).utf8)
        if let range = try locate(existing, profile: profile) {
            var output = Array(existing[..<range.lowerBound])
            output += blockBytes
            output += existing[range.upperBound...]
            return output
        }
        var output = existing
        if !output.isEmpty {
            if output.last != UInt8(ascii: "\n") { output += Array(newline.utf8) }
            if !TextLines.endsWithBlankLine(output) { output += Array(newline.utf8) }
        }
        return output + blockBytes
    }

    /// `existing` without the block of `profile` (and the blank line that set it apart); `nil`
    /// when there is no block.
    public static func remove(existing: [UInt8], profile: String) throws(SetupError) -> [UInt8]? {
        guard let range = try locate(existing, profile: profile) else { return nil }
        var output = Array(existing[..<range.lowerBound])
        let cursor = TextLines.closeGap(&output, source: existing, at: range.upperBound)
        output += existing[cursor...]
        return output
    }

    static func profileOf(block: String) -> String? {
        let prefix = "<!-- agent-sidecar:begin profile="
        guard let start = block.firstRange(of: prefix), let close = block[start.upperBound...].firstRange(of: " -->") else { return nil }
        return String(block[start.upperBound..<close.lowerBound])
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], Array(haystack[index..<index + needle.count]) == needle { return index }
            index += 1
        }
        return nil
    }

    /// Text from the gateway (names people chose) made safe for one line of Markdown: no line
    /// breaks, no HTML comment delimiters that could fake or break our markers.
    static func inline(_ text: String) -> String {
        var cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
        cleaned = cleaned.replacing("<!--", with: "<!- -").replacing("-->", with: "- ->")
        if cleaned.count > 200 { cleaned = String(cleaned.prefix(200)) + "…" }
        return cleaned
    }

    /// Like ``inline(_:)``, for text inside backticks.
    static func code(_ text: String) -> String { inline(text).replacing("`", with: "'") }
}
