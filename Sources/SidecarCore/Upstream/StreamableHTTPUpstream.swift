import AgentWire
import Logging
import SodiumKit
import Synchronization
import SystemSupport

/// How the upstream was found to speak.
public enum UpstreamEra: Sendable, Equatable {
    /// `initialize` handshake; `sessionID` is the `Mcp-Session-Id` it issued, if any.
    case legacy(version: String, sessionID: String?)
    /// 2026-07-28 and later: stateless, version in every request's `_meta`.
    case modern(version: String)

    var protocolVersion: String {
        switch self {
        case .legacy(let version, _), .modern(let version): return version
        }
    }
}

/// What the upstream told us about itself.
public struct UpstreamHandshake: Sendable {
    public let era: UpstreamEra
    public let capabilities: JSONValue
    public let serverInfo: JSONValue?
    public let instructions: String?
    let generation: Int

    /// A handshake as an upstream reported it (tests and the fuzz target make their own).
    public init(era: UpstreamEra, capabilities: JSONValue, serverInfo: JSONValue? = nil, instructions: String? = nil) {
        self.init(era: era, capabilities: capabilities, serverInfo: serverInfo, instructions: instructions, generation: 0)
    }

    init(era: UpstreamEra, capabilities: JSONValue, serverInfo: JSONValue?, instructions: String?, generation: Int) {
        self.era = era
        self.capabilities = capabilities
        self.serverInfo = serverInfo
        self.instructions = instructions
        self.generation = generation
    }

    public var offersToolListChanges: Bool { capabilities["tools"]?["listChanged"]?.boolValue == true }
}

/// Settings of the upstream bridge.
public struct UpstreamSettings: Sendable {
    public var url: UpstreamURL
    public var extraHeaders: [HTTPHeader] = []
    public var requestTimeout: Duration = .seconds(120)
    /// Retries of one call: connections refused before any byte left, and 429/503 with Retry-After.
    public var maximumRetries = 2
    /// A Retry-After longer than this is not waited for; the call fails with the advice instead.
    public var maximumRetryWait: Duration = .seconds(10)
    /// Try the stateless 2026-07-28 revision first.
    public var prefersModern = true

    public init(url: UpstreamURL) { self.url = url }
}

/// An MCP client for the Streamable HTTP transport over libcurl: finds the upstream's era
/// (a `server/discover` probe, then `initialize`), keeps `Mcp-Session-Id`, re-initializes once
/// when the session is gone, retries only where that is safe, and relays notifications that
/// arrive on a response stream before the response.
public final class StreamableHTTPUpstream: Sendable {
    public typealias NotificationHandler = @Sendable (UpstreamMessage) -> Void

    struct State {
        var handshake: UpstreamHandshake?
        var connecting: Task<UpstreamHandshake, any Error>?
        var nextRequestID = 1
        var generation = 0
        var knownEra: Bool?  // true = modern, false = legacy; nil = not probed yet
    }

    let http: CurlHTTPClient
    public let settings: UpstreamSettings
    let credentials: any UpstreamCredentialSource
    let logger: Logger
    let state = Mutex(State())

    public init(settings: UpstreamSettings, http: CurlHTTPClient, credentials: any UpstreamCredentialSource, logger: Logger) {
        self.settings = settings
        self.http = http
        self.credentials = credentials
        self.logger = logger
    }

    // MARK: Handshake

    /// The upstream's handshake, performed once and shared by concurrent callers.
    public func handshake() async throws(UpstreamFailure) -> UpstreamHandshake {
        // Every request asks; once known, answer without a task (and the thread hop it costs).
        if let handshake = state.withLock({ $0.handshake }) { return handshake }
        let task: Task<UpstreamHandshake, any Error> = state.withLock { state in
            if let handshake = state.handshake { return Task { handshake } }
            if let connecting = state.connecting { return connecting }
            let connecting = Task { try await self.performHandshake() }
            state.connecting = connecting
            return connecting
        }
        do {
            let handshake = try await task.value
            state.withLock { state in
                if state.handshake == nil || state.handshake!.generation < handshake.generation { state.handshake = handshake }
                state.connecting = nil
            }
            return handshake
        } catch {
            state.withLock { $0.connecting = nil }
            throw asFailure(error)
        }
    }

    /// The handshake if it has completed, without waiting.
    public var currentHandshake: UpstreamHandshake? { state.withLock { $0.handshake } }

    /// Forgets the session so that the next call initializes again (after a 404).
    func invalidate(generation: Int) {
        state.withLock { state in
            if let handshake = state.handshake, handshake.generation == generation { state.handshake = nil }
        }
    }

    func modernMeta(version: String) -> JSONValue {
        [
            ModernMetaKey.protocolVersion: .string(version), ModernMetaKey.clientCapabilities: [:],
            ModernMetaKey.clientInfo: SidecarIdentity.implementation,
        ]
    }

    func allocateRequestID() -> Int {
        state.withLock { state in
            defer { state.nextRequestID += 1 }
            return state.nextRequestID
        }
    }

    // MARK: Shutdown

    /// Ends the upstream session (`DELETE` with `Mcp-Session-Id`) and the credential's session,
    /// both at once: the shutdown budget is short, and ending the credential's session (which
    /// kills the token) must not wait behind the other.
    public func close(timeout: Duration) async {
        var endMCPSession: HTTPRequest?
        if let handshake = currentHandshake, case .legacy(_, let sessionID?) = handshake.era {
            // baseHeaders carries the Mcp-Session-Id of a legacy era.
            let headers = (try? await baseHeaders(era: handshake.era, method: nil, toolName: nil)) ?? settings.extraHeaders
            logger.debug("ending upstream session \(sessionID.prefix(8))…")
            endMCPSession = HTTPRequest(method: "DELETE", url: settings.url.text, headers: headers, timeout: timeout)
        }
        await withTaskGroup(of: Void.self) { group in
            if let endMCPSession { group.addTask { _ = try? await self.http.send(endMCPSession) } }
            group.addTask { await self.credentials.close() }
        }
    }

    /// Maps an HTTP error status to a failure that says what happened and what to do next.
    func failure(status: Int, headers: [HTTPHeader], body: [UInt8]) -> UpstreamFailure {
        HTTPErrorAnswer(status: status, headers: headers, body: body).upstreamFailure
    }

    func asFailure(_ error: any Error) -> UpstreamFailure {
        if let failure = error as? UpstreamFailure { return failure }
        if error is CancellationError { return UpstreamFailure(code: .cancelled, message: "the call was cancelled") }
        if let httpError = error as? HTTPClientError {
            return UpstreamFailure.from(httpError, upstream: settings.url.text, timeout: settings.requestTimeout)
        }
        if error is ServerSentEventDecoder.EventTooLarge {
            return UpstreamFailure(code: .tooLarge, message: "the upstream sent an event larger than the size limit; raise --max-message-bytes")
        }
        return UpstreamFailure(code: .badResponse, message: "the upstream exchange failed: \(error)")
    }
}
