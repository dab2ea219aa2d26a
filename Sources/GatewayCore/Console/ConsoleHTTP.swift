import AgentWire
import HTTPTypes
import Hummingbird
import NIOCore

/// What the console and the owner API share over HTTP: the session cookie, who is signed in
/// (cookie, or a trusted proxy's user header), form bodies, CSRF and the security headers.
enum ConsoleHTTP {
    static let cookieName = "agw_console"
    /// The largest form or JSON body the console and the owner API read.
    static let bodyLimit = 16 << 10

    /// `default-src 'none'`: no script at all, styles and images from this origin only, forms post
    /// back here only, never framed.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static func securityHeaders(_ headers: inout HTTPFields, secure: Bool) {
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        headers[HTTPField.Name("Cross-Origin-Resource-Policy")!] = "same-origin"
        headers[HTTPField.Name("Permissions-Policy")!] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        if secure { headers[.strictTransportSecurity] = "max-age=31536000" }
    }

    /// The `Set-Cookie` value of a session cookie (or of its removal, with an empty token).
    static func sessionCookie(_ token: String, secure: Bool, maxAgeSeconds: Int) -> String {
        var cookie = "\(cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(token.isEmpty ? 0 : maxAgeSeconds)"
        if secure { cookie += "; Secure" }
        return cookie
    }

    /// The session cookie's value, from any `Cookie` header of the request.
    static func cookieToken(_ request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                if trimmed.hasPrefix(cookieName + "=") { return String(trimmed.dropFirst(cookieName.count + 1)) }
            }
        }
        return nil
    }

    /// An `application/x-www-form-urlencoded` body: each name with its values, in order.
    static func readForm(_ request: Request) async throws -> [String: [String]] {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: bodyLimit) } catch { throw GatewayError.payloadTooLarge(limit: bodyLimit) }
        return parseForm(String(decoding: buffer.readableBytesView, as: UTF8.self))
    }

    static func parseForm(_ text: String) -> [String: [String]] {
        var form: [String: [String]] = [:]
        for pair in text.split(separator: "&").prefix(500) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]) else { continue }
            form[name, default: []].append(parts.count > 1 ? decode(parts[1]) ?? "" : "")
        }
        return form
    }

    /// Percent-decoding with `+` as a space; nil for malformed escapes.
    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"): bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            default: bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The HTTP status for an owner-operation error: unknown or not-yours is 404, never 403.
    static func status(for error: AdminError) -> HTTPResponse.Status {
        switch error.code {
        case "not_found", "unknown_agent", "unknown_device", "unknown_session", "unknown_user", "unknown_owner": return .notFound
        case "owner_blocked", "owner_not_entitled", "not_an_approver", "break_glass_required": return .forbidden
        case "agent_revoked", "user_exists", "already_decided": return .conflict
        default: return HTTPResponse.Status(code: 422)
        }
    }
}

extension GatewayHTTPServer {
    /// Who is signed in: a trusted proxy's user header (only when configured, and only from a
    /// configured proxy address; otherwise ignored), else the session cookie.
    func signedInUser(_ request: Request, _ context: GatewayRequestContext) async throws -> SignedInUser? {
        let configuration = gateway.configuration
        if let headerName = configuration.proxyUserHeader.flatMap({ HTTPField.Name($0) }),
            configuration.trustedProxyAddresses.contains(context.remoteIP), let proxied = request.headers[headerName]?.trimmingSpaces(),
            !proxied.isEmpty
        {
            if let existing = try await gateway.signedInUser(cookieToken: ConsoleHTTP.cookieToken(request)), existing.user.id == proxied {
                return existing
            }
            return try await gateway.proxySignIn(userID: proxied)
        }
        return try await gateway.signedInUser(cookieToken: ConsoleHTTP.cookieToken(request))
    }

    /// Adds the security headers, and the session cookie when this request started a session.
    func finish(_ response: Response, signedIn: SignedInUser?) -> Response {
        var response = response
        let secure = gateway.configuration.secureCookies
        ConsoleHTTP.securityHeaders(&response.headers, secure: secure)
        if let token = signedIn?.newCookieToken {
            response.headers.append(
                HTTPField(
                    name: .setCookie,
                    value: ConsoleHTTP.sessionCookie(token, secure: secure, maxAgeSeconds: gateway.configuration.consoleAbsoluteSeconds)))
        }
        return response
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(text.utf8))))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }
}
