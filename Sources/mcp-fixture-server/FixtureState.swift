import AgentWire
import Hummingbird
import Synchronization

/// One HTTP request to the MCP endpoint, as `GET /_fixture/log` reports it.
struct RequestRecord: Sendable {
    var httpMethod: String
    var method: String?
    var tool: String?
    var id: JSONValue?
    var sessionID: String?
    var protocolVersionHeader: String?
    var protocolVersionMeta: String?
    var idempotencyKey: String?
    var expectsContinue = false

    var json: JSONValue {
        [
            "httpMethod": .string(httpMethod),
            "method": method.map(JSONValue.string) ?? .null,
            "tool": tool.map(JSONValue.string) ?? .null,
            "id": id ?? .null,
            "sessionId": sessionID.map(JSONValue.string) ?? .null,
            "protocolVersionHeader": protocolVersionHeader.map(JSONValue.string) ?? .null,
            "protocolVersionMeta": protocolVersionMeta.map(JSONValue.string) ?? .null,
            "idempotencyKey": idempotencyKey.map(JSONValue.string) ?? .null,
            "expect100Continue": .bool(expectsContinue),
        ]
    }
}

/// A tool call that can be cancelled by `notifications/cancelled` or by the client closing its connection.
final class InFlightCall: Sendable {
    private struct State {
        var cancelled = false
        var finished = false
        var sleeper: Task<Void, any Error>?
    }
    private let state = Mutex(State())

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// Waits, unless the call is or becomes cancelled. Returns `false` when cancelled.
    func pause(milliseconds: Int) async -> Bool {
        let sleeper = Task { try await Task.sleep(for: .milliseconds(milliseconds)) }
        let started = state.withLock { state -> Bool in
            guard !state.cancelled else { return false }
            state.sleeper = sleeper
            return true
        }
        guard started else {
            sleeper.cancel()
            return false
        }
        let outcome = await sleeper.result
        state.withLock { $0.sleeper = nil }
        if case .failure = outcome { return false }
        return !isCancelled
    }

    /// Marks the work as done, so that a connection closing afterwards is not a cancellation.
    func finish() {
        state.withLock { $0.finished = true }
    }

    /// Cancels the call; returns `true` only for the first cancellation of unfinished work.
    @discardableResult
    func cancel() -> Bool {
        state.withLock { state in
            guard !state.cancelled, !state.finished else { return false }
            state.cancelled = true
            state.sleeper?.cancel()
            return true
        }
    }
}

/// An open server-to-client notification stream: a legacy standalone `GET /mcp` stream or a
/// modern `subscriptions/listen` response stream.
struct NotificationStream: Sendable {
    enum Kind: Sendable {
        case standalone(sessionID: String)
        case subscription(id: JSONValue, toolsListChanged: Bool)
    }
    let kind: Kind
    let continuation: AsyncStream<ByteBuffer>.Continuation
}

/// Everything the fixture remembers between requests. Each part has its own lock, so the
/// benchmark path (`tools/call add`) only takes the session and log locks briefly.
final class FixtureState: Sendable {
    private struct Log {
        var requests: [RequestRecord] = []
        var requestsDropped = 0
        var cancelledKeys: Set<String> = []
        var cancellations: [(id: JSONValue, sessionID: String?, via: String)] = []
        var deletedSessions: [String] = []
        var logLevel: String?
    }

    private struct Counters {
        var notes: [String: Int] = [:]
        var failures: [String: Int] = [:]
    }

    /// How many request records `GET /_fixture/log` keeps (the most recent ones).
    static let requestLogLimit = 100_000

    private let log = Mutex(Log())
    /// Session id → negotiated protocol version.
    private let sessions = Mutex<[String: String]>([:])
    private let counters = Mutex(Counters())
    private let inFlight = Mutex<[String: InFlightCall]>([:])
    private let streams = Mutex<(next: Int, open: [Int: NotificationStream])>((0, [:]))
    private let extraTool = Atomic<Bool>(false)

    // MARK: Request log

    func record(_ record: RequestRecord) {
        log.withLock { log in
            log.requests.append(record)
            if log.requests.count >= 2 * Self.requestLogLimit {
                log.requests.removeFirst(Self.requestLogLimit)
                log.requestsDropped += Self.requestLogLimit
            }
        }
    }

    /// Records a cancellation once per (session, request id), whichever signal arrives first.
    func recordCancellation(id: JSONValue, sessionID: String?, via: String) {
        let key = Self.callKey(id: id, sessionID: sessionID)
        log.withLock { log in
            guard log.cancelledKeys.insert(key).inserted else { return }
            log.cancellations.append((id, sessionID, via))
        }
    }

    func setLogLevel(_ level: String) {
        log.withLock { $0.logLevel = level }
    }

    func logJSON() -> JSONValue {
        let openStreams = streams.withLock { $0.open.count }
        let activeSessions = sessions.withLock { $0.count }
        return log.withLock { log in
            let recent = log.requests.suffix(Self.requestLogLimit)
            let dropped = log.requestsDropped + (log.requests.count - recent.count)
            return [
                "requests": .array(recent.map(\.json)),
                "requestsDropped": .int(dropped),
                "cancelled": .array(log.cancellations.map(\.id)),
                "cancellations": .array(
                    log.cancellations.map { entry in
                        ["id": entry.id, "sessionId": entry.sessionID.map(JSONValue.string) ?? .null, "via": .string(entry.via)]
                    }),
                "deletedSessions": .array(log.deletedSessions.map(JSONValue.string)),
                "logLevel": log.logLevel.map(JSONValue.string) ?? .null,
                "openStreams": .int(openStreams),
                "activeSessions": .int(activeSessions),
            ]
        }
    }

