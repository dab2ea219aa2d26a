import AgentWire

/// The scopes an owner can grant an agent on a project. Each tool needs exactly one.
public enum Scope {
    public static let projectRead = "project:read"
    public static let issueCreate = "issue:create"
    public static let issueUpdate = "issue:update"
    public static let issueMove = "issue:move"
    public static let issueComment = "issue:comment"
    public static let issueLabel = "issue:label"
    public static let issueAssign = "issue:assign"
    public static let projectMemberAddExisting = "project:member:add_existing"
    public static let reportWrite = "report:write"

    public static let all = [
        projectRead, issueCreate, issueUpdate, issueMove, issueComment, issueLabel, issueAssign, projectMemberAddExisting, reportWrite,
    ]
}

/// One tool the gateway offers: its MCP description and the single scope it needs.
public struct ToolDefinition: Sendable {
    public let name: String
    public let title: String
    public let description: String
    public let scope: String
    public let readOnly: Bool
    public let idempotent: Bool
    public let inputSchema: JSONValue
    public let outputSchema: JSONValue

    /// The MCP `Tool` object for a session that negotiated `protocolVersion`; `tierNote` (the
    /// capability tier in words) follows the description.
    public func mcpDescription(protocolVersion: String, tierNote: String? = nil) -> JSONValue {
        var tool: JSONObject = ["name": .string(name)]
        let modern = protocolVersion >= "2025-06-18"
        if modern { tool["title"] = .string(title) }
        tool["description"] = .string(tierNote.map { description + " " + $0 } ?? description)
        tool["inputSchema"] = inputSchema
        if modern { tool["outputSchema"] = outputSchema }
        tool["annotations"] = [
            "title": .string(title), "readOnlyHint": .bool(readOnly), "destructiveHint": false, "idempotentHint": .bool(idempotent),
            "openWorldHint": false,
        ]
        return .object(tool)
    }
}

/// JSON Schema fragments for the catalog.
enum Schema {
    static func object(_ properties: [(String, JSONValue)], required: [String] = [], closed: Bool = true) -> JSONValue {
        var object: JSONObject = ["type": "object", "properties": .object(JSONObject(members: properties.map { .init(key: $0.0, value: $0.1) }))]
        if !required.isEmpty { object["required"] = .array(required.map { .string($0) }) }
        if closed { object["additionalProperties"] = false }
        return .object(object)
    }
    /// A string argument. Lengths count Unicode code points (as JSON Schema defines them), and the
    /// `pattern` refuses control characters: all of them in one-line fields, all but line feed and
    /// tab in `multiline` ones. The limits go into the schema and, in words, into the description:
    /// Codex strips `minLength`, `maxLength`, `maxItems`, `minimum` and `maximum` before the model
    /// sees a schema, so the description is the only place the model can learn them.
    static func string(
        _ description: String, minLength: Int? = nil, maxLength: Int? = nil, values: [String]? = nil, multiline: Bool = false
    ) -> JSONValue {
        var object: JSONObject = ["type": "string"]
        object["description"] = .string(LimitWords.append(LimitWords.characters(minimum: minLength, maximum: maxLength), to: description))
        if let minLength { object["minLength"] = .int(minLength) }
        if let maxLength { object["maxLength"] = .int(maxLength) }
        if let values { object["enum"] = .array(values.map { .string($0) }) }
        object["pattern"] = .string(multiline ? TextRule.multiLinePattern : TextRule.singleLinePattern)
        return .object(object)
    }
    static func integer(_ description: String, minimum: Int, maximum: Int) -> JSONValue {
        [
            "type": "integer", "description": .string(LimitWords.append(LimitWords.range(minimum: minimum, maximum: maximum), to: description)),
            "minimum": .int(minimum), "maximum": .int(maximum),
        ]
    }
    static func array(_ items: JSONValue, description: String, maxItems: Int) -> JSONValue {
        let words = LimitWords.items(maximum: maxItems, eachAtMost: items["maxLength"]?.intValue)
        return ["type": "array", "description": .string(LimitWords.append(words, to: description)), "items": items, "maxItems": .int(maxItems)]
    }
    static let nullableString: JSONValue = ["type": ["string", "null"]]
    static let plainString: JSONValue = ["type": "string"]
    static let integerValue: JSONValue = ["type": "integer"]
    static let booleanValue: JSONValue = ["type": "boolean"]
    /// Text people wrote, as it arrives in `structuredContent`: wrapped in the untrusted-content
    /// marker inside the string itself (see ``UntrustedText/marking(_:at:)``).
    static let untrustedString: JSONValue = [
        "type": "string", "description": .string(UntrustedText.schemaDescription), "pattern": .string(UntrustedText.schemaPattern),
    ]
    static let untrustedNullableString: JSONValue = [
        "type": ["string", "null"], "description": .string(UntrustedText.schemaDescription), "pattern": .string(UntrustedText.schemaPattern),
    ]
    /// A state, label or person: an id, and the name people gave it (marked).
    static let reference = object([("id", plainString), ("name", untrustedString)], required: ["id", "name"], closed: false)

