import AgentWire
import GRDB

// Rows decoded by hand for the records every tool call reads. GRDB's Codable decoding, with
// Foundation's JSONDecoder for the JSON columns, was 8 % of a read call's CPU time under wrk
// (docs/benchmarks.md); these read each column by name and parse JSON columns with AgentWire's
// parser. Writes still encode through Codable.

extension UserRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], name: row["name"], blockedAt: row["blockedAt"], createdAt: row["createdAt"], role: row["role"] ?? UserRole.owner.rawValue,
            agentsEntitled: row["agentsEntitled"] ?? true)
    }
}

extension ProjectRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], key: row["key"], name: row["name"], description: row["description"], nextIssueNumber: row["nextIssueNumber"],
            createdAt: row["createdAt"])
    }
}

extension StateRecord {
    public init(row: Row) throws {
        self.init(id: row["id"], projectID: row["projectID"], name: row["name"], category: row["category"], position: row["position"])
    }
}

extension LabelRecord {
    public init(row: Row) throws {
        self.init(id: row["id"], projectID: row["projectID"], name: row["name"], color: row["color"])
    }
}

extension CommentRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], issueID: row["issueID"], authorUserID: row["authorUserID"], authorAgentID: row["authorAgentID"], body: row["body"],
            createdAt: row["createdAt"])
    }
}

extension IssueRecord {
    public init(row: Row) throws {
        let blocks = try JSONColumn.array(row["blocks"]).map { item -> IssueBlock in
            guard let name = item["name"]?.stringValue, let text = item["text"]?.stringValue else {
                throw JSONColumn.Invalid(column: "issue.blocks")
            }
            return IssueBlock(name: name, text: text)
        }
        self.init(
            id: row["id"], projectID: row["projectID"], number: row["number"], title: row["title"], description: row["description"],
            priority: row["priority"], stateID: row["stateID"], labelIDs: try JSONColumn.strings(row["labelIDs"]),
            assigneeIDs: try JSONColumn.strings(row["assigneeIDs"]), blocks: blocks, createdByUserID: row["createdByUserID"],
            createdByAgentID: row["createdByAgentID"], createdAt: row["createdAt"], updatedAt: row["updatedAt"])
    }
}

extension SessionRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], deviceID: row["deviceID"], tokenHash: row["tokenHash"], createdAt: row["createdAt"], expiresAt: row["expiresAt"],
            endedAt: row["endedAt"])
    }
}

extension DeviceRecord {
    public init(row: Row) throws {
        self.init(
            id: row["id"], agentID: row["agentID"], name: row["name"], publicKey: row["publicKey"], createdAt: row["createdAt"],
            revokedAt: row["revokedAt"])
    }
}

extension AgentRecord {
    public init(row: Row) throws {
        self.init(id: row["id"], ownerID: row["ownerID"], name: row["name"], createdAt: row["createdAt"], revokedAt: row["revokedAt"])
    }
}

extension GrantRecord {
    public init(row: Row) throws {
        self.init(agentID: row["agentID"], projectKey: row["projectKey"], scopes: try JSONColumn.strings(row["scopes"]))
    }
}

/// JSON text columns (arrays of ids, blocks), as GRDB's Codable encoding writes them.
enum JSONColumn {
    struct Invalid: Error, CustomStringConvertible {
        let column: String
        var description: String { "the JSON in column \(column) is not what the gateway wrote" }
    }

    static func array(_ text: String?) throws -> [JSONValue] {
        guard let text else { return [] }
        guard let array = (try? JSONValue(parsing: Array(text.utf8)))?.arrayValue else { throw Invalid(column: "a list") }
        return array
    }

    static func strings(_ text: String?) throws -> [String] {
        try array(text).map { item in
            guard let string = item.stringValue else { throw Invalid(column: "a list of strings") }
            return string
        }
    }
}
