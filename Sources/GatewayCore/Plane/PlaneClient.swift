import AgentWire
import CurlHTTP
import SodiumKit
import SystemSupport

/// Where the gateway finds Plane, and how hard it tries.
public struct PlaneSettings: Sendable, CustomStringConvertible {
    /// Plane's API server, without `/api/v1` (`https://plane.example.com`).
    public var apiURL: String
    /// The workspace slug.
    public var workspace: String
    /// The bot user's API key, in guarded memory; libcurl gets it straight from there.
    public var apiKey: SecretBytes
    /// Where people open work items (Plane's web app); the API URL when not set.
    public var webURL: String?
    /// How long projects, states, labels and members are reused before they are asked for again.
    public var metadataCacheSeconds: Int = 30
    /// The most a single request to Plane may take.
    public var requestTimeoutSeconds: Int = 15
    /// How often a request refused with 429 is tried again, and the longest wait between tries.
    public var rateLimitRetries: Int = 2
    public var maximumBackOffSeconds: Int = 8
    /// Certificate authorities in PEM for Plane's TLS certificate, added to the system bundle.
    public var additionalCertificateAuthorities: [UInt8]?

    public init(apiURL: String, workspace: String, apiKey: SecretBytes, webURL: String? = nil) {
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.workspace = workspace
        self.apiKey = apiKey
        self.webURL = webURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// Never shows the key.
    public var description: String { "Plane at \(apiURL), workspace \(workspace)" }

    /// A workspace slug as Plane makes them: lowercase letters, digits, `-` and `_`.
    public static func isValidWorkspaceSlug(_ slug: String) -> Bool {
        (1...48).contains(slug.utf8.count)
            && slug.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x5F }
    }
}

/// Plane's REST API (`/api/v1`), as the adapter uses it: JSON in and out, the API key from guarded
/// memory, Plane's rate limit respected with back-off, its cursors followed, and every failure
/// turned into a tool error that says what to do. Only the methods below exist: there is no
/// DELETE and no archive call anywhere in the adapter.
struct PlaneClient: Sendable {
    let settings: PlaneSettings
    let http: CurlHTTPClient

    init(settings: PlaneSettings) {
        self.settings = settings
        var configuration = HTTPClientConfiguration()
        configuration.requestTimeout = .seconds(settings.requestTimeoutSeconds)
        configuration.maximumResponseBytes = 16 * 1024 * 1024
        configuration.additionalCertificateAuthorities = settings.additionalCertificateAuthorities
        self.http = CurlHTTPClient(configuration: configuration)
    }

    /// One answer: its status and its JSON (`.null` for an empty body).
    struct Answer: Sendable {
        var status: Int
        var json: JSONValue
    }

    enum Method: String { case get = "GET", post = "POST", patch = "PATCH" }

