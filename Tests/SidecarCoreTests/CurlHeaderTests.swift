import Testing

@testable import SidecarCore

/// Response header lines as libcurl hands them to the header callback: each with its CRLF.
@Suite struct CurlHeaderLineTests {
    func head(of lines: [String]) async throws -> HTTPResponseHead? {
        let (stream, continuation) = AsyncThrowingStream<HTTPResponsePart, any Error>.makeStream()
        let transfer = CurlTransfer(request: HTTPRequest(method: "POST", url: "http://127.0.0.1:1/mcp"), continuation: continuation)
        for line in lines {
            Array(line.utf8).withUnsafeBytes { transfer.receiveHeaderLine($0) }
        }
        continuation.finish()
        for try await part in stream {
            if case .head(let head) = part { return head }
        }
        return nil
    }

    @Test func crlfLineEndingsAreNotPartOfValues() async throws {
        let head = try #require(
            try await head(of: [
                "HTTP/1.1 429 Too Many Requests\r\n", "Mcp-Session-Id: mcp_abc\r\n", "Retry-After: 2\r\n",
                "Content-Type: application/json\r\n", "\r\n",
            ]))
        #expect(head.status == 429)
        #expect(head.headers.value(for: "mcp-session-id") == "mcp_abc")
        #expect(head.headers.value(for: "retry-after") == "2")
        #expect(head.contentType == "application/json")
    }

    @Test func headersStartOverAfterAnInterimResponse() async throws {
        let head = try #require(
            try await head(of: ["HTTP/1.1 100 Continue\r\n", "X-Interim: 1\r\n", "\r\n", "HTTP/1.1 200 OK\r\n", "A: b\n", "\r\n"]))
        #expect(head.status == 200)
        #expect(head.headers == [HTTPHeader("A", "b")])
    }
}
