import AgentWire

/// Judges one run: reads the input the way JSON-RPC defines it (independently of the sidecar's own
/// classification) and checks what came out on stdout.
///
/// Invariants:
/// * stdout is whole lines of valid UTF-8 JSON, each a JSON-RPC response, a notification, or (for
///   a batch) an array of responses; nothing else, no blank line, no partial frame.
/// * every request is answered exactly once, with its own id: a request that a later
///   `notifications/cancelled` names may go unanswered, nothing is answered twice, and no id is
///   invented. A response the client sends to the server is never answered.
/// * a reply to a batch member comes inside a batch array, never on a line of its own.
/// * an error that cannot name its request (unparsable line, oversized line, refused batch,
///   invalid message without a usable id) is one id-less error per such line.
struct ReplyOracle {
    struct Violation: Error, CustomStringConvertible {
        let description: String
    }

    /// What the input asks for.
    struct Expectation {
        /// Replies owed with this id (by `JSONValue.jsonText`), to messages on lines of their own.
        var topLevel: [String: Int] = [:]
        /// Replies owed with this id inside batch arrays (if the batch is accepted).
        var inBatches: [String: Int] = [:]
        /// How many `notifications/cancelled` name this id.
        var cancellations: [String: Int] = [:]
        /// Lines that must each get exactly one id-less error.
        var idlessRequired = 0
        /// Lines that may get one id-less error (messages the spec lets a server ignore, and batches,
        /// which get either an error or an array).
        var idlessOptional = 0
        /// Non-empty batch lines.
        var batches = 0
        /// Batches with at least one member that is owed a reply.
        var batchesOwingReplies = 0
        /// Batches owed nothing for sure, but with a member that may get an id-less error.
        var batchesMaybeOwingReplies = 0
        /// Whether a line other than a batch may or may not get an id-less error.
        var hasOptionalSingles = false
    }

    /// How one message is owed a reply.
    enum Owed {
        case reply(String)
        case idlessError
        case maybeIdlessError
        case nothing
    }

    static func classify(_ value: JSONValue, cancellations: inout [String: Int]) -> Owed {
        guard let object = value.objectValue else { return .idlessError }
        let usableID = object["id"].flatMap(usable)
        if let method = object["method"] {
            if object["id"] != nil { return usableID.map(Owed.reply) ?? .idlessError }
            let params = object["params"]
            if method.stringValue == "notifications/cancelled", let requestID = params?["requestId"].flatMap(usable) {
                cancellations[requestID, default: 0] += 1
            }
            let wellFormed = object["jsonrpc"] == "2.0" && method.stringValue != nil && (params == nil || params?.objectValue != nil)
            return wellFormed ? .nothing : .maybeIdlessError
        }
        // No method: a response to the server (never answered), or junk.
        if object["result"] != nil || object["error"] != nil { return .nothing }
        return usableID.map(Owed.reply) ?? .idlessError
    }

