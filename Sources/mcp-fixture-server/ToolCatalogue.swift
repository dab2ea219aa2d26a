import AgentWire
import Foundation

/// The fixture's tools, in the order `tools/list` returns them (sorted by name). The definitions
/// are JSON text so that number literals such as `2.50` reach the wire exactly as written.
struct ToolCatalogue: Sendable {
    let tools: [JSONValue]
    let extraTool: JSONValue
    private let schemas: [String: JSONValue]

    init() {
        // The definitions are constants of this file: failing to parse them is a programming error.
        guard case .array(let tools) = try! JSONValue(parsing: Self.definitions),
            let extraTool = try? JSONValue(parsing: Self.extraToolDefinition)
        else { fatalError("ToolCatalogue.definitions is not a JSON array") }
        self.tools = tools
        self.extraTool = extraTool
        var schemas: [String: JSONValue] = [:]
        for tool in tools + [extraTool] {
            if let name = tool["name"]?.stringValue, let schema = tool["inputSchema"] { schemas[name] = schema }
        }
        self.schemas = schemas
    }

    /// The tools currently listed, sorted by name.
    func listed(includingExtraTool: Bool) -> [JSONValue] {
        guard includingExtraTool else { return tools }
        var all = tools
        let index = all.firstIndex { ($0["name"]?.stringValue ?? "") > "extra_tool" } ?? all.endIndex
        all.insert(extraTool, at: index)
        return all
    }

    func isKnown(_ name: String, includingExtraTool: Bool) -> Bool {
        name == "extra_tool" ? includingExtraTool : schemas[name] != nil
    }

    /// Checks arguments against the tool's input schema (the subset of JSON Schema the fixture
    /// uses); returns a message describing the first problem, or `nil` when they are valid.
    func argumentProblem(tool: String, arguments: JSONObject) -> String? {
        guard let schema = schemas[tool] else { return "unknown tool \(tool)" }
        let properties = schema["properties"]?.objectValue ?? [:]
        for member in arguments {
            guard let property = properties[member.key] else { return "unexpected argument '\(member.key)'" }
            if let problem = Self.problem(with: member.value, against: property) { return "argument '\(member.key)' \(problem)" }
        }
        for required in schema["required"]?.arrayValue ?? [] {
            if let name = required.stringValue, arguments[name] == nil { return "missing required argument '\(name)'" }
        }
        return nil
    }

    private static func problem(with value: JSONValue, against property: JSONValue) -> String? {
        let types: [String]
        switch property["type"] {
        case .string(let type): types = [type]
        case .array(let list): types = list.compactMap(\.stringValue)
        default: types = []
        }
        if !types.isEmpty, !types.contains(where: { matches(value, type: $0) }) {
            return "must be of type \(types.joined(separator: " or "))"
        }
        if let allowed = property["enum"]?.arrayValue, !allowed.contains(value) {
            return "must be one of \(JSONValue.array(allowed).jsonText)"
        }
        if let number = value.doubleValue {
            if let minimum = property["minimum"]?.doubleValue, number < minimum { return "must be at least \(property["minimum"]!)" }
            if let maximum = property["maximum"]?.doubleValue, number > maximum { return "must be at most \(property["maximum"]!)" }
        }
        return nil
    }

