import AgentWire
import Synchronization

/// What handling one request produces for the client.
enum Reply: Sendable {
    case value(JSONValue)
    /// A complete message, already serialized with the client's id.
    case frame([UInt8])
    /// Nothing to send now (an open subscription).
    case deferred

    /// The line to write (without its newline), or nil for `.deferred`.
    var frame: [UInt8]? {
        switch self {
        case .value(let value): value.serialized()
        case .frame(let bytes): bytes
        case .deferred: nil
        }
    }
}

/// How replies become lines on stdout: the upstream's response relayed as bytes with the client's
/// id spliced in, one line per message, and a batch's replies gathered into one array.
///
/// Upstream messages are validated once on arrival (`UpstreamMessage`), so framing never parses a
/// result into a tree: unknown fields pass through byte for byte, and a multi-megabyte result is
/// neither copied twice nor rebuilt.
enum ResponseFraming {
    /// Builds the client's response from the upstream's, touching only what must change: the id,
    /// and the fields a revision requires that the other era's upstream does not send.
    ///
    /// - Parameter modern: Whether the request was made in a stateless (2026-07-28) revision: its
    ///   result then needs `resultType`, and only it can carry `input_required`.
    static func relay(_ response: UpstreamMessage, to id: RequestKey, modern: Bool) -> Reply {
        if let error = response.raw("error") {
            return .frame(compose(id: id, member: "error", value: error))
        }
        guard let result = response.raw("result") else {
            return .value(
                JSONRPC.error(id: id.id, code: JSONRPCErrorCode.internalError, message: "the upstream sent a response with neither result nor error"))
        }
        guard result.first == UInt8(ascii: "{") else {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.internalError,
                    message: "the upstream's result is not an object; report it to the upstream's operator"))
        }
        let resultType = topLevelMember("resultType", in: result)
        if modern, resultType == nil {
            var spliced: [UInt8] = Array(#"{"resultType":"complete""#.utf8)
            let rest = result.dropFirst()
            if rest.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) != UInt8(ascii: "}") {
                spliced.append(UInt8(ascii: ","))
            }
            spliced.append(contentsOf: rest)
            return .frame(compose(id: id, member: "result", value: spliced[...]))
        }
        if !modern, let resultType, (try? JSONParser.parse(resultType))?.stringValue == "input_required" {
            return .value(
                JSONRPC.error(
                    id: id.id, code: JSONRPCErrorCode.internalError,
                    message:
                        "the upstream needs more input to finish this call, which this client's protocol revision cannot carry; use a 2026-07-28 client"
                ))
        }
        return .frame(compose(id: id, member: "result", value: result))
    }

    /// The raw value of a top-level member of a JSON object, found in place: a multi-megabyte
    /// result is neither copied nor parsed into a tree to read one small member.
    static func topLevelMember(_ key: String, in object: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        object.withUnsafeBufferPointer { buffer -> ArraySlice<UInt8>? in
            guard let layout = try? JSONObjectLayout.scan(buffer), let member = layout.member(key) else { return nil }
            let range = member.valueRange
            return object[(object.startIndex + range.lowerBound)..<(object.startIndex + range.upperBound)]
        }
    }

    /// `{"jsonrpc":"2.0","id":ID,"MEMBER":VALUE}` with `value` copied as it is, minus raw CR/LF.
    static func compose(id: RequestKey, member: String, value: ArraySlice<UInt8>) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(value.count + id.text.utf8.count + 40)
        frame.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        frame.append(contentsOf: id.text.utf8)
        frame.append(contentsOf: ",\"\(member)\":".utf8)
        appendCompacted(value, to: &frame)
        frame.append(UInt8(ascii: "}"))
        return frame
    }

    /// A message of the upstream's (a notification) as one line.
    static func compacted(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        appendCompacted(bytes, to: &output)
        return output
    }

    /// Appends JSON without raw CR/LF bytes. In valid JSON (the upstream's messages are validated
    /// on arrival) those bytes can only be whitespace between tokens, so dropping them is safe.
    static func appendCompacted(_ bytes: ArraySlice<UInt8>, to output: inout [UInt8]) {
        guard bytes.contains(where: { $0 == 0x0A || $0 == 0x0D }) else {
            output.append(contentsOf: bytes)
            return
        }
        for byte in bytes where byte != 0x0A && byte != 0x0D { output.append(byte) }
    }

    /// One JSON array of whole messages, in the order given: a batch's answer.
    static func batchArray(_ frames: [[UInt8]]) -> [UInt8] {
        var line: [UInt8] = [UInt8(ascii: "[")]
        for (index, frame) in frames.enumerated() {
            if index > 0 { line.append(UInt8(ascii: ",")) }
            line.append(contentsOf: frame)
        }
        line.append(UInt8(ascii: "]"))
        return line
    }
}

/// Where the replies of one batch's members go: gathered, then written as one array once the
/// last member that expects a reply has one (or was cancelled). A batch whose members all came to
/// nothing writes nothing.
final class BatchCollector: Sendable {
    let pending: Mutex<(expected: Int, frames: [[UInt8]])>
    let writer: StdoutWriter

    init(expected: Int, writer: StdoutWriter) {
        self.pending = Mutex((expected, []))
        self.writer = writer
    }

    /// One member's reply, or nil for a member that gets none (cancelled).
    func deliver(_ frame: [UInt8]?) {
        let complete: [[UInt8]]? = pending.withLock { state in
            if let frame { state.frames.append(frame) }
            state.expected -= 1
            return state.expected == 0 ? state.frames : nil
        }
        guard let complete, !complete.isEmpty else { return }
        writer.send(ResponseFraming.batchArray(complete))
    }
}
