import AgentWire
import TestSupport
import Testing

@testable import SidecarCore

/// `ProtocolNegotiation`: which revision governs each request, and what the sidecar says about
/// itself in each era. The first tests call the part directly; the last ones go through a whole
/// server over `MemoryUpstream`.
@Suite struct ProtocolNegotiationTests {
    static let key = RequestKey(.int(1))!

    static func initializeParams(_ version: String) -> JSONObject {
        ["protocolVersion": .string(version), "capabilities": [:], "clientInfo": ["name": "test", "version": "1"]]
    }

    @Test(arguments: ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
    func echoesEveryLegacyRevision(version: String) {
        let negotiation = ProtocolNegotiation(extraInstructions: nil)
        #expect(negotiation.negotiate(id: Self.key, params: Self.initializeParams(version)) == nil)
        #expect(negotiation.legacyRevision?.rawValue == version)
        let result = negotiation.initializeResult(id: Self.key, handshake: nil, instructions: nil)
        #expect(result.json?["result"]?["protocolVersion"]?.stringValue == version)
    }

    @Test(arguments: ["2023-01-01", "2026-07-28", "2099-12-31", "not a date"])
    func offersTheLatestLegacyRevisionForAnyOther(version: String) {
        let negotiation = ProtocolNegotiation(extraInstructions: nil)
        #expect(negotiation.negotiate(id: Self.key, params: Self.initializeParams(version)) == nil)
        #expect(negotiation.legacyRevision == .v2025_11_25)
    }

    @Test func refusesAMalformedOrRepeatedInitialize() {
        let negotiation = ProtocolNegotiation(extraInstructions: nil)
        #expect(negotiation.negotiate(id: Self.key, params: nil)?.errorCode == -32602)
        #expect(negotiation.negotiate(id: Self.key, params: ["protocolVersion": 20_250_618])?.errorCode == -32602)
        #expect(negotiation.negotiate(id: Self.key, params: ["protocolVersion": "2025-06-18", "capabilities": []])?.errorCode == -32602)
        #expect(negotiation.legacyRevision == nil, "a refused initialize negotiates nothing")
        #expect(negotiation.negotiate(id: Self.key, params: Self.initializeParams("2025-06-18")) == nil)
        let again = negotiation.negotiate(id: Self.key, params: Self.initializeParams("2024-11-05"))
        #expect(again?.errorCode == -32600)
        #expect(negotiation.legacyRevision == .v2025_06_18, "the first initialize stands")
    }

    @Test func aRequestsOwnModernRevisionWinsOverTheSession() throws {
        let negotiation = ProtocolNegotiation(extraInstructions: nil)
        let modern: JSONObject = ["_meta": [ModernMetaKey.protocolVersion: "2026-07-28"]]
        #expect(try negotiation.context(params: nil).get().revision == .v2025_11_25, "no handshake: the latest legacy revision")
        #expect(try negotiation.context(params: modern).get().revision == .v2026_07_28)
        #expect(try negotiation.context(params: modern).get().isModern)
        _ = negotiation.negotiate(id: Self.key, params: Self.initializeParams("2025-03-26"))
        #expect(try negotiation.context(params: nil).get().revision == .v2025_03_26)
        #expect(try negotiation.context(params: modern).get().revision == .v2026_07_28)
    }

    @Test func anUnknownVersionInMetaIsRefusedWithWhatTheSidecarSpeaks() throws {
        let negotiation = ProtocolNegotiation(extraInstructions: nil)
        let unknown: JSONObject = ["_meta": [ModernMetaKey.protocolVersion: "2030-01-01"]]
        guard case .failure(let error) = negotiation.context(params: unknown) else {
            Issue.record("an unknown version without a negotiated one must be refused")
            return
        }
        #expect(error.code == -32022)
        #expect(error.data?["requested"] == "2030-01-01")
        #expect(error.data?["supported"] == ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"])
        // With a negotiated session the request is served in the session's revision.
        _ = negotiation.negotiate(id: Self.key, params: Self.initializeParams("2025-06-18"))
        #expect(try negotiation.context(params: unknown).get().revision == .v2025_06_18)
    }

    @Test func batchesOnlyIn20250326() {
        let before = ProtocolNegotiation(extraInstructions: nil)
        #expect(before.batchRefusal()?.contains("this session") == true)
        for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
            let negotiation = ProtocolNegotiation(extraInstructions: nil)
            _ = negotiation.negotiate(id: Self.key, params: Self.initializeParams(version))
            if version == "2025-03-26" {
                #expect(negotiation.batchRefusal() == nil)
            } else {
                #expect(negotiation.batchRefusal()?.contains("revision \(version)") == true)
            }
        }
    }

    @Test func anErrorWithoutAnIDHasANullIDUntil20251125() {
        func error(after version: String?) -> JSONValue {
            let negotiation = ProtocolNegotiation(extraInstructions: nil)
            if let version { _ = negotiation.negotiate(id: Self.key, params: Self.initializeParams(version)) }
            return negotiation.errorWithoutID(code: -32700, message: "Parse error")
        }
        #expect(error(after: nil)["id"] == .null)
        #expect(error(after: "2025-06-18")["id"] == .null)
        #expect(error(after: "2025-11-25")["id"] == nil)
        // A modern client (no initialize) gets the modern form once it has made a request.
        let modern = ProtocolNegotiation(extraInstructions: nil)
        _ = modern.context(params: ["_meta": [ModernMetaKey.protocolVersion: "2026-07-28"]])
        #expect(modern.errorWithoutID(code: -32700, message: "Parse error")["id"] == nil)
    }

