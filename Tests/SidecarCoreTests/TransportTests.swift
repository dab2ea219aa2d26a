import AgentWire
import Dispatch
import Foundation
import Synchronization
import Testing

@testable import CurlHTTP
@testable import SidecarCore

#if canImport(Glibc)
import Glibc
#endif

@Suite struct LineFramerTests {
    func frame(_ chunks: [String], maximum: Int = 1024) -> [String] {
        var framer = LineFramer(maximumLineBytes: maximum)
        var events: [String] = []
        let emit: (StdinEvent) -> Void = { event in
            switch event {
            case .line(let bytes): events.append(String(decoding: bytes, as: UTF8.self))
            case .oversized(let count): events.append("<oversized \(count)>")
            case .endOfInput: events.append("<eof>")
            }
        }
        for chunk in chunks {
            Array(chunk.utf8).withUnsafeBytes { framer.append($0, emit: emit) }
        }
        framer.finish(emit: emit)
        return events
    }

    @Test func splitsLinesAcrossChunksAndStripsCarriageReturns() {
        #expect(frame(["{\"a\":1}\n{\"b\"", ":2}\r\n", "\n  \n{\"c\":3}"]) == ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"])
    }

    @Test func oversizedLineIsReportedAndReadingResumes() {
        let events = frame([String(repeating: "x", count: 50), String(repeating: "y", count: 50) + "\nok\n"], maximum: 64)
        #expect(events == ["<oversized 100>", "ok"])
    }

    @Test func manyLinesInOneChunk() {
        let lines = (0..<1000).map { "{\"id\":\($0)}" }
        #expect(frame([lines.joined(separator: "\n") + "\n"]) == lines)
    }
}

@Suite struct ServerSentEventDecoderTests {
    func decode(_ chunks: [String]) throws -> [ServerSentEvent] {
        var decoder = ServerSentEventDecoder()
        var events: [ServerSentEvent] = []
        for chunk in chunks { try decoder.feed(Array(chunk.utf8)) { events.append($0) } }
        return events
    }

    @Test func lfAndCrlfFramingWithSplitChunks() throws {
        let events = try decode(["event: message\r", "\ndata: {\"a\":", "1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\n"])
        #expect(events.count == 2)
        #expect(events[0] == ServerSentEvent(event: "message", data: Array("{\"a\":1}".utf8)))
        #expect(events[1].data == Array("x\ny".utf8))
        #expect(events[1].event == "message")
    }

    @Test func bareCarriageReturnsEndLines() throws {
        let events = try decode(["data: one\r\rdata: two\r", "\r"])
        #expect(events.map { String(decoding: $0.data, as: UTF8.self) } == ["one", "two"])
    }

    @Test func namedEventsAndNoSpaceAfterColon() throws {
        let events = try decode(["event:ping\ndata:1\n\n"])
        #expect(events == [ServerSentEvent(event: "ping", data: Array("1".utf8))])
    }
}

@Suite struct UpstreamURLTests {
    @Test func loopbackHostsAllowPlainHTTP() throws {
        for text in ["http://127.0.0.1:8080/mcp", "http://localhost/mcp", "http://[::1]:9/x", "http://127.9.8.7/"] {
            let url = try UpstreamURL(text)
            #expect(url.isLoopback, "\(text)")
            try url.requireSecureTransport()
        }
    }

    @Test func remotePlainHTTPIsRefused() throws {
        let url = try UpstreamURL("http://gateway.example.com/mcp")
        #expect(throws: UpstreamURL.Invalid.self) { try url.requireSecureTransport() }
        try UpstreamURL("https://gateway.example.com/mcp").requireSecureTransport()
    }

    @Test func originOmitsDefaultPortsAndLowercases() throws {
        #expect(try UpstreamURL("HTTPS://Gateway.Example.com:443/mcp").origin == "https://gateway.example.com")
        #expect(try UpstreamURL("http://127.0.0.1:8080/mcp?x=1").origin == "http://127.0.0.1:8080")
        #expect(try UpstreamURL("http://user:pw@[::1]:80/").origin == "http://[::1]")
    }

    @Test(arguments: ["gateway.example.com", "ftp://x/y", "https://:80/", "https://host:0/", "https://host:99999/"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: UpstreamURL.Invalid.self) { try UpstreamURL(text) }
    }
}

