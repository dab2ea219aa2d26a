import AgentWire
import Foundation
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

    @Test func readinessFollowsTheDatabase() async throws {
        let sqlite = try SQLiteGatewayStore(path: temporaryDirectory() + "/gateway.sqlite")
        let store = SwitchableStore(sqlite)
        let key = try await GatewayAdmin.loadHashKey(store: sqlite, hashKeyFile: nil)
        let gateway = try Gateway(store: store, hashKey: key, configuration: GatewayConfiguration())
        #expect(await gateway.readinessFailure() == nil)
        store.failing.withLockedValue { $0 = true }
        let failure = await gateway.readinessFailure()
        #expect(failure?.contains("the database did not answer a read (connection refused)") == true, "\(failure ?? "nil")")
        store.failing.withLockedValue { $0 = false }
        #expect(await gateway.readinessFailure() == nil)
    }

    @Test func readyzAndHealthzOverHTTP() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        let ready = try await HTTP.send("GET", gateway.url + "/readyz")
        #expect(ready.status == 200 && ready.json == ["ready": true])
        #expect(try await HTTP.send("GET", gateway.url + "/healthz").json == ["ok": true])
    }
}
