import Logging
import Testing
import W3CTraceContext

@testable import AgentWire

@Suite("W3C trace context in _meta (MCP 2026-07-28)")
struct TraceMetaTests {
    static let traceID = "0af7651916cd43dd8448eb211c80319c"
    static let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test func continuesAValidTraceWithASpanOfItsOwn() throws {
        let incoming = try #require(TraceMeta.incoming(["traceparent": .string(Self.parent), "tracestate": "vendor=abc"]))
        #expect("\(incoming.traceID)" == Self.traceID)
        let span = TraceMeta.span(after: incoming)
        #expect(span.traceID == incoming.traceID)
        #expect(span.spanID != incoming.spanID)
        #expect(span.flags == incoming.flags)
        let meta = TraceMeta.writing(span, into: ["progressToken": 7, "traceparent": .string(Self.parent)])
        #expect(meta["progressToken"] == 7)
        #expect(meta["traceparent"]?.stringValue == "00-\(Self.traceID)-\(span.spanID)-01")
        #expect(meta["tracestate"]?.stringValue == "vendor=abc")
        let logged = TraceMeta.logMetadata(span: span, parent: incoming)
        #expect(logged["trace_id"] == .string(Self.traceID))
        #expect(logged["parent_span_id"] == "b7ad6b7169203331")
        #expect(logged["span_id"] == .string("\(span.spanID)"))
    }

    @Test(arguments: [
        "", "garbage", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  // too short
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  // forbidden version
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  // all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  // all-zero span id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",  // not hex
        "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  // delimiter
        String(repeating: "0", count: 56),
    ])
    func anInvalidTraceparentStartsANewTrace(_ text: String) {
        #expect(TraceMeta.incoming(["traceparent": .string(text)]) == nil)
        let fresh = TraceMeta.span(after: nil)
        #expect(fresh.traceID != .null && fresh.spanID != .null)
        #expect(fresh.flags.contains(.sampled))
    }

    @Test func noTraceparentOrNotAStringIsNoContext() {
        #expect(TraceMeta.incoming(nil) == nil)
        #expect(TraceMeta.incoming(["tracestate": "a=b"]) == nil)
        #expect(TraceMeta.incoming(["traceparent": 42]) == nil)
        #expect(TraceMeta.incoming(["traceparent": .string(String(repeating: "0", count: 100_000))]) == nil)
    }

    @Test func aBadOrOverlongTracestateIsDroppedAndTheTraceKept() throws {
        for state in [String(repeating: "a=b,", count: 200), "a=b\u{7}", "=="] {
            let context = try #require(TraceMeta.incoming(["traceparent": .string(Self.parent), "tracestate": .string(state)]))
            #expect(context.state.isEmpty, "\(state.prefix(20))")
            let meta = TraceMeta.writing(TraceMeta.span(after: context), into: ["tracestate": .string(state)])
            #expect(meta["tracestate"] == nil)
        }
    }

    @Test func baggageIsPassedOnWithinTheW3CLimitAndDroppedBeyondIt() {
        let span = TraceMeta.span(after: nil)
        #expect(TraceMeta.writing(span, into: ["baggage": "user=1"])["baggage"] == "user=1")
        let huge = String(repeating: "k=v,", count: 3000)
        #expect(TraceMeta.writing(span, into: ["baggage": .string(huge)])["baggage"] == nil)
        #expect(TraceMeta.writing(span, into: ["baggage": ["not": "a string"]])["baggage"] == nil)
    }
}

@Suite("JSON log lines (--log-format json)")
struct JSONLogHandlerTests {
    static func parsed(_ bytes: [UInt8]) throws -> JSONValue { try JSONValue(parsing: bytes) }

    @Test func oneObjectWithTheFourMembersFirstAndTheMetadataAfter() throws {
        let line = JSONLogHandler.line(
            time: "2026-11-29T10:00:00.000Z", level: .info, label: "agent-gateway", message: "tools/call",
            metadata: ["trace_id": "abc", "ms": "1.5", "message": "shadowed", "nested": ["a": "b"], "list": ["x", "y"]])
        #expect(!line.contains(0x0A))
        let value = try Self.parsed(line)
        #expect(value.objectValue?.keys.prefix(4) == ["time", "level", "logger", "message"])
        #expect(value["message"] == "tools/call")
        #expect(value["metadata.message"] == "shadowed")
        #expect(value["trace_id"] == "abc")
        #expect(value["nested"]?["a"] == "b")
        #expect(value["list"]?[1] == "y")
    }

    @Test func controlCharactersAndQuotesAreEscapedAndLongMessagesCut() throws {
        let hostile = "line\nbreak \"quoted\" \u{1B}[31m" + String(repeating: "x", count: 20_000)
        let line = JSONLogHandler.line(time: "t", level: .warning, label: "l", message: hostile, metadata: ["k": .string(hostile)])
        #expect(!line.contains(0x0A) && !line.contains(0x1B))
        let value = try Self.parsed(line)
        #expect(value["message"]?.stringValue?.hasPrefix("line\nbreak \"quoted\"") == true)
        #expect((value["message"]?.stringValue?.utf8.count ?? 0) <= JSONLogHandler.maximumMessageBytes + 3)
        #expect((value["k"]?.stringValue?.utf8.count ?? 0) <= JSONLogHandler.maximumMessageBytes + 3)
    }

    @Test func theTimeIsRFC3339InUTCWithMilliseconds() {
        let time = JSONLogHandler.now()
        #expect(time.count == 24 && time.hasSuffix("Z") && time.dropFirst(10).first == "T", "\(time)")
    }
}