@Suite struct BridgeConfigurationTests {
    @Test func parsesHeaders() throws {
        let header = try BridgeConfiguration.parseHeader("X-Team:  platform ")
        #expect(header == HTTPHeader("X-Team", "platform"))
        #expect(throws: ConfigurationError.self) { try BridgeConfiguration.parseHeader("NoColon") }
        #expect(throws: ConfigurationError.self) { try BridgeConfiguration.parseHeader("Bad Name: x") }
        #expect(throws: ConfigurationError.self) { try BridgeConfiguration.parseHeader("X: a\r\nInjected: b") }
    }

    @Test func headerSafeNamesUseTheBase64Sentinel() {
        #expect(StreamableHTTPUpstream.headerSafe("get_weather") == "get_weather")
        #expect(StreamableHTTPUpstream.headerSafe("météo") == "=?base64?bcOpdMOpbw==?=")
    }
}

@Suite struct IncomingMessageTests {
    @Test func classifiesRequestsNotificationsAndMistakes() throws {
        func classify(_ text: String) throws -> String {
            switch IncomingMessage(try JSONValue(parsing: text)) {
            case .request(let id, let method, _): return "request \(id.text) \(method)"
            case .notification(let method, _): return "notification \(method)"
            case .response: return "response"
            case .invalid(let id, _): return "invalid \(id.jsonText)"
            case .invalidParams(let id, _): return "invalid-params \(id.text)"
            }
        }
        #expect(try classify(#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#) == #"request "a" ping"#)
        #expect(try classify(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#) == "notification notifications/initialized")
        #expect(try classify(#"{"jsonrpc":"2.0","id":1,"result":{}}"#) == "response")
        #expect(try classify(#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#) == "invalid null")
        #expect(try classify(#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#) == "invalid 3")
        #expect(try classify(#"{"jsonrpc":"2.0","id":4,"method":"x","params":[1]}"#) == "invalid-params 4")
        #expect(try classify(#"[1]"#) == "invalid null")
    }

    /// Found by sidecar-fuzz: answering these would put a second reply on the client's own ids, or
    /// none on a request.
    @Test func responsesAreNeverAnsweredAndAnIDMakesARequest() throws {
        func classify(_ text: String) throws -> String {
            switch IncomingMessage(try JSONValue(parsing: text)) {
            case .request(let id, let method, _): return "request \(id.text) \(method)"
            case .notification(let method, _): return "notification \(method)"
            case .response: return "response"
            case .invalid(let id, _): return "invalid \(id.jsonText)"
            case .invalidParams(let id, _): return "invalid-params \(id.text)"
            }
        }
        // A malformed response to the server is still a response: an error with id 1 would read, to
        // the client, as the answer to its own request 1.
        #expect(try classify(#"{"id":1,"result":{}}"#) == "response")
        #expect(try classify(#"{"jsonrpc":"1.0","id":1,"error":{"code":1,"message":"x"}}"#) == "response")
        #expect(try classify(#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#) == "response")
        // A present but unusable id makes an invalid request, whatever the params are.
        #expect(try classify(#"{"jsonrpc":"2.0","id":null,"method":"x","params":[1]}"#) == "invalid null")
        #expect(try classify(#"{"jsonrpc":"2.0","id":true,"method":"x"}"#) == "invalid null")
        #expect(try classify(#"{"jsonrpc":"2.0","method":"x","params":[1]}"#) == "notification x")
        // MCP ids are strings or integers: an answer echoing 1.5 would break the schema itself.
        #expect(try classify(#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#) == "invalid null")
        #expect(try classify(#"{"jsonrpc":"2.0","id":1e-3,"method":"ping"}"#) == "invalid null")
        #expect(try classify(#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#) == "request 1.0 ping")
        #expect(try classify(#"{"jsonrpc":"2.0","id":2e3,"method":"ping"}"#) == "request 2e3 ping")
        #expect(
            try classify(#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}"#) == "request 123456789012345678901234567890 ping")
    }
}

@Suite struct UpstreamMessageTextTests {
    @Test func oneLineFlattensEveryLineBreak() {
        #expect(RemoteText.oneLine("a\r\nb\nc\rd") == "a  b c d")
    }
}

@Suite struct ResponseHeaderTests {
    @Test func headerValuesLoseTheirLineEnding() async throws {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPResponsePart.self)
        let transfer = CurlTransfer(request: HTTPRequest(method: "POST", url: "http://127.0.0.1:9/mcp"), continuation: continuation)
        for line in [
            "HTTP/1.1 200 OK\r\n", "Mcp-Session-Id: mcp_abc \r\n", "Content-Type: application/json\n", "\tX-Odd:\t spaced value \t\r\n", "\r\n",
        ] {
            Array(line.utf8).withUnsafeBytes { transfer.receiveHeaderLine($0) }
        }
        Array("{}".utf8).withUnsafeBytes { _ = transfer.receiveBody($0) }
        transfer.complete(result: .init(rawValue: 0))  // CURLE_OK
        var parts: [HTTPResponsePart] = []
        for try await part in stream { parts.append(part) }
        // A buffered (non-event-stream) response: the head goes with the body, in one wake-up.
        #expect(parts.count == 2)
        guard case .head(let head) = parts.first, case .body(let body) = parts.last else {
            Issue.record("expected the head, then the body")
            return
        }
        #expect(head.status == 200)
        #expect(head.headers.value(for: "mcp-session-id") == "mcp_abc")
        #expect(head.headers.value(for: "content-type") == "application/json")
        #expect(head.headers.value(for: "x-odd") == "spaced value")
        #expect(body == Array("{}".utf8))
    }

