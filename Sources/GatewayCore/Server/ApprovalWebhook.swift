import AgentWire
import CurlHTTP
import Logging
import NIOConcurrencyHelpers
import SodiumKit
import SystemSupport

/// Where the gateway announces new approval requests (`serve --approval-webhook URL
/// --approval-webhook-secret-file FILE`), so that a team can route them to its chat.
public struct ApprovalWebhookSettings: Sendable {
    public var url: String
    /// The HMAC-SHA-256 key that signs each body; it is never sent.
    public var secret: [UInt8]
    /// Deliveries of one event, the first included.
    public var attempts = 5
    /// The pause before the second attempt; it doubles before each next one (1, 2, 4, 8 s).
    public var firstRetryMilliseconds: Int64 = 1000

    public static let secretBytes = 16...4096

    public init(url: String, secret: [UInt8]) {
        self.url = url
        self.secret = secret
    }

    /// The settings from the flags: an http(s) URL, and a secret file of 16 to 4096 bytes (a
    /// trailing newline is not part of the secret).
    public static func load(url: String, secretFile: String) throws -> ApprovalWebhookSettings {
        let lowered = url.lowercased()
        guard lowered.hasPrefix("https://") || lowered.hasPrefix("http://"), url.utf8.count <= 2000,
            url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else {
            throw GatewayError.validationFailed("--approval-webhook must be an http:// or https:// URL without spaces")
        }
        var bytes: [UInt8]
        do { bytes = try FileSystem.readRequiredFile(secretFile, limit: secretBytes.upperBound + 2) } catch {
            throw GatewayError.validationFailed("cannot read the webhook secret file \(secretFile) (\(error)); make one with 32 random bytes")
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        guard secretBytes.contains(bytes.count) else {
            throw GatewayError.validationFailed("the webhook secret must have \(secretBytes.lowerBound) to \(secretBytes.upperBound) bytes")
        }
        return ApprovalWebhookSettings(url: url, secret: bytes)
    }
}

/// Sends `approval.requested` events: a JSON body signed with HMAC-SHA-256
/// (`X-Agent-Gateway-Signature: sha256=HEX` over the exact body bytes), tried again with
/// back-off on a network error, 429 or 5xx. The body names the request, who asks, the tool, the
/// project and the summary in words: no argument text beyond the summary, never a token or a secret.
/// At most ``maximumInFlight`` deliveries run at once; an event past that is dropped with a line on stderr.
final class ApprovalWebhook: Sendable {
    static let maximumInFlight = 64

    let settings: ApprovalWebhookSettings
    private let http: CurlHTTPClient
    private let inFlight = NIOLockedValueBox(0)

    init(settings: ApprovalWebhookSettings) {
        self.settings = settings
        var configuration = HTTPClientConfiguration()
        configuration.requestTimeout = .seconds(10)
        configuration.maximumResponseBytes = 64 * 1024
        self.http = CurlHTTPClient(configuration: configuration)
    }

    static func signature(_ body: [UInt8], secret: [UInt8]) -> String { "sha256=" + Hex.encode(Hash.hmacSHA256(body, key: secret)) }

    /// The event body for a new request.
    static func body(_ request: ApprovalRequestRecord, agentName: String, deliveryID: String, at moment: Int64, console: String?) -> JSONValue {
        [
            "type": "approval.requested", "delivery": .string(deliveryID), "at": .string(Timestamp.rfc3339(milliseconds: moment)),
            "request": [
                "id": .string(request.id), "agent": ["id": .string(request.agentID), "name": .string(agentName)],
                "owner": .string(request.ownerID), "tool": .string(request.tool), "project": request.project.map { .string($0) } ?? .null,
                "summary": .string(request.summary), "tier": .string(request.tier), "scope": .string(request.scope),
                "approvers": .string(request.approvers), "session": .string(request.sessionID),
                "expiresAt": .string(Timestamp.rfc3339(milliseconds: request.expiresAt)),
            ],
            "decide": console.map { .string($0) } ?? .null,
        ]
    }

    /// Announces a new request in the background.
    func announce(_ request: ApprovalRequestRecord, agentName: String, at moment: Int64, console: String?) {
        let admitted = inFlight.withLockedValue { count -> Bool in
            guard count < Self.maximumInFlight else { return false }
            count += 1
            return true
        }
        guard admitted else {
            Gateway.operatorLog.warning(
                "approval webhook: \(Self.maximumInFlight) deliveries already running; request \(request.id) not announced")
            return
        }
        let deliveryID = "dlv_\(ULID())"
        let body = Self.body(request, agentName: agentName, deliveryID: deliveryID, at: moment, console: console).serialized()
        Task {
            await self.deliver(body, deliveryID: deliveryID, requestID: request.id)
            self.inFlight.withLockedValue { $0 -= 1 }
        }
    }

    private func deliver(_ body: [UInt8], deliveryID: String, requestID: String) async {
        let headers = [
            HTTPHeader("Content-Type", "application/json"), HTTPHeader("User-Agent", "agent-gateway"),
            HTTPHeader("X-Agent-Gateway-Event", "approval.requested"), HTTPHeader("X-Agent-Gateway-Delivery", deliveryID),
            HTTPHeader("X-Agent-Gateway-Signature", Self.signature(body, secret: settings.secret)),
        ]
        var last = "no attempt"
        var pause = settings.firstRetryMilliseconds
        for attempt in 1...max(1, settings.attempts) {
            do {
                let response = try await http.send(HTTPRequest(method: "POST", url: settings.url, headers: headers, body: body))
                if (200..<300).contains(response.status) { return }
                last = "HTTP \(response.status)"
                if response.status != 429 && response.status < 500 { break }
            } catch {
                last = "\((error as? HTTPClientError)?.code.rawValue ?? "error")"
            }
            if attempt < settings.attempts {
                try? await Task.sleep(for: .milliseconds(pause))
                pause *= 2
            }
        }
        Gateway.operatorLog.warning(
            "approval webhook: delivery \(deliveryID) of request \(requestID) failed (\(last)); decide it in the console or with `agent-gateway approvals`"
        )
    }
}
