import AgentWire

/// A small, fast, seedable random number generator (SplitMix64): the same seed always gives the
/// same inputs, so a failure found by the generator is reproduced by its seed alone.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Writes hostile stdin sessions for the sidecar: valid MCP traffic of every revision mixed with
/// invalid UTF-8, truncated and giant lines, deep nesting, wrong types in every field, duplicate and
/// null ids, batches (allowed or not), notifications that carry ids, responses sent to the server.
struct HostileInputs {
    var random: SeededGenerator
    /// Ids used so far in this session, so that duplicates and cancellations hit real requests.
    var usedIDs: [JSONValue] = []
    /// The longest line it writes on purpose (giant lines are a little over the limit the harness uses).
    var giantLineBytes: Int

    init(seed: UInt64, giantLineBytes: Int = 2500) {
        random = SeededGenerator(seed: seed)
        self.giantLineBytes = giantLineBytes
    }

    static let methods = [
        "initialize", "ping", "tools/list", "tools/call", "server/discover", "logging/setLevel", "subscriptions/listen",
        "resources/list", "resources/read", "prompts/list", "prompts/get", "completion/complete", "notifications/initialized",
        "notifications/cancelled", "sampling/createMessage", "", "tools/call/", "TOOLS/LIST", "rpc.discover",
    ]
    static let toolNames = [
        "echo", "write", "plain", "hidden", "progress", "slow", "error", "fail", "cancel", "noresult", "scalar", "empty", "typed", "input",
        "unknown", "", "5",
    ]
    static let versions = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28", "2099-01-01", "", "2025-03-26 "]

    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }

    /// One session: a few lines, the first often an `initialize`.
    mutating func session(lines count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        if chance(70) {
            let version = chance(40) ? "2025-03-26" : pick(Self.versions)
            bytes += JSONValue.object(request(id: 0, method: "initialize", params: initializeParams(version: version))).serialized()
            bytes += lineEnd()
            if chance(80) { bytes += Array(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8) + lineEnd() }
        }
        for _ in 0..<count { bytes += line() + lineEnd() }
        if chance(10), let last = bytes.indices.last { bytes.removeSubrange(last...) }  // no newline before EOF
        return bytes
    }

    mutating func lineEnd() -> [UInt8] {
        switch Int.random(in: 0..<20, using: &random) {
        case 0: return [0x0D, 0x0A]
        case 1: return [0x0A, 0x0A]
        case 2: return [0x0A, 0x20, 0x09, 0x0A]
        default: return [0x0A]
        }
    }

    /// One line, possibly damaged.
    mutating func line() -> [UInt8] {
        let kind = Int.random(in: 0..<100, using: &random)
        var bytes: [UInt8]
        switch kind {
        case 0..<45: bytes = JSONValue.object(wellFormedRequest()).serialized()
        case 45..<55: bytes = JSONValue.object(notification()).serialized()
        case 55..<60: bytes = JSONValue.object(responseToServer()).serialized()
        case 60..<72: bytes = JSONValue.object(mistyped()).serialized()
        case 72..<80: bytes = batch().serialized()
        case 80..<84: bytes = deepNesting()
        case 84..<87: bytes = giantLine()
        case 87..<92: bytes = scalarOrJunk()
        default: bytes = JSONValue.object(wellFormedRequest()).serialized()
        }
        if chance(12) { bytes = damage(bytes) }
        return bytes
    }

    mutating func newID() -> JSONValue {
        if !usedIDs.isEmpty, chance(15) { return pick(usedIDs) }  // a duplicate
        let id: JSONValue =
            switch Int.random(in: 0..<10, using: &random) {
            case 0: .string("id-\(Int.random(in: 0..<1000, using: &random))")
            case 1: .string("")
            case 2: .number(JSONNumber(Double(Int.random(in: 0..<100, using: &random)) + 0.5))
            case 3: .int(-Int.random(in: 0..<100, using: &random))
            case 4: .string("ünïcødé \u{1F600} \"quoted\"\n")
            default: .int(Int.random(in: 1..<100_000, using: &random))
            }
        usedIDs.append(id)
        return id
    }

    func request(id: JSONValue, method: String, params: JSONValue?) -> JSONObject {
        var object: JSONObject = ["jsonrpc": "2.0", "id": id, "method": .string(method)]
        if let params { object["params"] = params }
        return object
    }

    mutating func initializeParams(version: String) -> JSONValue {
        ["protocolVersion": .string(version), "capabilities": [:], "clientInfo": ["name": "hostile", "version": "1"]]
    }

    mutating func modernMeta() -> JSONValue {
        [
            "io.modelcontextprotocol/protocolVersion": .string(chance(85) ? "2026-07-28" : pick(Self.versions)),
            "io.modelcontextprotocol/clientCapabilities": [:], "io.modelcontextprotocol/clientInfo": ["name": "hostile", "version": "1"],
            "progressToken": chance(50) ? .int(Int.random(in: 0..<10, using: &random)) : "p",
        ]
    }

    mutating func wellFormedRequest() -> JSONObject {
        let method = chance(85) ? pick(Array(Self.methods.prefix(12))) : pick(Self.methods)
        var params: JSONObject = [:]
        switch method {
        case "initialize": params = initializeParams(version: pick(Self.versions)).objectValue!
        case "tools/call":
            params["name"] = .string(pick(Self.toolNames))
            params["arguments"] = chance(80) ? ["text": "hello", "n": 1, "nested": [1, ["a": nil]]] : randomValue(depth: 3)
        case "logging/setLevel": params["level"] = .string(pick(["debug", "info", "error", "loud", ""]))
        case "subscriptions/listen": params["notifications"] = chance(80) ? ["toolsListChanged": true] : randomValue(depth: 1)
        case "resources/read": params["uri"] = "memory://a"
        case "prompts/get": params["name"] = "p"
        default: break
        }
        if chance(35) { params["_meta"] = modernMeta() }
        return request(id: newID(), method: method, params: params.isEmpty && chance(50) ? nil : .object(params))
    }

    mutating func notification() -> JSONObject {
        var object: JSONObject = ["jsonrpc": "2.0"]
        switch Int.random(in: 0..<5, using: &random) {
        case 0, 1:
            object["method"] = "notifications/cancelled"
            let target = usedIDs.isEmpty || chance(10) ? newID() : pick(usedIDs)
            object["params"] = ["requestId": target, "reason": "changed my mind"]
        case 2: object["method"] = "notifications/initialized"
        case 3: object["method"] = "notifications/progress"
        default: object["method"] = .string(pick(Self.methods))
        }
        // A notification that carries an id is a request.
        if chance(15) { object["id"] = chance(50) ? newID() : .null }
        return object
    }

    mutating func responseToServer() -> JSONObject {
        var object: JSONObject = ["id": chance(80) ? newID() : .null]
        if chance(80) { object["jsonrpc"] = "2.0" }
        if chance(50) { object["result"] = randomValue(depth: 2) } else { object["error"] = ["code": -1, "message": "no"] }
        return object
    }

    /// A request with one field of the wrong type (or missing).
    mutating func mistyped() -> JSONObject {
        var object = wellFormedRequest()
        let field = pick(["jsonrpc", "id", "method", "params", "params.name", "params.arguments", "params._meta", "params.protocolVersion"])
        let wrong: JSONValue? = chance(20) ? nil : randomValue(depth: 1)
        if field.hasPrefix("params.") {
            var params = object["params"]?.objectValue ?? [:]
            params[String(field.dropFirst("params.".count))] = wrong ?? .null
            object["params"] = .object(params)
        } else {
            object[field] = wrong
        }
        if chance(10) {
            object.members.append(JSONObject.Member(key: "id", value: newID()))  // a duplicate key
        }
        return object
    }

    mutating func batch() -> JSONValue {
        let count = chance(10) ? 0 : Int.random(in: 1...6, using: &random)
        var members: [JSONValue] = []
        for _ in 0..<count {
            switch Int.random(in: 0..<10, using: &random) {
            case 0: members.append(.object(notification()))
            case 1: members.append(.object(responseToServer()))
            case 2: members.append(.object(mistyped()))
            case 3: members.append(randomValue(depth: 2))
            default: members.append(.object(wellFormedRequest()))
            }
        }
        return .array(members)
    }

    mutating func deepNesting() -> [UInt8] {
        let depth = pick([200, 255, 256, 257, 300, 1000, 2040])
        let (open, close): (String, String) = chance(60) ? ("[", "]") : ("{\"\":", "}")
        let inner = String(repeating: open, count: depth) + "1" + String(repeating: close, count: depth)
        if chance(50) { return Array(inner.utf8) }
        return Array(
            #"{"jsonrpc":"2.0","id":\#(Int.random(in: 1..<1000, using: &random)),"method":"tools/call","params":{"name":"echo","arguments":{"x":\#(inner)}}}"#
                .utf8)
    }

    mutating func giantLine() -> [UInt8] {
        let size = pick([giantLineBytes - 200, giantLineBytes, giantLineBytes * 2])
        let text = String(repeating: "x", count: max(0, size))
        return JSONValue.object(request(id: newID(), method: "tools/call", params: ["name": "echo", "arguments": ["t": .string(text)]]))
            .serialized()
    }

    mutating func scalarOrJunk() -> [UInt8] {
        pick(
            [
                "null", "true", "5", "\"x\"", "{}", "[]", "[[]]", "{\"jsonrpc\":\"2.0\"}", "\u{FEFF}{}", "{\"jsonrpc\":\"2.0\",\"id\":1,}",
                "{\"a\":1}{\"b\":2}", "\"\\ud800\"", "1e999999", "-0", "0001", "[1,]", "{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":\"\\u0000\"}",
                "\t\r", "\u{2028}",
            ].map { Array($0.utf8) })
    }

    /// Breaks a line: truncation, invalid UTF-8, a stray byte, a raw control character.
    mutating func damage(_ bytes: [UInt8]) -> [UInt8] {
        guard !bytes.isEmpty else { return [0xFF] }
        var bytes = bytes
        let at = Int.random(in: 0..<bytes.count, using: &random)
        switch Int.random(in: 0..<6, using: &random) {
        case 0: bytes.removeSubrange(at...)
        case 1: bytes.insert(contentsOf: pick([[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]]), at: at)
        case 2: bytes[at] = UInt8.random(in: 0...255, using: &random)
        case 3: bytes.insert(contentsOf: [0x00], at: at)
        case 4: bytes.insert(0x0D, at: at)
        default: bytes += bytes.prefix(Int.random(in: 0..<bytes.count, using: &random))
        }
        return bytes
    }

    mutating func randomValue(depth: Int) -> JSONValue {
        let choice = Int.random(in: 0..<(depth > 0 ? 9 : 6), using: &random)
        switch choice {
        case 0: return .null
        case 1: return .bool(chance(50))
        case 2: return .number(JSONNumber(validatedNumber: pick(["0", "-1", "1.5e3", "123456789012345678901234567890", "1E-400", "2"])))
        case 3: return .string(pick(["", "x", "2.0", "\u{0000}", "\u{FFFF}", "tools/call", "\u{1F600}"]))
        case 4: return .int(Int.random(in: -5..<5, using: &random))
        case 5: return .string("2.0")
        case 6: return .array((0..<Int.random(in: 0..<3, using: &random)).map { _ in randomValue(depth: depth - 1) })
        default:
            var object = JSONObject()
            for key in ["name", "id", "jsonrpc", "method", "params"].prefix(Int.random(in: 0..<4, using: &random)) {
                object[key] = randomValue(depth: depth - 1)
            }
            return .object(object)
        }
    }
}

extension JSONNumber {
    /// A literal that is valid JSON number text (the generator only uses such).
    init(validatedNumber literal: String) {
        self = (try? JSONParser.parse(literal))?.numberValue ?? JSONNumber(0)
    }
}

extension JSONValue {
    var numberValue: JSONNumber? {
        if case .number(let number) = self { return number }
        return nil
    }
}