    @Test func eventStreamHeadArrivesBeforeTheBody() async throws {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPResponsePart.self)
        let request = HTTPRequest(method: "POST", url: "http://127.0.0.1:9/mcp", streamsEventStreams: true)
        let transfer = CurlTransfer(request: request, continuation: continuation)
        for line in ["HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n", "\r\n"] {
            Array(line.utf8).withUnsafeBytes { transfer.receiveHeaderLine($0) }
        }
        var iterator = stream.makeAsyncIterator()
        guard case .head(let head) = try await iterator.next() else {
            Issue.record("the head of an event stream must come at once")
            return
        }
        #expect(head.isEventStream)
        transfer.complete(result: .init(rawValue: 0))
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK", 200), ("HTTP/2 404", 404), ("HTTP/1.1  503  Service Unavailable", 503), ("HTTP/1.1 abc", 0), ("HTTP/1.1", 0),
        ("HTTP/1.1 99999999999 x", 0),
    ])
    func statusCodeOfStatusLine(_ line: String, _ code: Int) {
        #expect(Array(line.utf8).withUnsafeBytes { CurlTransfer.statusCode(ofStatusLine: $0) } == code)
    }
}

@Suite struct StdoutWriterTests {
    /// Frames sent from many threads at once, small ones (which the sender writes itself when the
    /// pipe has room) and large ones (queued for the writer thread), arrive whole, once each.
    @Test func concurrentFramesArriveWholeAndOnce() throws {
        var descriptors: [Int32] = [0, 0]
        try #require(pipe(&descriptors) == 0)
        let (readEnd, writeEnd) = (descriptors[0], descriptors[1])
        let received = Mutex<[UInt8]>([])
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                received.withLock { $0.append(contentsOf: buffer[0..<count]) }
            }
            done.signal()
        }
        let writer = StdoutWriter(fileDescriptor: writeEnd)
        let senders = 8
        let framesPerSender = 150
        @Sendable func frame(_ sender: Int, _ index: Int) -> String {
            let padding = index % 25 == 0 ? 40_000 : (index * 37) % 400
            return "\(sender)-\(index)-" + String(repeating: "x", count: padding)
        }
        DispatchQueue.concurrentPerform(iterations: senders) { sender in
            for index in 0..<framesPerSender { writer.send(Array(frame(sender, index).utf8)) }
        }
        writer.close()
        #expect(writer.flush(timeoutNanoseconds: 10_000_000_000))
        close(writeEnd)
        #expect(done.wait(timeout: .now() + 10) == .success)
        close(readEnd)
        let lines = received.withLock { $0 }.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        #expect(lines.last == "")
        var expected = Set<String>()
        for sender in 0..<senders { for index in 0..<framesPerSender { expected.insert(frame(sender, index)) } }
        #expect(lines.count - 1 == expected.count)
        #expect(Set(lines.dropLast()) == expected)
    }
}