    /// The workspace's part of the API: `/api/v1/workspaces/SLUG/` + `path`.
    func url(_ path: String, query: [(String, String)]) -> String {
        var url = "\(settings.apiURL)/api/v1/workspaces/\(settings.workspace)/\(path)"
        if !query.isEmpty { url += "?" + query.map { "\($0.0)=\(Self.percentEncoded($0.1))" }.joined(separator: "&") }
        return url
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            let unreserved =
                (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || [0x2D, 0x2E, 0x5F, 0x7E].contains(byte)
            out += unreserved ? String(UnicodeScalar(byte)) : "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
        return out
    }

    /// Sends one request. 429 is tried again after Plane's `Retry-After` (or `X-RateLimit-Reset`),
    /// at most `rateLimitRetries` times and never for longer than `maximumBackOffSeconds` a time;
    /// then it fails with `tracker_rate_limited`. A GET that never reached Plane is tried once more.
    func send(_ method: Method, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil) async throws -> Answer {
        var attempt = 0
        while true {
            var headers = [HTTPHeader("X-API-Key", secret: settings.apiKey), HTTPHeader("Accept", "application/json")]
            if body != nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
            let request = HTTPRequest(method: method.rawValue, url: url(path, query: query), headers: headers, body: body?.serialized() ?? [])
            let response: HTTPResponse
            do {
                response = try await http.send(request)
            } catch let error as HTTPClientError {
                if method == .get, attempt == 0, !error.requestWasSent {
                    attempt += 1
                    continue
                }
                throw GatewayError.trackerUnavailable(
                    "Plane did not answer (\(error.code.rawValue)); nothing was changed unless a retry with the same idempotencyKey says so; retry later"
                )
            }
            switch response.status {
            case 429:
                let wait = Self.retryAfterSeconds(response.headers, now: GatewayClock.system.nowMilliseconds() / 1000, attempt: attempt)
                guard attempt < settings.rateLimitRetries, wait <= settings.maximumBackOffSeconds else {
                    throw GatewayError.trackerRateLimited(retryAfter: wait)
                }
                attempt += 1
                try await Task.sleep(for: .seconds(wait))
                continue
            case 401:
                throw Self.keyRefused(response.status)
            case 403 where Self.isKeyRefusal(response.body):
                throw Self.keyRefused(response.status)
            case 500...:
                throw GatewayError.trackerUnavailable("Plane answered HTTP \(response.status); retry later")
            default:
                let json = response.body.isEmpty ? JSONValue.null : ((try? JSONValue(parsing: response.body)) ?? .null)
                return Answer(status: response.status, json: json)
            }
        }
    }

    static func keyRefused(_ status: Int) -> GatewayError {
        .trackerUnavailable("Plane refused the gateway's API key (HTTP \(status)); the gateway's operator must check the Plane API key")
    }

    /// Plane answers a wrong key with 403 and "Given API token is not valid" (a missing one with 401).
    static func isKeyRefusal(_ body: [UInt8]) -> Bool {
        ((try? JSONValue(parsing: body))?["detail"]?.stringValue ?? "").contains("API token")
    }

    /// Seconds until Plane takes requests again: `Retry-After`, else `X-RateLimit-Reset` (a Unix
    /// time), else 1, 2, 4 s by attempt; between 1 and 3,600.
    static func retryAfterSeconds(_ headers: [HTTPHeader], now: Int64, attempt: Int) -> Int {
        if let value = headers.value(for: "Retry-After").flatMap({ Int($0.trimmingSpaces()) }) { return min(max(value, 1), 3600) }
        if let reset = headers.value(for: "X-RateLimit-Reset").flatMap({ Int64($0.trimmingSpaces()) }) {
            return Int(min(max(reset - now, 1), 3600))
        }
        return 1 << min(attempt, 2)
    }

    /// The answer's JSON when the status is 2xx; Plane's refusal as a tool error otherwise.
    func expectSuccess(_ answer: Answer, what: String) throws -> JSONValue {
        switch answer.status {
        case 200..<300: return answer.json
        case 404: throw GatewayError.notFound("\(what) was not found in Plane")
        case 403:
            throw GatewayError.trackerUnavailable(
                "Plane denied the gateway's bot user access to \(what) (HTTP 403); the workspace admin must make the bot a member of that project"
            )
        default:
            throw GatewayError.trackerRejected("Plane refused \(what) (HTTP \(answer.status)): \(Self.reason(answer.json)); check the arguments")
        }
    }

    /// Plane's reason, on one bounded line: `{"error": …}`, `{"detail": …}` or field errors.
    static func reason(_ json: JSONValue) -> String {
        let text: String
        if let error = json["error"]?.stringValue ?? json["detail"]?.stringValue {
            text = error
        } else if case .object(let fields) = json {
            text = fields.sorted { $0.key < $1.key }.map {
                "\($0.key): \($0.value.arrayValue?.compactMap(\.stringValue).joined(separator: " ") ?? "")"
            }
            .joined(separator: "; ")
        } else {
            text = "no reason given"
        }
        return String(UntrustedText.sanitize(text).flattenedToOneLine().prefix(200))
    }

    // MARK: Reading

    /// GET of one object.
    func object(_ path: String, query: [(String, String)] = [], what: String) async throws -> JSONValue {
        try expectSuccess(try await send(.get, path, query: query), what: what)
    }

    /// GET of one object, `nil` on 404.
    func optionalObject(_ path: String, query: [(String, String)] = [], what: String) async throws -> JSONValue? {
        let answer = try await send(.get, path, query: query)
        if answer.status == 404 { return nil }
        return try expectSuccess(answer, what: what)
    }

    /// One page of a list: Plane's envelope (`results`, `next_cursor`, `next_page_results`,
    /// `total_results`), or a bare array for the few lists Plane does not page.
    struct Page: Sendable {
        var results: [JSONValue]
        var nextCursor: String?
        var total: Int?
    }

    func page(_ path: String, perPage: Int, cursor: String?, query: [(String, String)] = [], what: String) async throws -> Page {
        var parameters = query + [("per_page", String(perPage))]
        if let cursor { parameters.append(("cursor", cursor)) }
        let json = try await object(path, query: parameters, what: what)
        if let array = json.arrayValue { return Page(results: array, nextCursor: nil, total: array.count) }
        let more = json["next_page_results"]?.boolValue ?? false
        return Page(
            results: json["results"]?.arrayValue ?? [], nextCursor: more ? json["next_cursor"]?.stringValue : nil,
            total: json["total_results"]?.intValue ?? json["total_count"]?.intValue)
    }

    /// Every item of a list, following cursors, at most `limit` items.
    func all(_ path: String, limit: Int = 2000, what: String) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var cursor: String?
        repeat {
            let page = try await page(path, perPage: 100, cursor: cursor, what: what)
            items += page.results
            cursor = page.nextCursor
        } while cursor != nil && items.count < limit
        return Array(items.prefix(limit))
    }

    // MARK: Writing

    /// POST; answers 409 (Plane's duplicate `external_id`) as well as 2xx.
    func create(_ path: String, _ body: JSONValue, what: String) async throws -> Answer {
        let answer = try await send(.post, path, body: body)
        if answer.status == 409 { return answer }
        _ = try expectSuccess(answer, what: what)
        return answer
    }

    /// PATCH of absolute values: repeating it leaves the same state.
    func update(_ path: String, _ body: JSONValue, what: String) async throws -> JSONValue {
        try expectSuccess(try await send(.patch, path, body: body), what: what)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