    /// MCP request ids are strings or integers; 1.0 and 1e3 count as integers (JSON Schema says so).
    static func usable(_ id: JSONValue) -> String? {
        switch id {
        case .string: return id.jsonText
        case .number(let number):
            if !number.literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return id.jsonText }
            guard let value = Double(number.literal), value.isFinite, value == value.rounded(.towardZero) else { return nil }
            return id.jsonText
        default: return nil
        }
    }

    /// Reads the input as the framer's contract says: lines split at LF, one trailing CR dropped,
    /// blank lines skipped, lines over the limit oversized.
    static func expectation(for input: [UInt8], maximumLineBytes: Int) -> Expectation {
        var expectation = Expectation()
        var lines = input.isEmpty ? [] : input.split(separator: 0x0A, omittingEmptySubsequences: false)
        if input.last == 0x0A { lines.removeLast() }
        for rawLine in lines {
            if rawLine.count > maximumLineBytes {
                expectation.idlessRequired += 1
                continue
            }
            var line = rawLine
            if line.last == 0x0D { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard let value = try? JSONParser.parse(Array(line)) else {
                expectation.idlessRequired += 1
                continue
            }
            if case .array(let members) = value {
                guard !members.isEmpty else {
                    expectation.idlessRequired += 1
                    continue
                }
                expectation.batches += 1
                expectation.idlessOptional += 1
                var owesReplies = false
                var mayOweReplies = false
                for member in members {
                    switch classify(member, cancellations: &expectation.cancellations) {
                    case .reply(let id):
                        expectation.inBatches[id, default: 0] += 1
                        owesReplies = true
                    case .idlessError: owesReplies = true
                    case .maybeIdlessError: mayOweReplies = true
                    case .nothing: break
                    }
                }
                if owesReplies {
                    expectation.batchesOwingReplies += 1
                } else if mayOweReplies {
                    expectation.batchesMaybeOwingReplies += 1
                }
                continue
            }
            switch classify(value, cancellations: &expectation.cancellations) {
            case .reply(let id): expectation.topLevel[id, default: 0] += 1
            case .idlessError: expectation.idlessRequired += 1
            case .maybeIdlessError:
                expectation.idlessOptional += 1
                expectation.hasOptionalSingles = true
            case .nothing: break
            }
        }
        return expectation
    }

    /// What came out.
    struct Observation {
        var topLevel: [String: Int] = [:]
        var inBatches: [String: Int] = [:]
        var idless = 0
        var batchArrays = 0
    }

    /// Checks the output of one run against the input; returns every broken invariant.
    static func check(input: [UInt8], output: [UInt8], maximumLineBytes: Int) -> [Violation] {
        var violations: [Violation] = []
        func fail(_ text: String) { violations.append(Violation(description: text)) }

        if !output.isEmpty, output.last != 0x0A { fail("stdout does not end with a newline: a partial frame") }
        var observation = Observation()
        var lines = output.isEmpty ? [] : output.split(separator: 0x0A, omittingEmptySubsequences: false)
        if output.last == 0x0A { lines.removeLast() }
        for (number, line) in lines.enumerated() {
            let shown = String(decoding: line.prefix(300), as: UTF8.self)
            guard !line.isEmpty else {
                fail("stdout line \(number + 1) is empty")
                continue
            }
            guard String(validating: line, as: UTF8.self) != nil else {
                fail("stdout line \(number + 1) is not valid UTF-8: \(shown)")
                continue
            }
            // Replies may nest deeper than requests (a result wraps the arguments it echoes).
            guard let value = try? JSONParser.parse(Array(line), maximumDepth: 4096) else {
                fail("stdout line \(number + 1) is not JSON: \(shown)")
                continue
            }
            switch value {
            case .array(let items):
                observation.batchArrays += 1
                if items.isEmpty { fail("stdout line \(number + 1) is an empty batch array") }
                for item in items {
                    switch checkResponse(item) {
                    case .success(let id?): observation.inBatches[id, default: 0] += 1
                    case .success(nil): break
                    case .failure(let problem): fail("stdout line \(number + 1), batch member: \(problem): \(shown)")
                    }
                }
            case .object(let object) where object["method"] != nil:
                if let problem = checkNotification(object) { fail("stdout line \(number + 1): \(problem): \(shown)") }
            case .object:
                switch checkResponse(value) {
                case .success(let id?): observation.topLevel[id, default: 0] += 1
                case .success(nil): observation.idless += 1
                case .failure(let problem): fail("stdout line \(number + 1): \(problem): \(shown)")
                }
            default:
                fail("stdout line \(number + 1) is neither an object nor a batch array: \(shown)")
            }
        }

        let expected = expectation(for: input, maximumLineBytes: maximumLineBytes)
        for id in Set(expected.topLevel.keys).union(observation.topLevel.keys).sorted() {
            let owed = expected.topLevel[id] ?? 0
            let got = observation.topLevel[id] ?? 0
            let mayMiss = expected.cancellations[id] ?? 0
            if got > owed {
                let where_ = (expected.inBatches[id] ?? 0) > 0 ? " (a batch member's reply escaped its batch?)" : ""
                fail("id \(id): \(got) replies on their own line, but \(owed) request(s) owed one\(where_)")
            } else if got < owed - mayMiss {
                fail("id \(id): \(owed) request(s) on their own line, \(got) answered (\(mayMiss) cancellation(s))")
            }
        }
        for (id, got) in observation.inBatches.sorted(by: { $0.key < $1.key }) where got > (expected.inBatches[id] ?? 0) {
            fail("id \(id): \(got) replies inside batch arrays, but \(expected.inBatches[id] ?? 0) batch member(s) owed one")
        }
        if observation.batchArrays > expected.batches {
            fail("\(observation.batchArrays) batch arrays on stdout for \(expected.batches) batch line(s)")
        }
        if observation.idless < expected.idlessRequired || observation.idless > expected.idlessRequired + expected.idlessOptional {
            fail(
                "\(observation.idless) id-less errors; expected \(expected.idlessRequired) (plus up to \(expected.idlessOptional) for batches and ignorable messages)"
            )
        }
        // When no single message may or may not get an error, the id-less errors beyond the required
        // ones are exactly the refused batches; if none was refused, every batch owes its array.
        if !expected.hasOptionalSingles, expected.cancellations.isEmpty, observation.idless == expected.idlessRequired {
            let fewest = expected.batchesOwingReplies
            let most = fewest + expected.batchesMaybeOwingReplies
            if observation.batchArrays < fewest || observation.batchArrays > most {
                fail(
                    "no batch was refused, yet \(observation.batchArrays) batch arrays came back for \(fewest) batch(es) owing replies (and \(most - fewest) that may)"
                )
            }
            for (id, owed) in expected.inBatches.sorted(by: { $0.key < $1.key }) where (observation.inBatches[id] ?? 0) != owed {
                fail("id \(id): \(owed) batch member(s) owed a reply, \(observation.inBatches[id] ?? 0) came back in batch arrays")
            }
        }
        return violations
    }

    /// A JSON-RPC response: `jsonrpc`, exactly one of `result` (an object) and `error` (integer
    /// code, string message); returns its id, or nil for an error that names no request.
    static func checkResponse(_ value: JSONValue) -> Result<String?, Violation> {
        guard let object = value.objectValue else { return .failure(Violation(description: "not an object")) }
        guard object["jsonrpc"] == "2.0" else { return .failure(Violation(description: "\"jsonrpc\" is not \"2.0\"")) }
        if object["method"] != nil { return .failure(Violation(description: "a request or notification where a response belongs")) }
        let result = object["result"]
        let error = object["error"]
        guard (result == nil) != (error == nil) else {
            return .failure(Violation(description: "a response needs exactly one of \"result\" and \"error\""))
        }
        if let result, result.objectValue == nil { return .failure(Violation(description: "\"result\" is not an object")) }
        if let error {
            guard let code = error["code"], case .number(let number) = code, Int(number.literal) != nil else {
                return .failure(Violation(description: "error code is not an integer"))
            }
            guard error["message"]?.stringValue != nil else { return .failure(Violation(description: "error message is not a string")) }
        }
        switch object["id"] {
        case let id? where usable(id) != nil: return .success(usable(id))
        case nil, .null?:
            if error == nil { return .failure(Violation(description: "a result without an id")) }
            return .success(nil)
        default: return .failure(Violation(description: "id is neither a string nor an integer"))
        }
    }

    static func checkNotification(_ object: JSONObject) -> String? {
        guard object["jsonrpc"] == "2.0" else { return "\"jsonrpc\" is not \"2.0\"" }
        guard object["method"]?.stringValue != nil else { return "\"method\" is not a string" }
        if object["id"] != nil { return "the sidecar sent a request to its client (it offers none)" }
        if let params = object["params"], params.objectValue == nil { return "\"params\" is not an object" }
        return nil
    }
}
