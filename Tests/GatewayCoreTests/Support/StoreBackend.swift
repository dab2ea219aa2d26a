import Foundation
import Testing

@testable import GatewayCore

/// The two store backends, as a test parameter: a test that takes one runs on SQLite and on
/// PostgreSQL. PostgreSQL comes from AGENT_GATEWAY_TEST_POSTGRES_URL (scripts/test starts a
/// throwaway cluster with Tests/Tooling/postgres-cluster and sets it); each test gets a database of
/// its own in that cluster. Without the variable the PostgreSQL cases fail, saying so: they never
/// pass silently (docs/gateway.md, "The PostgreSQL backend").
enum StoreBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static let postgresVariable = "AGENT_GATEWAY_TEST_POSTGRES_URL"

    var testDescription: String { rawValue }

    /// A new, empty database of this backend: a SQLite file path, or a PostgreSQL URL (with the
    /// cluster's password: never print it).
    func makeLocation() async throws -> String {
        switch self {
        case .sqlite:
            return temporaryDirectory() + "/gateway.sqlite"
        case .postgres:
            return try await Self.makePostgresDatabase()
        }
    }

    /// A new, empty, migrated store of this backend.
    func makeStore() async throws -> any GatewayStore { try await openStore(at: try await makeLocation()) }

    /// The store at a location ``makeLocation()`` made (migrated when new).
    func openStore(at location: String) async throws -> any GatewayStore {
        switch self {
        case .sqlite: return try SQLiteGatewayStore(path: location)
        case .postgres: return try await PostgresGatewayStore.open(url: try PostgresURL(parsing: location))
        }
    }

    /// The cluster's URL from the environment, or a failure that says how to get one.
    static func postgresServerURL() throws -> PostgresURL {
        guard let value = ProcessInfo.processInfo.environment[postgresVariable], !value.isEmpty else {
            throw TestFailure(
                "PostgreSQL case: \(postgresVariable) is not set; run scripts/test, or export the URL printed by Tests/Tooling/postgres-cluster start DIR"
            )
        }
        return try PostgresURL(parsing: value)
    }

    /// The admin connection that creates the tests' databases, one per process.
    nonisolated(unsafe) private static var adminPool: PostgresConnectionPool?
    private static let adminLock = NSLock()

    /// Ends every connection to one of the tests' databases, as a server restart does.
    static func terminateConnections(database name: String) async throws {
        let pool = try adminConnections()
        // The name is one the tests made (gwtest_ and hex digits), never input.
        precondition(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" })
        try await BlockingWork.run {
            try pool.executeOutsideTransaction(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)' AND pid <> pg_backend_pid()")
        }
    }

    private static func adminConnections() throws -> PostgresConnectionPool {
        let server = try postgresServerURL()
        return try adminLock.withLock {
            if let adminPool { return adminPool }
            var limits = PostgresStoreLimits()
            limits.maxConnections = 2
            let pool = try PostgresConnectionPool(url: server, limits: limits)
            adminPool = pool
            return pool
        }
    }

    static func makePostgresDatabase() async throws -> String {
        let server = try postgresServerURL()
        let name = "gwtest_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let pool = try adminConnections()
        // The name is made here from hex digits, never from input: an identifier cannot be bound.
        try await BlockingWork.run { try pool.executeOutsideTransaction("CREATE DATABASE \(name)") }
        var url = server
        url.database = name
        return url.urlWithPassword
    }
}
