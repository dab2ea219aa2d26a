import AgentWire
import Hummingbird

/// Compact JSON-RPC 2.0 envelopes, written straight to bytes (the benchmarks' hot path); the
/// envelope's shape is AgentWire's `JSONRPC`.
enum JSONRPCBytes {
    static func result(id: JSONValue, _ result: JSONValue) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(256)
        output.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        JSONSerializer.write(id, into: &output)
        output.append(contentsOf: #","result":"#.utf8)
        JSONSerializer.write(result, into: &output)
        output.append(UInt8(ascii: "}"))
        return output
    }

    static func error(id: JSONValue?, _ failure: ProtocolFailure) -> [UInt8] {
        var error: JSONObject = ["code": .int(failure.code), "message": .string(failure.message)]
        if let data = failure.data { error["data"] = data }
        var output: [UInt8] = []
        output.append(contentsOf: #"{"jsonrpc":"2.0","id":"#.utf8)
        JSONSerializer.write(id ?? .null, into: &output)
        output.append(contentsOf: #","error":"#.utf8)
        JSONSerializer.write(.object(error), into: &output)
        output.append(UInt8(ascii: "}"))
        return output
    }

    static func notification(method: String, params: JSONValue?) -> [UInt8] {
        JSONRPC.notification(method: method, params: params).serialized()
    }
}

/// A request the fixture refuses at the protocol level: the HTTP status and the JSON-RPC error.
struct ProtocolFailure: Error {
    var status: HTTPResponse.Status = .ok
    let code: Int
    let message: String
    var data: JSONValue? = nil
    /// Extra response headers (for example `Allow` on 405).
    var headers: HTTPFields = [:]

    static func parseError(_ detail: String) -> ProtocolFailure {
        ProtocolFailure(status: .badRequest, code: JSONRPCErrorCode.parseError, message: "Parse error: \(detail); send one JSON-RPC message per POST")
    }
    static func invalidRequest(_ message: String, status: HTTPResponse.Status = .badRequest) -> ProtocolFailure {
        ProtocolFailure(status: status, code: JSONRPCErrorCode.invalidRequest, message: message)
    }
    static func methodNotFound(_ method: String, status: HTTPResponse.Status = .ok) -> ProtocolFailure {
        ProtocolFailure(status: status, code: JSONRPCErrorCode.methodNotFound, message: "Method not found: \(method)")
    }
    static func invalidParams(_ message: String) -> ProtocolFailure {
        ProtocolFailure(code: JSONRPCErrorCode.invalidParams, message: message)
    }
    static func headerMismatch(_ message: String) -> ProtocolFailure {
        ProtocolFailure(status: .badRequest, code: -32020, message: "Header mismatch: \(message)")
    }
    static func unsupportedVersion(requested: String, message: String? = nil) -> ProtocolFailure {
        ProtocolFailure(
            status: .badRequest, code: JSONRPCErrorCode.unsupportedProtocolVersion,
            message: message ?? "Unsupported protocol version \(requested); this server supports \(ProtocolVersions.modern.joined(separator: ", "))",
            data: ["supported": .array(ProtocolVersions.modern.map(JSONValue.string)), "requested": .string(requested)])
    }
}

/// The fixture's own list of MCP revisions, kept apart from AgentWire's `ProtocolRevision` on
/// purpose: it is the independent oracle the sidecar's negotiation is tested against.
enum ProtocolVersions {
    static let legacy = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
    static let modern = ["2026-07-28"]
    static let modernVersion = "2026-07-28"
}

/// Server-Sent Events framing: one `message` event per JSON-RPC message.
enum SSE {
    static func frame(_ json: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(json.count + 24)
        buffer.writeString("event: message\ndata: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }

    static let keepalive = ByteBuffer(string: ": keepalive\n\n")
}

/// HTTP responses the fixture sends.
enum Reply {
    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static var streamHeaders: HTTPFields {
        [.contentType: "text/event-stream", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"]
    }

    /// A complete SSE body (known length): the frames, then the end of the stream.
    static func sse(_ messages: [[UInt8]], headers: HTTPFields = [:]) -> Response {
        var fields = streamHeaders
        fields.append(contentsOf: headers)
        var buffer = ByteBuffer()
        for message in messages {
            var frame = SSE.frame(message)
            buffer.writeBuffer(&frame)
        }
        return Response(status: .ok, headers: fields, body: ResponseBody(byteBuffer: buffer))
    }

    static func empty(_ status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
        Response(status: status, headers: headers, body: ResponseBody())
    }

    static func failure(_ failure: ProtocolFailure, id: JSONValue?) -> Response {
        json(JSONRPCBytes.error(id: id, failure), status: failure.status, headers: failure.headers)
    }
}
