/// Origins as the session signature names them: `scheme://host[:port]`, lower case, default port omitted.
public enum OriginFormat {
    /// The canonical form of an origin or URL, or `nil` when it is not an http(s) origin.
    public static func normalize(_ text: String) -> String? {
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") { scheme = "https" } else if lower.hasPrefix("http://") { scheme = "http" } else { return nil }
        var rest = lower.dropFirst(scheme.count + 3)
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard !rest.isEmpty else { return nil }
        var host = String(rest)
        var port: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("]") {
            host = String(rest[..<colon])
            port = String(rest[rest.index(after: colon)...])
            guard let number = Int(port!), number > 0, number < 65536 else { return nil }
        }
        if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") { port = nil }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    /// The origins a gateway listening on `host:port` accepts by default: the listen URL, and on
    /// loopback both `127.0.0.1` and `localhost`.
    public static func listenOrigins(host: String, port: Int) -> [String] {
        let loopback = ["127.0.0.1", "localhost", "::1"]
        if loopback.contains(host.lowercased()) {
            return ["http://127.0.0.1:\(port)", "http://localhost:\(port)", "http://[::1]:\(port)"]
        }
        let urlHost = host.contains(":") ? "[\(host)]" : host
        return [normalize("http://\(urlHost):\(port)")].compactMap { $0 }
    }
}
