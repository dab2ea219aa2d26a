import AgentWire
import Foundation
import GatewayCore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A browser as the console tests play it: no cookie jar and no redirects (each test sends the
/// cookie it means to, and sees a 303 as a 303), every request bounded.
enum ConsoleHTTPClient {
    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) { completionHandler(nil) }
    }

    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = HTTP.requestTimeout
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        return URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }()

    static func send(
        _ method: String, _ url: String, body: String? = nil, contentType: String = "application/x-www-form-urlencoded",
        headers: [String: String] = [:]
    ) async throws -> HTTPAnswer {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.timeoutInterval = HTTP.requestTimeout
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)"] = "\(value)" }
        return HTTPAnswer(status: http.statusCode, headers: fields, body: Array(data))
    }

    static func formEncode(_ fields: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
    }
}

/// A signed-in browser: its session cookie and CSRF token.
struct ConsoleBrowser: Sendable {
    let baseURL: String
    let cookie: String
    let csrf: String

    var cookieHeader: [String: String] { ["Cookie": "agw_console=\(cookie)"] }

    /// Signs `user` in through a fresh sign-in link (the console's form post), then reads the CSRF token.
    static func signIn(_ gateway: InProcessGateway, as user: String) async throws -> ConsoleBrowser {
        let token = try await gateway.admin.createLoginLink(userID: user)
        let answer = try await redeem(gateway.url, token: token)
        guard answer.status == 303, let cookie = sessionCookie(answer) else {
            throw TestFailure("sign-in as \(user) failed: \(answer.status)")
        }
        let me = try await ConsoleHTTPClient.send("GET", gateway.url + "/api/owner/v1/me", headers: ["Cookie": "agw_console=\(cookie)"])
        guard let csrf = me.json["csrfToken"]?.stringValue else { throw TestFailure("no csrfToken for \(user): \(me.status)") }
        return ConsoleBrowser(baseURL: gateway.url, cookie: cookie, csrf: csrf)
    }

    static func redeem(_ baseURL: String, token: String) async throws -> HTTPAnswer {
        try await ConsoleHTTPClient.send("POST", baseURL + "/console/sign-in", body: ConsoleHTTPClient.formEncode([("token", token)]))
    }

    /// The session cookie's value from a `Set-Cookie` answer.
    static func sessionCookie(_ answer: HTTPAnswer) -> String? {
        guard let header = answer.header("Set-Cookie"), let range = header.range(of: "agw_console=") else { return nil }
        let value = header[range.upperBound...].prefix { $0 != ";" }
        return value.isEmpty ? nil : String(value)
    }

    func get(_ path: String) async throws -> HTTPAnswer {
        try await ConsoleHTTPClient.send("GET", baseURL + path, headers: cookieHeader)
    }

    /// A console form post; `csrf: false` leaves the token out.
    func post(_ path: String, _ fields: [(String, String)] = [], csrf includeCSRF: Bool = true) async throws -> HTTPAnswer {
        let all = (includeCSRF ? [("csrf", csrf)] : []) + fields
        return try await ConsoleHTTPClient.send("POST", baseURL + path, body: ConsoleHTTPClient.formEncode(all), headers: cookieHeader)
    }

    /// An owner API call; state changes carry the CSRF header unless `csrf: false`.
    func api(_ method: String, _ path: String, json: JSONValue? = nil, csrf includeCSRF: Bool = true) async throws -> HTTPAnswer {
        var headers = cookieHeader
        if includeCSRF { headers["X-CSRF-Token"] = csrf }
        return try await ConsoleHTTPClient.send(
            method, baseURL + "/api/owner/v1" + path, body: json.map { String(decoding: $0.serialized(), as: UTF8.self) },
            contentType: "application/json", headers: headers)
    }
}
