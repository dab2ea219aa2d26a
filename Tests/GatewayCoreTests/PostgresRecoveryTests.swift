import Foundation
import TestSupport
import Testing

@testable import GatewayCore

/// The PostgreSQL store after its connections die: the transaction that meets a dead connection
/// fails with an error, the next one connects anew. No restart of the gateway, no hang.
@Suite("PostgreSQL store: reconnecting")
struct PostgresRecoveryTests {
    /// Reads until one succeeds, at most `attempts` times; returns the value and the failures seen.
    func readSetting(_ store: PostgresGatewayStore, _ name: String, attempts: Int = 3) async -> (String?, [String]) {
        var failures: [String] = []
        for _ in 0..<attempts {
            do {
                return (try await store.read { try $0.setting(name) }, failures)
            } catch {
                failures.append("\(error)")
            }
        }
        return (nil, failures)
    }

    /// The server ends the store's connections (as `pg_terminate_backend` or a server crash does).
    @Test func postgresStoreReconnectsAfterItsConnectionsAreKilled() async throws {
        let url = try PostgresURL(parsing: try await StoreBackend.postgres.makeLocation())
        let store = try await PostgresGatewayStore.open(url: url)
        try await store.write { try $0.setSetting("before", value: "kept") }
        try await StoreBackend.terminateConnections(database: url.database)
        let (value, failures) = await readSetting(store, "before")
        #expect(value == "kept", "\(failures)")
        #expect(failures.count <= 1, "\(failures)")
        for failure in failures { #expect(failure.contains("reconnects") && !failure.contains(url.password ?? "-"), "\(failure)") }
        try await store.write { try $0.setSetting("after", value: "written") }
        #expect(try await store.read { try $0.setting("after") } == "written")
    }

    /// A real restart of a cluster of the test's own (Tests/Tooling/postgres-cluster stop, start).
    @Test func postgresStoreRecoversAfterTheServerRestarts() async throws {
        let script = repositoryRoot() + "/Tests/Tooling/postgres-cluster"
        let directory = temporaryDirectory()
        func cluster(_ command: String) throws -> String {
            let result = try Command.runBlocking(script, [command, directory], environment: Command.inheritedEnvironment, timeout: .seconds(120))
            guard result.status == 0 else { throw TestFailure("postgres-cluster \(command) failed: \(result.stderr)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let url = try PostgresURL(parsing: try cluster("start"))
        defer {
            _ = try? cluster("stop")
            try? FileManager.default.removeItem(atPath: directory)
        }
        let store = try await PostgresGatewayStore.open(url: url)
        try await store.write { w in
            for index in 0..<20 { try w.setSetting("row \(index)", value: "\(index)") }
        }
        _ = try cluster("stop")
        let (down, downFailures) = await readSetting(store, "row 0", attempts: 1)
        #expect(down == nil && downFailures.count == 1)
        #expect(downFailures.allSatisfy { $0.contains("postgres://gateway@127.0.0.1") && !$0.contains(url.password ?? "-") }, "\(downFailures)")
        #expect(try cluster("start") == url.urlWithPassword)
        let (value, failures) = await readSetting(store, "row 19")
        #expect(value == "19", "\(failures)")
        #expect(failures.count <= 1, "\(failures)")
        try await store.write { try $0.setSetting("after restart", value: "yes") }
        #expect(try await store.read { try $0.setting("after restart") } == "yes")
    }
}