    private static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("boolean", .bool), ("object", .object), ("array", .array), ("null", .null), ("number", .number):
            return true
        case ("integer", .number(let number)):
            return number.intValue != nil && !number.literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
        default:
            return false
        }
    }

    // MARK: Definitions

    static let readOnly = #""annotations":{"readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}"#

    static let extraToolDefinition = #"""
        {"name":"extra_tool","title":"Extra tool","description":"Listed only after change_tools; returns the text 'extra tool called'.","inputSchema":{"type":"object","properties":{},"additionalProperties":false},\#(readOnly)}
        """#

    static let definitions = #"""
        [
        {"name":"add","title":"Add","description":"Returns a + b as text and as structuredContent {sum}. Tiny and fast: the benchmark path.",
         "inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"],"additionalProperties":false},
         "outputSchema":{"type":"object","properties":{"sum":{"type":"number"}},"required":["sum"]},
         \#(readOnly)},
        {"name":"big","title":"Big text","description":"Returns one text content of exactly `bytes` UTF-8 bytes: 64-byte blocks of 59 'x', a backslash, 'é', a double quote and a newline, then (bytes mod 64) 'x'.",
         "inputSchema":{"type":"object","properties":{"bytes":{"type":"integer","minimum":0,"maximum":268435456}},"required":["bytes"],"additionalProperties":false},
         \#(readOnly)},
        {"name":"change_tools","title":"Change tools","description":"Toggles extra_tool in the tool list and sends notifications/tools/list_changed.",
         "inputSchema":{"type":"object","properties":{},"additionalProperties":false},
         "annotations":{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false}},
        {"name":"echo","title":"Echo","description":"Returns the text, and in structuredContent the text and selected request headers.",
         "icons":[{"src":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","mimeType":"image/png","sizes":["1x1"]}],
         "inputSchema":{"type":"object","properties":{"text":{"type":"string","description":"Text to echo back."}},"required":["text"],"additionalProperties":false},
         "outputSchema":{"type":"object","properties":{"text":{"type":"string"},"headers":{"type":"object","properties":{"authorization-present":{"type":"boolean"},"idempotency-key":{"type":["string","null"]},"mcp-protocol-version":{"type":["string","null"]}}}},"required":["text","headers"]},
         "execution":{"taskSupport":"forbidden"},
         "_meta":{"com.example.fixture/owner":"mcp-fixture-server"},
         "x-fixture-future":{"nested":[1,2.50,"é"]},
         \#(readOnly)},
        {"name":"fail","title":"Fail","description":"Answers THIS HTTP request with `status` (optional Retry-After header and raw body). With `times`, fails that many times per Idempotency-Key, then succeeds.",
         "inputSchema":{"type":"object","properties":{"status":{"type":"integer","minimum":200,"maximum":599},"retryAfter":{"type":["string","integer"]},"body":{"type":"string"},"times":{"type":"integer","minimum":0}},"required":["status"],"additionalProperties":false},
         \#(readOnly)},
        {"name":"fail_write","title":"Fail (write)","description":"Same as fail, but annotated as a non-read-only, non-idempotent tool.",
         "inputSchema":{"type":"object","properties":{"status":{"type":"integer","minimum":200,"maximum":599},"retryAfter":{"type":["string","integer"]},"body":{"type":"string"},"times":{"type":"integer","minimum":0}},"required":["status"],"additionalProperties":false},
         "annotations":{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false}},
        {"name":"garbage","title":"Garbage","description":"Answers with a broken HTTP response of the given kind.",
         "inputSchema":{"type":"object","properties":{"kind":{"type":"string","enum":["text","truncated-sse","stall-headers","stall-body","wrong-id","drop-connection"]}},"required":["kind"],"additionalProperties":false},
         \#(readOnly)},
        {"name":"headers","title":"Headers","description":"Returns every request header (lower-case name to value) as structuredContent; authorization is replaced by <present>.",
         "inputSchema":{"type":"object","properties":{},"additionalProperties":false},
         \#(readOnly)},
        {"name":"progress","title":"Progress","description":"With a progressToken, streams `steps` notifications/progress `intervalMs` apart on an SSE response, then the result.",
         "inputSchema":{"type":"object","properties":{"steps":{"type":"integer","minimum":0,"maximum":10000},"intervalMs":{"type":"integer","minimum":0,"maximum":600000}},"required":["steps"],"additionalProperties":false},
         \#(readOnly)},
        {"name":"slow","title":"Slow","description":"Waits `ms` milliseconds, then returns 'slept N ms'. Cancellation is recorded.",
         "inputSchema":{"type":"object","properties":{"ms":{"type":"integer","minimum":0,"maximum":3600000}},"required":["ms"],"additionalProperties":false},
         \#(readOnly)},
        {"name":"write_note","title":"Write note","description":"Records the note and the Idempotency-Key header; returns how many times that key has been seen.",
         "inputSchema":{"type":"object","properties":{"note":{"type":"string"}},"required":["note"],"additionalProperties":false},
         "annotations":{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":false}}
        ]
        """#
}

/// Opaque `tools/list` cursors: base64 of "fixture-tools:<offset>".
enum ToolCursor {
    static func encode(offset: Int) -> String {
        Data("fixture-tools:\(offset)".utf8).base64EncodedString()
    }

    static func decode(_ cursor: String) -> Int? {
        guard let data = Data(base64Encoded: cursor), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("fixture-tools:")
        else { return nil }
        return Int(text.dropFirst("fixture-tools:".count))
    }
}
