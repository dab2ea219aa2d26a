import SodiumKit

/// One HTTP header field.
///
/// A secret field (the `Authorization` of a session token) keeps its value in guarded memory
/// (`secret`) and has an empty `value`: the libcurl client writes the header line straight from
/// the guarded bytes into libcurl and zeroes its one transient copy, so no Swift string of the
/// token is made per request (see docs/security.md, "Where the token passes through ordinary memory").
public struct HTTPHeader: Sendable, Hashable {
    public var name: String
    public var value: String
    public var secret: SecretBytes?
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
        self.secret = nil
    }

    /// A field whose value stays in guarded memory.
    public init(_ name: String, secret: SecretBytes) {
        self.name = name
        self.value = ""
        self.secret = secret
    }

    public static func == (lhs: HTTPHeader, rhs: HTTPHeader) -> Bool {
        lhs.name == rhs.name && lhs.value == rhs.value && lhs.secret.map(ObjectIdentifier.init) == rhs.secret.map(ObjectIdentifier.init)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(value)
        hasher.combine(secret.map(ObjectIdentifier.init))
    }
}

extension Array where Element == HTTPHeader {
    /// The first value of a header, compared case-insensitively.
    public func value(for name: String) -> String? {
        let lowered = name.lowercased()
        return first { $0.name.lowercased() == lowered }?.value
    }
}

/// An HTTP request for the libcurl client.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// Total time allowed for the exchange; `nil` takes the client's default.
    public var timeout: Duration?
    /// Deliver the body of a `text/event-stream` response chunk by chunk as it arrives.
    /// Every other body is delivered whole, in one part, when the transfer ends.
    public var streamsEventStreams: Bool

    public init(
        method: String, url: String, headers: [HTTPHeader] = [], body: [UInt8] = [], timeout: Duration? = nil,
        streamsEventStreams: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.streamsEventStreams = streamsEventStreams
    }
}

/// Status and headers of a response.
public struct HTTPResponseHead: Sendable {
    public var status: Int
    public var headers: [HTTPHeader]
    public var contentType: String { headers.value(for: "content-type")?.lowercased() ?? "" }
    public var isEventStream: Bool { contentType.hasPrefix("text/event-stream") }
}

/// A whole, buffered response.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    public init(status: Int, headers: [HTTPHeader], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// A piece of a response as the transfer delivers it.
public enum HTTPResponsePart: Sendable {
    case head(HTTPResponseHead)
    case body([UInt8])
}

/// Why an HTTP exchange failed below the HTTP layer. Tests assert on `code`.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case connectionRefused = "connection_refused"
        case hostNotFound = "host_not_found"
        case connectTimedOut = "connect_timed_out"
        case timedOut = "timed_out"
        case tlsFailure = "tls_failure"
        case connectionLost = "connection_lost"
        case responseTooLarge = "response_too_large"
        case invalidURL = "invalid_url"
        case transport = "transport"
    }
    public let code: Code
    /// libcurl's own detail, for logs.
    public let detail: String
    /// Whether any byte of the request reached the network; a request that never left is safe to retry.
    public let requestWasSent: Bool

    public var description: String { "\(code.rawValue): \(detail)" }

    public init(code: Code, detail: String, requestWasSent: Bool) {
        self.code = code
        self.detail = detail
        self.requestWasSent = requestWasSent
    }
}

/// Settings shared by every transfer of one client.
public struct HTTPClientConfiguration: Sendable {
    public var connectTimeout: Duration = .seconds(5)
    public var requestTimeout: Duration = .seconds(120)
    /// Certificate authorities in PEM, added to the system bundle (`--ca-file`).
    public var additionalCertificateAuthorities: [UInt8]? = nil
    /// The largest response body accepted; larger ones fail with `.responseTooLarge`.
    public var maximumResponseBytes: Int = 64 * 1024 * 1024
    public init() {}
}
