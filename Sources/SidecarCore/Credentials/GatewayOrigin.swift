/// A gateway's base URL and the origin that session signatures bind to.
///
/// The origin is `scheme://host[:port]` in lower case with the scheme's default port left out,
/// exactly as the gateway computes it for the challenge in `SessionChallenge`.
public struct GatewayOrigin: Sendable, Hashable, CustomStringConvertible {
    /// `http` or `https`.
    public let scheme: String
    /// The host, lower case (IPv6 literals keep their brackets).
    public let host: String
    /// The explicit port, `nil` when it is the scheme's default.
    public let port: Int?
    /// The URL prefix for API paths: the origin plus any path the user gave, without a trailing slash.
    public let baseURL: String

    /// Parses the gateway URL a user typed (`https://gw.example.com`, `http://127.0.0.1:8080/`).
    ///
    /// - Returns: `nil` for anything that is not an absolute http(s) URL with a host, or that
    ///   carries credentials, a query or a fragment.
    public init?(_ text: String) {
        let trimmed = text.trimmingWhitespace
        guard let schemeEnd = trimmed.firstRange(of: "://") else { return nil }
        let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = trimmed[schemeEnd.upperBound...]
        guard !rest.contains("?"), !rest.contains("#") else { return nil }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        while path.hasSuffix("/") { path.removeLast() }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }

        var host: Substring
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return nil }
        var port: Int? = nil
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { return nil }
            port = value
        }
        let defaultPort = scheme == "https" ? 443 : 80
        if port == defaultPort { port = nil }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        let origin = "\(scheme)://\(self.host)" + (port.map { ":\($0)" } ?? "")
        self.baseURL = origin + path
    }

    /// `scheme://host[:port]`: what session signatures bind to.
    public var origin: String { "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "") }

    /// The full URL of an API path such as `/api/v1/sessions`.
    public func url(_ path: String) -> String { baseURL + path }

    public var description: String { baseURL }
}

extension String {
    var trimmingWhitespace: String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