    @Test func passesOnTheUpstreamsInstructionsAndCapabilities() {
        let negotiation = ProtocolNegotiation(extraInstructions: "Also: be brief.")
        let handshake = MemoryUpstream(mode: .legacy).handshakeValue
        #expect(negotiation.instructions(handshake: handshake) == "Use the tools.\n\nAlso: be brief.")
        #expect(negotiation.instructions(handshake: nil) == "Also: be brief.")
        #expect(ProtocolNegotiation(extraInstructions: nil).instructions(handshake: nil) == nil)

        let legacy = ProtocolNegotiation.advertisedCapabilities(handshake: handshake, modern: false)
        #expect(legacy.keys.sorted() == ["completions", "logging", "prompts", "resources", "tools"])
        #expect(legacy["tools"] == ["listChanged": true])
        #expect(legacy["resources"] == ["subscribe": true])
        let modern = ProtocolNegotiation.advertisedCapabilities(handshake: handshake, modern: true)
        #expect(modern["logging"] == nil, "2026-07-28 has no logging/setLevel")
        #expect(ProtocolNegotiation.advertisedCapabilities(handshake: nil, modern: false).keys == ["tools", "logging"])
    }

    // MARK: Through a server

    @Test func initializeThroughAServerWaitsForTheUpstream() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy))
        let answer = try #require(await serve.request(initialize(id: 1, version: "2025-06-18")))
        let result = try #require(answer["result"])
        #expect(result["protocolVersion"] == "2025-06-18")
        #expect(result["instructions"] == "Use the tools.")
        #expect(result["serverInfo"]?["name"] == "agent-sidecar")
        #expect(result["capabilities"]?["prompts"] == [:])
        // A second initialize on the same stream is refused.
        #expect(await serve.request(initialize(id: 2, version: "2025-06-18"))?["error"]?["code"] == -32600)
        _ = await serve.stop()
    }

    @Test func initializeWithAnUnreachableUpstreamStillAnswers() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .unreachable))
        let result = try #require(await serve.request(initialize(id: 1, version: "2025-11-25"))?["result"])
        #expect(result["protocolVersion"] == "2025-11-25")
        #expect(result["instructions"] == nil)
        #expect(result["capabilities"]?.objectValue?.keys == ["tools", "logging"])
        _ = await serve.stop()
    }

    @Test func discoverListsEveryRevisionNewestFirst() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        let result = try #require(await serve.request(["jsonrpc": "2.0", "id": "d", "method": "server/discover"])?["result"])
        #expect(result["supportedVersions"] == ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"])
        #expect(result["resultType"] == "complete")
        #expect(result["_meta"]?[ModernMetaKey.serverInfo]?["name"] == "agent-sidecar")
        _ = await serve.stop()
    }

    @Test func theModernEraIsServedStatelesslyBesideALegacySession() async throws {
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .modern))
        _ = await serve.request(initialize(id: 1, version: "2025-06-18"))
        // A modern request names its revision: tools/list gets the modern fields, ping does not exist.
        let tools = try #require(await serve.request(modernRequest(id: 2, method: "tools/list"))?["result"])
        #expect(tools["resultType"] == "complete")
        #expect(tools["ttlMs"] == 0)
        #expect(tools["cacheScope"] == "private")
        #expect(await serve.request(modernRequest(id: 3, method: "ping"))?["error"]?["code"] == -32601)
        // The legacy session goes on in its own revision.
        let legacyTools = try #require(await serve.request(["jsonrpc": "2.0", "id": 4, "method": "tools/list"])?["result"])
        #expect(legacyTools["resultType"] == nil)
        #expect(await serve.request(["jsonrpc": "2.0", "id": 5, "method": "ping"])?["result"] == [:])
        _ = await serve.stop()
    }
}

extension Reply {
    /// The reply as the client would read it (nil when deferred).
    var json: JSONValue? {
        guard let frame else { return nil }
        return try? JSONValue(parsing: frame)
    }

    var errorCode: Int? { json?["error"]?["code"]?.intValue }
}

func initialize(id: Int, version: String) -> JSONValue {
    [
        "jsonrpc": "2.0", "id": .int(id), "method": "initialize",
        "params": ["protocolVersion": .string(version), "capabilities": [:], "clientInfo": ["name": "test", "version": "1"]],
    ]
}

/// A 2026-07-28 request: the revision, capabilities and client in `_meta`.
func modernRequest(id: JSONValue, method: String, params: JSONObject = [:]) -> JSONValue {
    var params = params
    var meta = params["_meta"]?.objectValue ?? [:]
    meta[ModernMetaKey.protocolVersion] = "2026-07-28"
    meta[ModernMetaKey.clientCapabilities] = [:]
    meta[ModernMetaKey.clientInfo] = ["name": "test", "version": "1"]
    params["_meta"] = .object(meta)
    return ["jsonrpc": "2.0", "id": id, "method": .string(method), "params": .object(params)]
}

@Suite("Waiting a bounded time for the upstream")
struct BoundedWaitTests {
    @Test("value(within:) returns at its limit even when the operation waits on a task that ignores cancellation")
    func returnsAtTheLimit() async {
        // What a gateway that accepts and never answers looks like to the handshake: an await on
        // another task's value, which the caller's cancellation does not reach.
        let stuck = Task { try? await Task.sleep(for: .seconds(600)) }
        defer { stuck.cancel() }
        let started = ContinuousClock.now
        let result: Int? = await value(within: .milliseconds(200)) {
            _ = await stuck.value
            return 1
        }
        #expect(result == nil)
        // A bound, not a speed check: the old task-group version waited the stuck task's full 600 s;
        // a full parallel run on 2 cores once took 30.6 s to resume this one.
        #expect(ContinuousClock.now - started < .seconds(300))
    }

    @Test("a quick operation's value is returned")
    func quickValue() async {
        let result: Int? = await value(within: .seconds(30)) { 7 }
        #expect(result == 7)
    }
}
