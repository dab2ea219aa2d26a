/// An HTTP client over libcurl. One instance shares one connection cache; create one per upstream.
public final class CurlHTTPClient: Sendable {
    let engine: CurlTransferEngine
    public let configuration: HTTPClientConfiguration

    public init(configuration: HTTPClientConfiguration = HTTPClientConfiguration()) {
        self.configuration = configuration
        self.engine = CurlTransferEngine(configuration: configuration)
    }

    /// Starts a transfer and returns its parts as they arrive: first `.head`, then the body.
    /// Cancelling the consuming task, or dropping the stream, aborts the transfer at once.
    public func stream(_ request: HTTPRequest) -> AsyncThrowingStream<HTTPResponsePart, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPResponsePart.self)
        let transfer = CurlTransfer(request: request, continuation: continuation)
        let engine = self.engine
        continuation.onTermination = { termination in
            if case .cancelled = termination { engine.cancel(transfer) }
        }
        engine.submit(transfer)
        return stream
    }

    /// Sends a request and collects the whole response.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        var head: HTTPResponseHead?
        var body: [UInt8] = []
        for try await part in stream(request) {
            switch part {
            case .head(let received): head = received
            case .body(let bytes): if body.isEmpty { body = bytes } else { body.append(contentsOf: bytes) }
            }
        }
        guard let head else {
            throw HTTPClientError(code: .connectionLost, detail: "no response", requestWasSent: true)
        }
        return HTTPResponse(status: head.status, headers: head.headers, body: body)
    }
}