    /// Clears the log, the idempotency counters and the `extra_tool` toggle; sessions and streams stay.
    func reset() {
        log.withLock { $0 = Log() }
        counters.withLock { $0 = Counters() }
        extraTool.store(false, ordering: .relaxed)
    }

    // MARK: Sessions

    func openSession(protocolVersion: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<2).map { _ in hex(generator.next() as UInt64) }.joined()
        sessions.withLock { $0[id] = protocolVersion }
        return id
    }

    func sessionExists(_ id: String) -> Bool {
        sessions.withLock { $0[id] != nil }
    }

    /// Ends one session (DELETE); returns `false` when it was unknown.
    func deleteSession(_ id: String) -> Bool {
        let removed = sessions.withLock { $0.removeValue(forKey: id) != nil }
        guard removed else { return false }
        log.withLock { $0.deletedSessions.append(id) }
        closeStreams { if case .standalone(let sessionID) = $0.kind { return sessionID == id } else { return false } }
        return true
    }

    /// Forgets every session and closes their standalone streams.
    func expireSessions() {
        sessions.withLock { $0.removeAll() }
        closeStreams { if case .standalone = $0.kind { return true } else { return false } }
    }

    // MARK: Idempotency counters

    /// Counts one more `write_note` call with this key (`nil` keys share one counter).
    func countNote(key: String?) -> Int {
        counters.withLock { counters in
            let count = counters.notes[key ?? "", default: 0] + 1
            counters.notes[key ?? ""] = count
            return count
        }
    }

    /// Counts one more `fail` call with this key (`nil` keys share one counter).
    func countFailure(key: String?) -> Int {
        counters.withLock { counters in
            let count = counters.failures[key ?? "", default: 0] + 1
            counters.failures[key ?? ""] = count
            return count
        }
    }

    // MARK: Tool list

    var extraToolListed: Bool { extraTool.load(ordering: .relaxed) }

    /// Flips `extra_tool` in or out of the list; returns whether it is now listed.
    func toggleExtraTool() -> Bool {
        extraTool.logicalXor(true, ordering: .relaxed).newValue
    }

    // MARK: In-flight calls

    static func callKey(id: JSONValue, sessionID: String?) -> String {
        (sessionID ?? "-") + "\u{0}" + id.jsonText
    }

    func beginCall(id: JSONValue, sessionID: String?) -> InFlightCall {
        let call = InFlightCall()
        let key = Self.callKey(id: id, sessionID: sessionID)
        inFlight.withLock { $0[key] = call }
        return call
    }

    func endCall(id: JSONValue, sessionID: String?) {
        let key = Self.callKey(id: id, sessionID: sessionID)
        _ = inFlight.withLock { $0.removeValue(forKey: key) }
    }

    /// Handles `notifications/cancelled`: cancels the call if it is still running, and records it.
    func cancelCall(id: JSONValue, sessionID: String?) {
        let call = inFlight.withLock { $0[Self.callKey(id: id, sessionID: sessionID)] }
        call?.cancel()
        recordCancellation(id: id, sessionID: sessionID, via: "notification")
    }

    // MARK: Notification streams

    func openStream(
        _ kind: NotificationStream.Kind
    ) -> (id: Int, frames: AsyncStream<ByteBuffer>, continuation: AsyncStream<ByteBuffer>.Continuation) {
        let (frames, continuation) = AsyncStream<ByteBuffer>.makeStream()
        let id = streams.withLock { streams in
            streams.next += 1
            streams.open[streams.next] = NotificationStream(kind: kind, continuation: continuation)
            return streams.next
        }
        return (id, frames, continuation)
    }

    func closeStream(_ id: Int) {
        let stream = streams.withLock { $0.open.removeValue(forKey: id) }
        stream?.continuation.finish()
    }

    private func closeStreams(where matches: (NotificationStream) -> Bool) {
        let closing = streams.withLock { streams in
            let ids = streams.open.filter { matches($0.value) }.map(\.key)
            return ids.compactMap { streams.open.removeValue(forKey: $0) }
        }
        for stream in closing { stream.continuation.finish() }
    }

    /// Sends `notifications/tools/list_changed` on every standalone stream and on every
    /// subscription that asked for tool-list changes.
    func broadcastToolsChanged() {
        let open = streams.withLock { Array($0.open.values) }
        for stream in open {
            switch stream.kind {
            case .standalone:
                stream.continuation.yield(SSE.frame(JSONRPCBytes.notification(method: "notifications/tools/list_changed", params: nil)))
            case .subscription(let id, let toolsListChanged):
                guard toolsListChanged else { continue }
                let params: JSONValue = ["_meta": ["io.modelcontextprotocol/subscriptionId": id]]
                stream.continuation.yield(SSE.frame(JSONRPCBytes.notification(method: "notifications/tools/list_changed", params: params)))
            }
        }
    }
}

private func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
