import Logging
import SystemSupport

/// A configuration mistake found before serving, said in one line with what to do next.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Everything `serve` needs in generic mode (`--upstream URL`), gathered from flags and the
/// environment, and turned into a ready server.
public struct BridgeConfiguration: Sendable {
    public var upstreamURL: String
    /// `Name: value` strings from `--header`.
    public var headers: [String] = []
    /// The bearer token, already read from the environment variable `--bearer-env` named.
    public var bearerToken: String?
    public var caFile: String?
    public var connectTimeout: Duration = .seconds(5)
    /// Longer than the longest approval wait a gateway policy allows (300 s), so that a call held
    /// for a person's decision is not cut off here first.
    public var requestTimeout: Duration = .seconds(330)
    public var serveOptions = ServeOptions()
    /// Probe the upstream for the stateless 2026-07-28 revision (`server/discover`) before
    /// `initialize`. Paired mode turns it off: the gateway contract speaks 2025-03-26 to 2025-11-25,
    /// so the probe would only cost a round trip at every start.
    public var probesModernRevision = true

    public init(upstreamURL: String) { self.upstreamURL = upstreamURL }

    /// Parses a `Name: value` header, refusing what would corrupt the request.
    public static func parseHeader(_ text: String) throws(ConfigurationError) -> HTTPHeader {
        guard let colon = text.firstIndex(of: ":") else {
            throw ConfigurationError("--header '\(text)' has no colon; write it as 'Name: value'")
        }
        let name = String(text[..<colon]).trimmingSpaces()
        let value = String(text[text.index(after: colon)...]).trimmingSpaces()
        let tokenCharacters = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        guard !name.isEmpty, name.allSatisfy({ tokenCharacters.contains($0) }) else {
            throw ConfigurationError("--header name '\(name)' is not a valid HTTP header name")
        }
        guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
            throw ConfigurationError("--header \(name) has a line break in its value; remove it")
        }
        return HTTPHeader(name, value)
    }

    /// The HTTP client settings for this upstream (shared by generic and paired mode).
    public func httpConfiguration() throws(ConfigurationError) -> HTTPClientConfiguration {
        var http = HTTPClientConfiguration()
        http.connectTimeout = connectTimeout
        http.requestTimeout = requestTimeout
        http.maximumResponseBytes = serveOptions.maximumMessageBytes
        if let caFile {
            do { http.additionalCertificateAuthorities = try FileSystem.readRequiredFile(caFile) } catch {
                throw ConfigurationError("\(error); check --ca-file")
            }
        }
        return http
    }

    /// The server for this configuration.
    ///
    /// - Parameters:
    ///   - logger: Where logs go (stderr).
    ///   - credentials: The source of `Authorization` headers; default: the fixed bearer token, if any.
    public func makeServer(logger: Logger, credentials: (any UpstreamCredentialSource)? = nil) throws(ConfigurationError) -> MCPStdioServer {
        try makeServer(logger: logger, http: CurlHTTPClient(configuration: try httpConfiguration()), credentials: credentials)
    }

    /// The server, over an HTTP client the caller already made (paired mode shares it with the
    /// gateway's REST calls, so both use one connection cache).
    func makeServer(
        logger: Logger, http: CurlHTTPClient, credentials: (any UpstreamCredentialSource)?, catalog: ToolCatalogMemory? = nil
    ) throws(ConfigurationError) -> MCPStdioServer {
        let url: UpstreamURL
        do {
            url = try UpstreamURL(upstreamURL)
            try url.requireSecureTransport()
        } catch {
            throw ConfigurationError(error.description)
        }
        var settings = UpstreamSettings(url: url)
        for header in headers { settings.extraHeaders.append(try Self.parseHeader(header)) }
        settings.requestTimeout = requestTimeout
        settings.prefersModern = probesModernRevision
        let upstream = StreamableHTTPUpstream(
            settings: settings, http: http, credentials: credentials ?? StaticCredentials(bearerToken: bearerToken), logger: logger)
        return MCPStdioServer(options: serveOptions, upstream: upstream, logger: logger, catalog: catalog)
    }
}
