/// Where the PostgreSQL store connects: `postgres://USER[:PASSWORD]@HOST[:PORT][/DATABASE][?sslmode=MODE]`
/// (`postgresql://` too). The password never leaves this value: ``description`` and every error
/// name the server as `postgres://USER@HOST:PORT/DATABASE`.
public struct PostgresURL: Sendable, Hashable, CustomStringConvertible {
    /// How the connection is protected.
    public enum TLSMode: String, Sendable, Hashable {
        /// Plain TCP (the default: the tests' cluster and a database on the same host).
        case disable
        /// TLS, with the server's certificate checked against the system's trust store and the host name.
        case verifyFull = "verify-full"
    }

    public var user: String
    var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode

    /// Whether `value` names a PostgreSQL database rather than a SQLite file.
    public static func isPostgres(_ value: String) -> Bool {
        let lowered = value.lowercased()
        return lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://")
    }

    public init(parsing value: String) throws(PostgresStoreError) {
        let lowered = value.lowercased()
        guard let scheme = ["postgres://", "postgresql://"].first(where: { lowered.hasPrefix($0) }) else {
            throw PostgresStoreError("a PostgreSQL URL starts with postgres:// or postgresql://")
        }
        var rest = Substring(value.dropFirst(scheme.count))
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var hostPort = rest
        var userInfo: Substring?
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            hostPort = rest[rest.index(after: at)...]
        }
        guard let userInfo, !userInfo.isEmpty else {
            throw PostgresStoreError("the PostgreSQL URL names no user: write postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        }
        if let colon = userInfo.firstIndex(of: ":") {
            user = try Self.percentDecoded(userInfo[..<colon], what: "user")
            password = try Self.percentDecoded(userInfo[userInfo.index(after: colon)...], what: "password")
        } else {
            user = try Self.percentDecoded(userInfo, what: "user")
            password = nil
        }
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw PostgresStoreError("the PostgreSQL URL's host lacks its closing ]") }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw PostgresStoreError("the PostgreSQL URL's host is not valid")
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = String(hostPort)
        }
        guard !host.isEmpty else { throw PostgresStoreError("the PostgreSQL URL names no host (Unix sockets are not supported: use 127.0.0.1)") }
        if let portText {
            guard let number = Int(portText), (1...65_535).contains(number) else {
                throw PostgresStoreError("the PostgreSQL URL's port must be 1 to 65535")
            }
            port = number
        } else {
            port = 5432
        }
        let name = try Self.percentDecoded(path, what: "database name")
        database = name.isEmpty ? user : name
        tls = .disable
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let key = String(parts[0])
            let setting = parts.count > 1 ? String(parts[1]) : ""
            switch key {
            case "sslmode":
                guard let mode = TLSMode(rawValue: setting) else {
                    throw PostgresStoreError("the PostgreSQL URL's sslmode must be disable or verify-full")
                }
                tls = mode
            default:
                throw PostgresStoreError("the PostgreSQL URL has an unknown setting \(key.prefix(40)); only sslmode is understood")
            }
        }
    }

    public var hasPassword: Bool { password != nil }

    /// The same URL with this password (for one taken from PGPASSWORD rather than the command line).
    public func withPassword(_ password: String) -> PostgresURL {
        var copy = self
        copy.password = password
        return copy
    }

    /// The URL without its password.
    public var description: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        let suffix = tls == .disable ? "" : "?sslmode=\(tls.rawValue)"
        return "postgres://\(user)@\(hostText):\(port)/\(database)\(suffix)"
    }

    /// The URL with its password (percent-encoded), for handing to a child process in the tests;
    /// never for a log or an error.
    var urlWithPassword: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        let secret = password.map { ":" + Self.percentEncoded($0) } ?? ""
        let suffix = tls == .disable ? "" : "?sslmode=\(tls.rawValue)"
        return "postgres://\(Self.percentEncoded(user))\(secret)@\(hostText):\(port)/\(Self.percentEncoded(database))\(suffix)"
    }

    static func percentEncoded(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                result += "%" + String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return result
    }

    static func percentDecoded(_ text: Substring, what: String) throws(PostgresStoreError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw PostgresStoreError("the PostgreSQL URL's \(what) has a broken %-escape")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw PostgresStoreError("the PostgreSQL URL's \(what) is not UTF-8")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// A failure of the PostgreSQL store: one line, never holding the password or a bound value.
public struct PostgresStoreError: Error, CustomStringConvertible, Sendable, Hashable {
    public let message: String
    /// The server's SQLSTATE, when the server refused a statement (`23505` for a duplicate key).
    public let sqlState: String?
    /// Whether the connection is gone with it (the next transaction opens another).
    public let endsConnection: Bool

    /// Whether the database could not be reached or used at all (no connection, a timeout, a lost
    /// session, a shutdown or a lack of resources), rather than refusing one statement.
    public var meansUnavailable: Bool {
        guard let sqlState else { return true }
        return endsConnection || ["08", "53", "57"].contains(String(sqlState.prefix(2)))
    }

    public init(_ message: String, sqlState: String? = nil, endsConnection: Bool = false) {
        self.message = message
        self.sqlState = sqlState
        self.endsConnection = endsConnection
    }

    public var description: String { message }
}
