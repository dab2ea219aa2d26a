import AgentWire
import Logging
import SystemSupport
import TestSupport
import Testing

@testable import SidecarCore

/// `StoredCatalogFallback`: paired mode lists the stored catalog when the gateway cannot be used,
/// and says why in `initialize`. (Recovery, when the gateway comes back, is end to end in
/// `PairedServeTests`.)
@Suite struct StoredCatalogFallbackTests {
    static let gateway = "https://gateway.example"
    static let storedTools: [JSONValue] = [
        ["name": "stored_read", "inputSchema": ["type": "object"], "annotations": ["readOnlyHint": true]],
        ["name": "stored_write", "inputSchema": ["type": "object"]],
    ]

    /// A catalog memory over a temporary state directory, holding `storedTools` unless `empty`.
    static func catalog(in directory: TemporaryDirectory, empty: Bool = false) throws -> ToolCatalogMemory {
        let paths = SidecarPaths(environment: ["AGENT_SIDECAR_HOME": directory.path])
        let cache = ToolCatalogCache(paths: paths, profile: "work", gatewayURL: gateway)
        try FileSystem.createDirectories(FileSystem.directory(of: cache.path), mode: 0o700)
        if !empty {
            try cache.store(ToolCatalogSnapshot(tools: storedTools, instructions: "Gateway says hello.", gatewayURL: gateway))
        }
        return ToolCatalogMemory(cache: cache, logger: Logger(label: "test") { _ in DiscardingLogHandler() })
    }

    @Test func anUnreachableGatewayListsTheStoredCatalogAndSaysWhy() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var options = ServeOptions()
        options.readOnly = true
        // The upstream fails at once; long waits keep a starved test process from reading a slow
        // answer as no answer.
        options.initializeWaitForUpstream = .seconds(60)
        options.toolsListWaitForUpstream = .seconds(60)
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .unreachable), options: options, catalog: try Self.catalog(in: directory))
        let instructions = try #require(await serve.request(initialize(id: 1, version: "2025-11-25"))?["result"]?["instructions"]?.stringValue)
        #expect(instructions.hasPrefix("Gateway says hello.\n\nagent-sidecar: the gateway could not be reached when the session started"))
        #expect(instructions.contains("The tools listed are the last catalog this gateway served."))

        let tools = try #require(await serve.request(["jsonrpc": "2.0", "id": 2, "method": "tools/list"])?["result"]?["tools"]?.arrayValue)
        #expect(tools.compactMap { $0["name"]?.stringValue } == ["stored_read"], "narrowing applies to the stored catalog too")
        // A page the sidecar cannot serve from the catalog is empty.
        let paged = await serve.request(["jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": ["cursor": "2"]])
        #expect(paged?["result"]?["tools"] == [])
        _ = await serve.stop()
    }

    @Test func withoutAStoredCatalogNothingIsListedAndSetupIsNamed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .unreachable), catalog: try Self.catalog(in: directory, empty: true))
        let instructions = try #require(await serve.request(initialize(id: 1, version: "2025-11-25"))?["result"]?["instructions"]?.stringValue)
        #expect(instructions.contains("run `agent-sidecar setup` again"))
        #expect(await serve.request(["jsonrpc": "2.0", "id": 2, "method": "tools/list"])?["result"]?["tools"] == [])
        _ = await serve.stop()
    }

    @Test func aReachableGatewaysCatalogIsListedAndStored() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let catalog = try Self.catalog(in: directory)
        var options = ServeOptions()
        options.toolsListWaitForUpstream = .seconds(60)  // the upstream answers at once; see above
        let serve = InMemoryStdioServer(upstream: MemoryUpstream(mode: .legacy), options: options, catalog: catalog)
        let initialized = await serve.request(initialize(id: 1, version: "2025-11-25"))
        #expect(initialized?["result"]?["instructions"] == "Use the tools.")
        let tools = try #require(await serve.request(["jsonrpc": "2.0", "id": 2, "method": "tools/list"])?["result"]?["tools"]?.arrayValue)
        #expect(tools.count == 6)
        #expect(catalog.current?.tools == MemoryUpstream.tools.arrayValue, "the gateway's catalog replaces the stored one")
        #expect(catalog.current?.instructions == "Use the tools.")
        let all = await serve.stop()
        #expect(!all.contains { $0["method"] == "notifications/tools/list_changed" }, "the client is answered with it: nothing to announce")
    }

    @Test func refusalsAreToldApartFromOutages() {
        #expect(StoredCatalogFallback.isRefusal(UpstreamFailure(code: .unauthorized, message: "x", httpStatus: 401)))
        #expect(StoredCatalogFallback.isRefusal(UpstreamFailure(code: .configuration, message: "bad key file")))
        #expect(!StoredCatalogFallback.isRefusal(MemoryUpstream.down))
        #expect(!StoredCatalogFallback.isRefusal(UpstreamFailure(code: .upstreamError, message: "x", httpStatus: 500)))
    }
}