    static let idempotencyKey = string(
        "Optional key that makes a retry safe: a repeated call with the same key and arguments returns the stored result instead of writing again. Wins over the Idempotency-Key header.",
        minLength: 1, maxLength: 200)
    static let project = string("Project key, e.g. WEB.", minLength: 1, maxLength: 20)
    static let issue = string("Issue key, e.g. WEB-12.", minLength: 3, maxLength: 32)
    static let priority = string("Priority.", values: IssueVocabulary.priorities)
    static let blockName = string("Block name.", values: IssueVocabulary.blockNames)
    static let block = object(
        [("name", blockName), ("text", string("Block text (Markdown). An empty text clears the block.", maxLength: 20000, multiline: true))],
        required: ["name", "text"])

    static let issueOutput = object(
        [
            ("id", plainString), ("key", plainString), ("project", plainString), ("title", untrustedString), ("description", untrustedString),
            ("priority", plainString), ("state", reference), ("labels", ["type": "array", "items": reference]),
            ("assignees", ["type": "array", "items": reference]),
            ("blocks", ["type": "array", "items": object([("name", plainString), ("text", untrustedString)], closed: false)]),
            ("createdBy", object([("userId", plainString), ("agentId", nullableString)], closed: false)),
            ("createdAt", plainString), ("updatedAt", plainString),
        ], required: ["id", "key", "project", "title", "state"], closed: false)
    /// What an issue write other than create_issue returns: the issue's identity, `updatedAt`, and
    /// only the fields the call set (a write scope does not read the rest of the issue).
    static let issueChangeOutput = object(
        [
            ("id", plainString), ("key", plainString), ("project", plainString), ("title", untrustedString), ("description", untrustedString),
            ("priority", plainString), ("state", reference), ("labels", ["type": "array", "items": reference]),
            ("assignees", ["type": "array", "items": reference]),
            ("blocks", ["type": "array", "items": object([("name", plainString), ("text", untrustedString)], closed: false)]),
            ("updatedAt", plainString),
        ], required: ["id", "key", "project", "updatedAt"], closed: false)
    static let commentOutput = object(
        [
            ("id", plainString), ("issue", plainString), ("author", object([("userId", plainString), ("agentId", nullableString)], closed: false)),
            ("body", untrustedString), ("createdAt", plainString),
        ], required: ["id", "issue", "body"], closed: false)
    static let workSessionOutput = object(
        [
            ("id", plainString), ("project", plainString), ("issue", nullableString), ("summary", untrustedString), ("status", plainString),
            ("note", object([("at", plainString), ("text", untrustedString), ("issue", nullableString)], closed: false)),
            ("noteCount", integerValue), ("result", untrustedNullableString), ("startedAt", plainString), ("updatedAt", plainString),
            ("finishedAt", nullableString),
        ], required: ["id", "project", "status"], closed: false)
    static func wrapping(_ key: String, _ schema: JSONValue) -> JSONValue { object([(key, schema)], required: [key], closed: false) }
}

