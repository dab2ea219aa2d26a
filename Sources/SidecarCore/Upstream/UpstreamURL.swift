/// An upstream's URL, parsed just enough to enforce the transport rules: `https` always, `http`
/// only to a loopback host, and the origin that session signatures name.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    public let scheme: String
    public let host: String
    public let port: Int?

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(_ text: String) throws(Invalid) {
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw Invalid(description: "'\(text)' is not a URL; give one like https://gateway.example.com/mcp")
        }
        let scheme = parts[0].lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw Invalid(description: "'\(scheme)' URLs are not supported; use https:// (or http:// to a loopback address)")
        }
        var rest = parts[1]
        if let pathStart = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<pathStart] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        var host: Substring
        var port: Int?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw Invalid(description: "'\(text)' has an unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                guard let value = Int(after.dropFirst()), (1...65535).contains(value) else { throw Invalid(description: "'\(text)' has an invalid port") }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let value = Int(rest[rest.index(after: colon)...]), (1...65535).contains(value) else {
                throw Invalid(description: "'\(text)' has an invalid port")
            }
            port = value
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw Invalid(description: "'\(text)' has no host") }
        self.text = text
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
    }

    /// True for 127.0.0.0/8, ::1 and localhost.
    public var isLoopback: Bool {
        if host == "localhost" || host == "::1" || host.hasSuffix(".localhost") { return true }
        let octets = host.split(separator: ".")
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// `scheme://host[:port]`, lower-case, default port omitted.
    public var origin: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let defaultPort = scheme == "https" ? 443 : 80
        if let port, port != defaultPort { return "\(scheme)://\(hostPart):\(port)" }
        return "\(scheme)://\(hostPart)"
    }

    /// The same URL with its path replaced (for REST endpoints beside `/mcp`).
    public func replacingPath(with path: String) -> String { origin + path }

    /// Refuses plain HTTP anywhere but loopback: a token must never cross a network in clear text.
    public func requireSecureTransport() throws(Invalid) {
        if scheme == "http", !isLoopback {
            throw Invalid(
                description: "refusing plain http:// to \(host): tokens would cross the network unencrypted; use https:// (http:// is allowed only to loopback)"
            )
        }
    }

    public var description: String { text }
}
