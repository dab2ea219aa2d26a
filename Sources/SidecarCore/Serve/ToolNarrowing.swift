import AgentWire
import Synchronization

/// `--read-only` and `--exclude-tool`: which of the upstream's tools the client may see and call.
///
/// Narrowing only ever takes away: a hidden tool is left out of `tools/list`, and a call to it is
/// refused here and never reaches the upstream. `--read-only` keeps the tools whose `readOnlyHint`
/// is true; the hints are remembered from every `tools/list`, forgotten when the tool list changes,
/// and looked up again (every page of `tools/list`) before deciding on a tool not yet seen.
final class ToolNarrowing: Sendable {
    let readOnly: Bool
    let excludedTools: Set<String>
    let upstream: any MCPUpstream
    /// Tool name → its `readOnlyHint` (nil when the tool has none).
    let hints = Mutex<[String: Bool?]>([:])

    /// Pages of `tools/list` read at most to learn the hints.
    static let maximumPages = 50

    init(readOnly: Bool, excludedTools: Set<String>, upstream: any MCPUpstream) {
        self.readOnly = readOnly
        self.excludedTools = excludedTools
        self.upstream = upstream
    }

    /// Whether narrowing hides this tool (a missing `readOnlyHint` counts as not read-only).
    func hides(toolNamed name: String, readOnlyHint: Bool?) -> Bool {
        if excludedTools.contains(name) { return true }
        if readOnly, readOnlyHint != true { return true }
        return false
    }

    /// The tools the client may see, in the upstream's order, remembering every tool's hint.
    /// A tool without a string name is dropped.
    func visibleTools(_ tools: [JSONValue]) -> [JSONValue] {
        var seen: [String: Bool?] = [:]
        let visible = tools.filter { tool in
            guard let name = tool["name"]?.stringValue else { return false }
            let readOnlyHint = tool["annotations"]?["readOnlyHint"]?.boolValue
            seen[name] = readOnlyHint
            return !hides(toolNamed: name, readOnlyHint: readOnlyHint)
        }
        hints.withLock { hints in hints.merge(seen) { _, new in new } }
        return visible
    }

    /// Why narrowing forbids calling this tool, or nil when it may be called. The text is the
    /// message of the `-32602` error the client gets.
    func refusal(toolName name: String) async -> String? {
        if excludedTools.contains(name) {
            return "Unknown tool: \(name) (hidden by --exclude-tool on this sidecar)"
        }
        guard readOnly else { return nil }
        var hint = hints.withLock { $0[name] }
        if hint == nil {
            await refreshHints()
            hint = hints.withLock { $0[name] }
        }
        switch hint {
        case .some(.some(true)): return nil
        case .none: return "Unknown tool: \(name)"
        default: return "tool \(name) is not read-only, and this sidecar runs with --read-only; ask for a sidecar without it to write"
        }
    }

    /// The tool list changed: hints may be stale.
    func forgetHints() { hints.withLock { $0 = [:] } }

    /// Reads every page of the upstream's tool list to learn which tools are read-only. An upstream
    /// that fails leaves the hints as they were.
    func refreshHints() async {
        var cursor: String?
        var seen: [String: Bool?] = [:]
        for _ in 0..<Self.maximumPages {
            var params = JSONObject()
            if let cursor { params["cursor"] = .string(cursor) }
            guard let response = try? await upstream.request(method: "tools/list", params: params),
                let result = response.value("result")
            else { return }
            for tool in result["tools"]?.arrayValue ?? [] {
                guard let name = tool["name"]?.stringValue else { continue }
                // Bound first: assigned straight from the optional chain, a tool without a hint
                // would leave the dictionary (the chain's nil is the outer one) and read as unknown.
                let readOnlyHint = tool["annotations"]?["readOnlyHint"]?.boolValue
                seen[name] = .some(readOnlyHint)
            }
            cursor = result["nextCursor"]?.stringValue
            if cursor == nil { break }
        }
        hints.withLock { hints in hints.merge(seen) { _, new in new } }
    }
}
