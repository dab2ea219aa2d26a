/// Builds the JSON-RPC 2.0 messages our programs write themselves.
public enum JSONRPC {
    public static func result(id: JSONValue, _ result: JSONValue) -> JSONValue {
        ["jsonrpc": "2.0", "id": id, "result": result]
    }

    public static func error(id: JSONValue, code: Int, message: String, data: JSONValue? = nil) -> JSONValue {
        var error: JSONObject = ["code": .int(code), "message": .string(message)]
        if let data { error["data"] = data }
        return ["jsonrpc": "2.0", "id": id, "error": .object(error)]
    }

    /// An error answering a message whose id could not be read (a parse error, say). JSON-RPC 2.0
    /// and MCP up to 2025-06-18 write `"id": null`; from 2025-11-25 on, MCP forbids a null id and
    /// the error omits it instead.
    public static func errorWithoutID(code: Int, message: String, revision: ProtocolRevision?) -> JSONValue {
        let error: JSONValue = ["code": .int(code), "message": .string(message)]
        if let revision, revision >= .v2025_11_25 {
            return ["jsonrpc": "2.0", "error": error]
        }
        return ["jsonrpc": "2.0", "id": .null, "error": error]
    }

    public static func notification(method: String, params: JSONValue? = nil) -> JSONValue {
        var message: JSONObject = ["jsonrpc": "2.0", "method": .string(method)]
        if let params { message["params"] = params }
        return .object(message)
    }

    /// A tool result that reports a failure to the model instead of the protocol: the spec's way
    /// for errors the model can act on.
    public static func toolError(_ message: String) -> JSONValue {
        ["content": [["type": "text", "text": .string(message)]], "isError": true]
    }
}

/// A request id as the client sent it: a string or an integer (MCP forbids null and fractions, and
/// an answer that echoed `1.5` would itself break the schema).
public struct RequestKey: Hashable, Sendable {
    public let id: JSONValue
    public let text: String
    public init?(_ id: JSONValue) {
        switch id {
        case .string:
            break
        case .number(let number):
            // 7, -0, 12345678901234567890 as written; 1.0 and 1e3 are integers too (JSON Schema agrees).
            let literal = number.literal
            if literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
                guard let value = Double(literal), value.isFinite, value == value.rounded(.towardZero) else { return nil }
            }
        default:
            return nil
        }
        self.id = id
        self.text = id.jsonText
    }
}

/// What an incoming JSON-RPC message is, by the rules of JSON-RPC 2.0 and MCP.
public enum IncomingMessage {
    case request(id: RequestKey, method: String, params: JSONObject?)
    case notification(method: String, params: JSONObject?)
    case response
    case invalid(id: JSONValue, reason: String)
    case invalidParams(id: RequestKey, reason: String)

    public init(_ value: JSONValue) {
        guard let object = value.objectValue else {
            self = .invalid(id: .null, reason: "a JSON-RPC message must be an object")
            return
        }
        let rawID = object["id"]
        let usableID = rawID.flatMap(RequestKey.init)
        // A response (no method, a result or an error) is never answered, not even a malformed one:
        // an error with its id would read, to the client, as the answer to its own request of that id.
        if object["method"] == nil, object["result"] != nil || object["error"] != nil {
            self = .response
            return
        }
        guard object["jsonrpc"]?.stringValue == "2.0" else {
            self = .invalid(id: usableID?.id ?? .null, reason: "\"jsonrpc\" must be \"2.0\"")
            return
        }
        guard let methodValue = object["method"] else {
            self = .invalid(id: usableID?.id ?? .null, reason: "a request needs a \"method\"")
            return
        }
        guard let method = methodValue.stringValue else {
            self = .invalid(id: usableID?.id ?? .null, reason: "\"method\" must be a string")
            return
        }
        // An id that is present makes a request, whatever else is wrong with it.
        if rawID != nil, usableID == nil {
            self = .invalid(id: .null, reason: "\"id\" must be a string or an integer")
            return
        }
        var params: JSONObject?
        if let paramsValue = object["params"] {
            switch paramsValue {
            case .object(let object): params = object
            case .array:
                if let usableID {
                    self = .invalidParams(id: usableID, reason: "MCP params must be an object, not an array")
                    return
                }
                self = .notification(method: method, params: nil)
                return
            default:
                self = .invalid(id: usableID?.id ?? .null, reason: "\"params\" must be an object")
                return
            }
        }
        guard let usableID else {
            self = .notification(method: method, params: params)
            return
        }
        self = .request(id: usableID, method: method, params: params)
    }
}