/// Fixed vocabularies of the embedded tracker.
public enum IssueVocabulary {
    public static let priorities = ["none", "low", "medium", "high", "urgent"]
    public static let blockNames = ["Context", "Acceptance criteria", "Plan", "Result", "Notes"]
}

/// Every tool of the gateway. There is no delete and no archive tool, by design.
public enum ToolCatalog {
    public static let all: [ToolDefinition] = [
        ToolDefinition(
            name: "list_projects", title: "List projects",
            description: "Lists the projects this agent is granted, with the scopes it holds on each.",
            scope: Scope.projectRead, readOnly: true, idempotent: true, inputSchema: Schema.object([]),
            outputSchema: Schema.wrapping(
                "projects",
                [
                    "type": "array",
                    "items": Schema.object(
                        [
                            ("key", Schema.plainString), ("name", Schema.untrustedString), ("description", Schema.untrustedString),
                            ("scopes", ["type": "array", "items": Schema.plainString]),
                        ], required: ["key", "name"], closed: false),
                ])),
        ToolDefinition(
            name: "get_project_context", title: "Get project context",
            description: "Returns a project's states, labels, members, priorities and block names: the names other tools accept.",
            scope: Scope.projectRead, readOnly: true, idempotent: true,
            inputSchema: Schema.object([("project", Schema.project)], required: ["project"]),
            outputSchema: Schema.object(
                [
                    (
                        "project",
                        Schema.object(
                            [("key", Schema.plainString), ("name", Schema.untrustedString), ("description", Schema.untrustedString)], closed: false)
                    ),
                    ("states", ["type": "array", "items": Schema.reference]), ("labels", ["type": "array", "items": Schema.reference]),
                    ("members", ["type": "array", "items": Schema.reference]),
                    ("priorities", ["type": "array", "items": Schema.plainString]), ("blockNames", ["type": "array", "items": Schema.plainString]),
                ],
                required: ["project", "states", "labels", "members"], closed: false)),
        ToolDefinition(
            name: "search_issues", title: "Search issues",
            description:
                "Searches a project's issues by text, state, label and assignee (names or ids), a page at a time; pass nextCursor back as cursor for the next page.",
            scope: Scope.projectRead, readOnly: true, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("project", Schema.project), ("query", Schema.string("Text to find in titles and descriptions.", maxLength: 200)),
                    ("state", Schema.string("State name, e.g. In Progress.", maxLength: 100)),
                    ("label", Schema.string("Label name.", maxLength: 100)),
                    ("assignee", Schema.string("Member id or name.", maxLength: 100)),
                    ("cursor", Schema.string("nextCursor from the previous page.", maxLength: 100)),
                    ("limit", Schema.integer("Page size (default 20).", minimum: 1, maximum: 100)),
                ], required: ["project"]),
            outputSchema: Schema.object(
                [("issues", ["type": "array", "items": Schema.issueOutput]), ("nextCursor", Schema.nullableString)], required: ["issues"],
                closed: false)),
        ToolDefinition(
            name: "get_issue", title: "Get issue",
            description:
                "Returns one issue with its blocks and a page of its comments, oldest first; pass nextCursor back as cursor for the next page.",
            scope: Scope.projectRead, readOnly: true, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue), ("cursor", Schema.string("nextCursor from the previous page of comments.", maxLength: 100)),
                    ("limit", Schema.integer("Comments per page (default 20).", minimum: 1, maximum: 100)),
                ], required: ["issue"]),
            outputSchema: Schema.object(
                [
                    ("issue", Schema.issueOutput), ("comments", ["type": "array", "items": Schema.commentOutput]),
                    ("commentCount", Schema.integerValue), ("nextCursor", Schema.nullableString),
                ], required: ["issue", "comments", "nextCursor"], closed: false)),
        ToolDefinition(
            name: "create_issue", title: "Create issue",
            description:
                "Creates an issue in a project. State, labels and assignees are names (or ids); unknown names fail with the list of valid ones.",
            scope: Scope.issueCreate, readOnly: false, idempotent: false,
            inputSchema: Schema.object(
                [
                    ("project", Schema.project), ("title", Schema.string("Title.", minLength: 1, maxLength: 300)),
                    ("description", Schema.string("Description (Markdown).", maxLength: 50000, multiline: true)), ("priority", Schema.priority),
                    ("state", Schema.string("State name (default: the first backlog state).", maxLength: 100)),
                    ("labels", Schema.array(Schema.string("Label name.", maxLength: 100), description: "Label names.", maxItems: 20)),
                    ("assignees", Schema.array(Schema.string("Member id or name.", maxLength: 100), description: "Project members.", maxItems: 20)),
                    ("blocks", Schema.array(Schema.block, description: "Structured blocks.", maxItems: 10)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["project", "title"]),
            outputSchema: Schema.wrapping("issue", Schema.issueOutput)),
        ToolDefinition(
            name: "update_issue", title: "Update issue", description: "Changes an issue's title, description or priority; returns the fields it set.",
            scope: Scope.issueUpdate, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue), ("title", Schema.string("New title.", minLength: 1, maxLength: 300)),
                    ("description", Schema.string("New description (Markdown).", maxLength: 50000, multiline: true)), ("priority", Schema.priority),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["issue"]),
            outputSchema: Schema.wrapping("issue", Schema.issueChangeOutput)),
        ToolDefinition(
            name: "update_issue_blocks", title: "Update issue blocks",
            description:
                "Sets structured blocks of an issue (Context, Acceptance criteria, Plan, Result, Notes); blocks not named are kept. Returns the blocks it set.",
            scope: Scope.issueUpdate, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue), ("blocks", Schema.array(Schema.block, description: "Blocks to set.", maxItems: 10)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["issue", "blocks"]),
            outputSchema: Schema.wrapping("issue", Schema.issueChangeOutput)),
        ToolDefinition(
            name: "move_issue", title: "Move issue", description: "Moves an issue to another state, by state name; returns the new state.",
            scope: Scope.issueMove, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue), ("state", Schema.string("Target state name, e.g. Done.", minLength: 1, maxLength: 100)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["issue", "state"]),
            outputSchema: Schema.wrapping("issue", Schema.issueChangeOutput)),
        ToolDefinition(
            name: "comment_issue", title: "Comment on issue", description: "Adds a comment to an issue, as this agent on behalf of its owner.",
            scope: Scope.issueComment, readOnly: false, idempotent: false,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue), ("body", Schema.string("Comment (Markdown).", minLength: 1, maxLength: 20000, multiline: true)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["issue", "body"]),
            outputSchema: Schema.wrapping("comment", Schema.commentOutput)),
        ToolDefinition(
            name: "set_issue_labels", title: "Set issue labels",
            description: "Replaces an issue's labels with the given label names; returns the new label set.",
            scope: Scope.issueLabel, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue),
                    ("labels", Schema.array(Schema.string("Label name.", maxLength: 100), description: "The complete label set.", maxItems: 20)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["issue", "labels"]),
            outputSchema: Schema.wrapping("issue", Schema.issueChangeOutput)),
        ToolDefinition(
            name: "assign_issue", title: "Assign issue",
            description: "Replaces an issue's assignees with the given project members (ids or names); returns the new assignee set.",
            scope: Scope.issueAssign, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("issue", Schema.issue),
                    (
                        "assignees",
                        Schema.array(Schema.string("Member id or name.", maxLength: 100), description: "The complete assignee set.", maxItems: 20)
                    ),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["issue", "assignees"]),
            outputSchema: Schema.wrapping("issue", Schema.issueChangeOutput)),
        ToolDefinition(
            name: "add_project_member", title: "Add existing member to project",
            description: "Adds a person who already belongs to the workspace to a project. It cannot invite or create anyone.",
            scope: Scope.projectMemberAddExisting, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("project", Schema.project), ("member", Schema.string("Workspace member id or name.", minLength: 1, maxLength: 100)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["project", "member"]),
            outputSchema: Schema.object(
                [("project", Schema.plainString), ("member", Schema.reference), ("alreadyMember", Schema.booleanValue)],
                required: ["project", "member", "alreadyMember"], closed: false)),
        ToolDefinition(
            name: "start_work_session", title: "Start work session",
            description: "Reports that the agent starts working in a project, optionally on one issue.",
            scope: Scope.reportWrite, readOnly: false, idempotent: false,
            inputSchema: Schema.object(
                [
                    ("project", Schema.project), ("issue", Schema.issue),
                    ("summary", Schema.string("What the agent is about to do.", minLength: 1, maxLength: 2000, multiline: true)),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["project", "summary"]),
            outputSchema: Schema.wrapping("workSession", Schema.workSessionOutput)),
        ToolDefinition(
            name: "update_work_session", title: "Update work session",
            description:
                "Adds a progress note to an active work session (at most 500 notes), optionally switching the issue being worked on; returns the note it added.",
            scope: Scope.reportWrite, readOnly: false, idempotent: false,
            inputSchema: Schema.object(
                [
                    ("workSession", Schema.string("Work session id (wks_…).", minLength: 1, maxLength: 64)),
                    ("note", Schema.string("Progress note.", minLength: 1, maxLength: 5000, multiline: true)), ("issue", Schema.issue),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["workSession", "note"]),
            outputSchema: Schema.wrapping("workSession", Schema.workSessionOutput)),
        ToolDefinition(
            name: "finish_work_session", title: "Finish work session", description: "Finishes a work session with a result summary.",
            scope: Scope.reportWrite, readOnly: false, idempotent: true,
            inputSchema: Schema.object(
                [
                    ("workSession", Schema.string("Work session id (wks_…).", minLength: 1, maxLength: 64)),
                    ("result", Schema.string("What was done.", minLength: 1, maxLength: 5000, multiline: true)),
                    ("status", Schema.string("How it ended (default completed).", values: ["completed", "abandoned"])),
                    ("idempotencyKey", Schema.idempotencyKey),
                ], required: ["workSession", "result"]),
            outputSchema: Schema.wrapping("workSession", Schema.workSessionOutput)),
    ]

    public static let byName: [String: ToolDefinition] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}

/// Input limits in words, made from the same numbers as the schema keywords so the two cannot
/// drift. Clients such as Codex drop the keywords and keep the descriptions.
enum LimitWords {
    /// `1 to 300 characters.`, `At most 100 characters.`, `At least 2 characters.`
    static func characters(minimum: Int?, maximum: Int?) -> String? {
        switch (minimum, maximum) {
        case (let minimum?, let maximum?): return "\(minimum) to \(maximum) characters."
        case (nil, let maximum?): return "At most \(maximum) characters."
        case (let minimum?, nil): return "At least \(minimum) character\(minimum == 1 ? "" : "s")."
        case (nil, nil): return nil
        }
    }

    /// `From 1 to 100.`
    static func range(minimum: Int, maximum: Int) -> String { "From \(minimum) to \(maximum)." }

    /// `At most 20 items, each at most 100 characters.`
    static func items(maximum: Int, eachAtMost itemLength: Int?) -> String {
        "At most \(maximum) items" + (itemLength.map { ", each at most \($0) characters" } ?? "") + "."
    }

    static func append(_ words: String?, to description: String) -> String {
        guard let words else { return description }
        return description + " " + words
    }
}
