import AgentWire

/// The approval choice (`setup --approve`) for Claude Code, which keeps it apart from the server
/// entry: permission rules in `PROJECT/.claude/settings.local.json` (the personal, uncommitted
/// settings file), `mcp__SERVER__TOOL` for one tool and `mcp__SERVER` for all of a server's tools.
///
/// * ``ToolApproval/writes``: `permissions.allow` gets each read tool; writes keep asking (Claude
///   Code asks for every MCP tool that no rule allows).
/// * ``ToolApproval/none``: `permissions.allow` gets the whole server.
/// * ``ToolApproval/all``: `permissions.ask` gets the whole server, so that an `allow` rule in
///   another settings file cannot silence it.
///
/// Only our own rules are touched: those equal to `mcp__SERVER` or starting with `mcp__SERVER__`,
/// in `allow` and `ask`. `deny` is never changed.
public enum ClaudeCodeSettings {
    /// The rule that covers every tool of a server.
    public static func serverRule(_ serverName: String) -> String { "mcp__\(serverName)" }

    /// The rules for one approval choice, as `(list, rules)`.
    public static func rules(serverName: String, approval: ToolApproval, tools: [AgentsMarkdown.Tool]) -> (list: String, rules: [String]) {
        switch approval {
        case .writes: return ("allow", tools.filter(\.readOnly).map { "\(serverRule(serverName))__\($0.name)" })
        case .none: return ("allow", [serverRule(serverName)])
        case .all: return ("ask", [serverRule(serverName)])
        }
    }

    static func isOurs(_ rule: JSONValue, serverName: String) -> Bool {
        guard let text = rule.stringValue else { return false }
        let server = serverRule(serverName)
        return text == server || text.hasPrefix(server + "__")
    }

    /// `existing` (nil or empty: a new file) with our rules replaced by those of `approval`.
    ///
    /// - Returns: the new file, or `nil` when it would not change (or, absent, would hold no rule).
    public static func merge(
        existing: [UInt8]?, serverName: String, approval: ToolApproval, tools: [AgentsMarkdown.Tool], path: String
    ) throws(SetupError) -> [UInt8]? {
        var document = try JSONClientConfig.parseObject(existing, path: path)
        var permissions = try permissionsObject(document, path: path)
        let (list, rules) = rules(serverName: serverName, approval: approval, tools: tools)
        // Already as wanted (wherever the user moved our rules within the list): leave the file alone.
        let present = ["allow", "ask"].map { name in
            (name, (permissions[name]?.arrayValue ?? []).filter { isOurs($0, serverName: serverName) }.compactMap(\.stringValue))
        }
        if present.allSatisfy({ $0.1 == ($0.0 == list ? rules : []) }) { return nil }
        try removeOurs(&permissions, serverName: serverName, path: path)
        if !rules.isEmpty {
            var entries = permissions[list]?.arrayValue ?? []
            entries += rules.map { .string($0) }
            permissions[list] = .array(entries)
        }
        document["permissions"] = permissions.isEmpty ? nil : .object(permissions)
        return PrettyJSON.render(.object(document))
    }

    /// `existing` without our rules; `nil` when it had none. An empty result comes back as `[]`,
    /// meaning the file can go.
    public static func remove(existing: [UInt8], serverName: String, path: String) throws(SetupError) -> [UInt8]? {
        var document = try JSONClientConfig.parseObject(existing, path: path)
        var permissions = try permissionsObject(document, path: path)
        let before = permissions
        try removeOurs(&permissions, serverName: serverName, path: path)
        guard permissions != before else { return nil }
        document["permissions"] = permissions.isEmpty ? nil : .object(permissions)
        return document.isEmpty ? [] : PrettyJSON.render(.object(document))
    }

    private static func permissionsObject(_ document: JSONObject, path: String) throws(SetupError) -> JSONObject {
        switch document["permissions"] {
        case nil: return JSONObject()
        case .object(let object)?: return object
        default: throw SetupError(.unparseableConfig, "\(path): `permissions` is not an object; fix or remove it, then run setup again")
        }
    }

    /// Takes our rules out of `allow` and `ask`; a list left empty by that goes too.
    private static func removeOurs(_ permissions: inout JSONObject, serverName: String, path: String) throws(SetupError) {
        for list in ["allow", "ask"] {
            guard let value = permissions[list] else { continue }
            guard let entries = value.arrayValue else {
                throw SetupError(.unparseableConfig, "\(path): `permissions.\(list)` is not a list; fix or remove it, then run setup again")
            }
            let kept = entries.filter { !isOurs($0, serverName: serverName) }
            guard kept.count != entries.count else { continue }
            permissions[list] = kept.isEmpty ? nil : .array(kept)
        }
    }
}
