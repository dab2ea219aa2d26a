import AgentWire
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@testable import GatewayCore

/// `/healthz` is liveness, `/readyz` readiness: it fails while the database does not answer.
@Suite("Liveness and readiness")
struct ReadinessTests {
    /// A store whose reads can be made to fail, as when the database is unreachable.
    final class SwitchableStore: GatewayStore {
        let inner: SQLiteGatewayStore
        let failing = NIOLockedValueBox(false)
        init(_ inner: SQLiteGatewayStore) { self.inner = inner }

        struct Unreachable: Error, CustomStringConvertible { var description: String { "connection refused" } }

        func read<T: Sendable>(_ body: @Sendable (any StoreReader) throws -> T) async throws -> T {
            if failing.withLockedValue({ $0 }) { throw Unreachable() }
            return try await inner.read(body)
        }
        func write<T: Sendable>(_ body: @Sendable (any StoreWriter) throws -> T) async throws -> T {
            if failing.withLockedValue({ $0 }) { throw Unreachable() }
            return try await inner.write(body)
        }
        func writeNow<T>(_ body: @Sendable (any StoreWriter) throws -> T) throws -> T {
            if failing.withLockedValue({ $0 }) { throw Unreachable() }
            return try inner.writeNow(body)
        }
    }

    @Test func readinessFollowsTheDatabaseAndLivenessDoesNot() async throws {
        let sqlite = try SQLiteGatewayStore(path: temporaryDirectory() + "/gateway.sqlite")
        let store = SwitchableStore(sqlite)
        let key = try await GatewayAdmin.loadHashKey(store: sqlite, hashKeyFile: nil)
        let gateway = try Gateway(store: store, hashKey: key, configuration: GatewayConfiguration())
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "readiness-tests")
        logger.logLevel = .critical
        let app = GatewayHTTPServer(gateway: gateway).makeApplication(host: "127.0.0.1", port: 0, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let task = Task { try await app.run() }
        defer { task.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let url = "http://127.0.0.1:\(port)"

        #expect(try await HTTP.send("GET", url + "/readyz").json == ["ready": true])
        store.failing.withLockedValue { $0 = true }
        let down = try await HTTP.send("GET", url + "/readyz")
        #expect(down.status == 503)
        #expect(down.json["ready"] == false)
        #expect(down.json["reason"]?.stringValue?.contains("the database did not answer a read") == true)
        #expect(try await HTTP.send("GET", url + "/healthz").status == 200)
        store.failing.withLockedValue { $0 = false }
        #expect(try await HTTP.send("GET", url + "/readyz").status == 200)
    }
}
