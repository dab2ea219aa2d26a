import AgentWire

/// The MCP server entry a client config holds for the sidecar, as `doctor` read it back.
struct ClientEntry: Sendable, Equatable {
    var command: String?
    var arguments: [String] = []
    /// Variables the entry sets (`env`).
    var environment: [String: String] = [:]
    /// Variables Codex passes on by name (`env_vars`).
    var forwardedVariables: [String] = []
    /// `false` when the client has the entry switched off.
    var enabled = true
}

/// Reads the sidecar's entry back out of each kind of client config.
enum ClientEntryReader {
    struct Failure: Error, Sendable {
        let message: String
    }

    /// The entry as `codex mcp get NAME --json` prints it.
    static func codexJSON(_ text: String, serverName: String) throws(Failure) -> ClientEntry {
        guard let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close,
            let json = try? JSONValue(parsing: Array(text[open...close].utf8)), let transport = json["transport"]
        else { throw Failure(message: "`codex mcp get \(serverName) --json` printed no server entry") }
        var entry = ClientEntry()
        entry.command = transport["command"]?.stringValue
        entry.arguments = transport["args"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for member in transport["env"]?.objectValue ?? [:] { entry.environment[member.key] = member.value.stringValue ?? "" }
        entry.forwardedVariables = transport["env_vars"]?.arrayValue?.compactMap(\.stringValue) ?? []
        entry.enabled = json["enabled"]?.boolValue ?? true
        return entry
    }

    /// Our table in a Codex `config.toml`, read without Codex: the table must be there, every line
    /// of the file must be one the TOML line scanner understands, and our own keys must hold plain
    /// strings and arrays of strings (as setup writes them).
    static func codexTOML(_ bytes: [UInt8], serverName: String) throws(Failure) -> ClientEntry {
        guard String(validating: bytes, as: UTF8.self) != nil else { throw Failure(message: "it is not valid UTF-8") }
        let lines = TOMLTableLocator.lines(bytes)
        if let bad = lines.firstIndex(where: { $0.kind == .unrecognized }) {
            throw Failure(message: "line \(bad + 1) is not valid TOML")
        }
        if TOMLTableLocator.endsInsideValue(bytes) {
            throw Failure(message: "it is not valid TOML: a string, array or inline table is never closed")
        }
        let table = ["mcp_servers", serverName]
        guard lines.contains(where: { $0.kind == .header(path: table, isArray: false) }) else {
            throw Failure(message: "it has no [mcp_servers.\(serverName)] table")
        }
        var entry = ClientEntry()
        for line in lines {
            guard case .keyValue(let keyPath) = line.kind else { continue }
            let full = line.table + keyPath
            guard full.count > 2, Array(full.prefix(2)) == table else { continue }
            let text = String(decoding: bytes[line.range], as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            let value = String(text[text.index(after: equals)...])
            switch Array(full.dropFirst(2)) {
            case ["command"]: entry.command = TOMLValue.string(value)
            case ["args"]: entry.arguments = TOMLValue.strings(value) ?? []
            case ["env_vars"]: entry.forwardedVariables = TOMLValue.strings(value) ?? []
            case ["enabled"]: entry.enabled = !value.trimmingWhitespace.hasPrefix("false")
            case let path where path.count == 2 && path[0] == "env": entry.environment[path[1]] = TOMLValue.string(value) ?? ""
            default: break
            }
        }
        return entry
    }

    /// Our member of a JSON client config (`mcpServers` or, for VS Code, `servers`).
    static func json(_ bytes: [UInt8], serversKey: String, serverName: String) throws(Failure) -> ClientEntry {
        guard let document = try? JSONValue(parsing: bytes), document.objectValue != nil else {
            throw Failure(message: "it is not plain JSON")
        }
        guard let server = document[serversKey]?[serverName], server.objectValue != nil else {
            throw Failure(message: "it has no \(serversKey).\(serverName) entry")
        }
        var entry = ClientEntry()
        entry.command = server["command"]?.stringValue
        entry.arguments = server["args"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for member in server["env"]?.objectValue ?? [:] { entry.environment[member.key] = member.value.stringValue ?? "" }
        entry.enabled = !(server["disabled"]?.boolValue ?? false)
        return entry
    }
}

/// The TOML values setup writes: basic or literal strings on one line, and arrays of them.
enum TOMLValue {
    /// A one-line basic (`"…"`) or literal (`'…'`) string, with a trailing comment allowed.
    static func string(_ text: String) -> String? {
        var scalars = Substring(text.trimmingWhitespace).unicodeScalars[...]
        return parseString(&scalars)
    }

    /// A one-line array of strings.
    static func strings(_ text: String) -> [String]? {
        var scalars = Substring(text.trimmingWhitespace).unicodeScalars[...]
        guard scalars.popFirst() == "[" else { return nil }
        var result: [String] = []
        while true {
            skipSpaces(&scalars)
            guard let next = scalars.first else { return nil }
            if next == "]" { return result }
            guard let item = parseString(&scalars) else { return nil }
            result.append(item)
            skipSpaces(&scalars)
            if scalars.first == "," { scalars.removeFirst() }
        }
    }

    private static func skipSpaces(_ scalars: inout Substring.UnicodeScalarView.SubSequence) {
        while let first = scalars.first, first == " " || first == "\t" { scalars.removeFirst() }
    }

    private static func parseString(_ scalars: inout Substring.UnicodeScalarView.SubSequence) -> String? {
        guard let quote = scalars.popFirst(), quote == "\"" || quote == "'" else { return nil }
        var output = String.UnicodeScalarView()
        while let scalar = scalars.popFirst() {
            if scalar == quote { return String(output) }
            guard quote == "\"", scalar == "\\" else {
                output.append(scalar)
                continue
            }
            guard let escaped = scalars.popFirst() else { return nil }
            switch escaped {
            case "n": output.append("\n")
            case "t": output.append("\t")
            case "r": output.append("\r")
            case "\"", "\\": output.append(escaped)
            case "u", "U":
                let digits = escaped == "u" ? 4 : 8
                var hex = ""
                for _ in 0..<digits {
                    guard let digit = scalars.popFirst() else { return nil }
                    hex.unicodeScalars.append(digit)
                }
                guard let value = UInt32(hex, radix: 16), let decoded = Unicode.Scalar(value) else { return nil }
                output.append(decoded)
            default: return nil
            }
        }
        return nil
    }
}
