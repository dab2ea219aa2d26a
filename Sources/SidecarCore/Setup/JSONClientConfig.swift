import AgentWire

/// Merges the sidecar's entry into the JSON MCP configurations of Claude Code (`.mcp.json`),
/// Cursor (`.cursor/mcp.json`) and VS Code (`.vscode/mcp.json`).
///
/// Other members keep their order (``JSONValue`` objects are ordered); the file is written back
/// with two-space indentation. Files with comments or trailing commas (JSONC) are refused rather
/// than rewritten without them.
public enum JSONClientConfig {
    /// The member that holds the servers: `mcpServers`, or `servers` for VS Code.
    public static func serversKey(for target: SetupTarget) -> String { target == .vscode ? "servers" : "mcpServers" }

    static func template(for target: SetupTarget) -> String {
        switch target {
        case .claudeCode: return EmbeddedTemplates.claudeCode
        case .cursor: return EmbeddedTemplates.cursor
        default: return EmbeddedTemplates.vscode
        }
    }

    /// The server entry for one client.
    ///
    /// - Parameters:
    ///   - target: ``SetupTarget/claudeCode``, ``SetupTarget/cursor`` or ``SetupTarget/vscode``.
    ///   - command: The absolute path of the sidecar binary.
    ///   - arguments: The arguments (`serve --profile NAME`).
    ///   - environment: Non-secret variables the client must pass.
    public static func renderEntry(
        _ target: SetupTarget, command: String, arguments: [String], environment: [(String, String)]
    ) throws(SetupError) -> JSONValue {
        let env = JSONValue.object(JSONObject(members: environment.map { .init(key: $0.0, value: .string($0.1)) }))
        let text = try TemplateRenderer.render(
            template(for: target),
            values: [
                "command": JSONValue.string(command).jsonText,
                "args": JSONValue.array(arguments.map { .string($0) }).jsonText,
                "env": env.jsonText,
            ])
        do {
            return try JSONValue(parsing: text)
        } catch {
            throw SetupError(.template, "the \(target.rawValue) template is not valid JSON (\(error)); this is a bug in agent-sidecar")
        }
    }

    /// `existing` (nil or empty: a new file) with `servers[serverName] = entry`.
    ///
    /// - Returns: the new file, or `nil` when the entry is already there as rendered (the file
    ///   should then be left alone, whatever its formatting).
    public static func merge(
        existing: [UInt8]?, target: SetupTarget, serverName: String, entry: JSONValue, path: String
    )
        throws(SetupError) -> [UInt8]?
    {
        var document = try parseObject(existing, path: path)
        let key = serversKey(for: target)
        var servers: JSONObject
        switch document[key] {
        case nil: servers = JSONObject()
        case .object(let object)?: servers = object
        default:
            throw SetupError(.unparseableConfig, "\(path): `\(key)` is not an object; fix or remove it, then run setup again")
        }
        if servers[serverName] == entry { return nil }
        servers[serverName] = entry
        document[key] = .object(servers)
        return PrettyJSON.render(.object(document))
    }

    /// `existing` without our entry; `nil` when it had none. An empty result (`{}` with nothing
    /// else) comes back as `[]`, meaning the file can go.
    public static func remove(existing: [UInt8], target: SetupTarget, serverName: String, path: String) throws(SetupError) -> [UInt8]? {
        var document = try parseObject(existing, path: path)
        let key = serversKey(for: target)
        guard var servers = document[key]?.objectValue, servers[serverName] != nil else { return nil }
        servers[serverName] = nil
        document[key] = servers.isEmpty ? nil : .object(servers)
        return document.isEmpty ? [] : PrettyJSON.render(.object(document))
    }

    /// The file as a JSON object; an absent or blank file is an empty object. Comments and trailing
    /// commas (JSONC) are refused rather than lost in a rewrite.
    static func parseObject(_ existing: [UInt8]?, path: String) throws(SetupError) -> JSONObject {
        guard let existing, existing.contains(where: { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }) else {
            return JSONObject()
        }
        guard let value = try? JSONValue(parsing: existing) else {
            throw SetupError(
                .unparseableConfig,
                "\(path) is not plain JSON (comments or trailing commas?); add the agent-sidecar entry by hand (see `agent-sidecar setup --print`)")
        }
        guard let object = value.objectValue else {
            throw SetupError(.unparseableConfig, "\(path) is not a JSON object; fix or remove it, then run setup again")
        }
        return object
    }
}
