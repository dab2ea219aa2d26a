import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// The store's bounds: how many connections, and how long each wait may last.
public struct PostgresStoreLimits: Sendable, Hashable {
    /// Connections open at most (each one is held by one transaction at a time).
    public var maxConnections = 8
    /// How long a transaction waits for a free connection.
    public var acquireSeconds: Int64 = 30
    /// How long connecting (TCP, TLS, authentication) may take.
    public var connectSeconds: Int64 = 10
    /// How long one statement may take: the client stops waiting then and drops the connection; the
    /// server's `statement_timeout` is set to the same.
    public var statementSeconds: Int64 = 30

    public init() {}
}

/// Runs a synchronous closure on ``PostgresConnectionPool/blockingThreads`` and awaits it: the bridge
/// from `read`/`write` (async) to the blocking transaction. The closure may be one the caller made
/// escapable only for the call (`withoutActuallyEscaping`), so it is held in a box that lets go of it
/// before the caller resumes: the thread pool keeps its work item a moment longer than that.
final class BlockingWork<T: Sendable>: @unchecked Sendable {
    private let lock = NIOLock()
    private var body: (() throws -> T)?

    private init(_ body: @escaping () throws -> T) { self.body = body }

    static func run(_ body: @escaping () throws -> T) async throws -> T {
        let work = BlockingWork(body)
        defer { work.discard() }
        return try await PostgresConnectionPool.blockingThreads.runIfActive { try work.perform() }
    }

    private func perform() throws -> T {
        guard
            let body = lock.withLock({ () -> (() throws -> T)? in
                defer { self.body = nil }
                return self.body
            })
        else { throw CancellationError() }
        return try body()
    }

    private func discard() { lock.withLock { body = nil } }
}

/// One PostgreSQL connection, used by one thread at a time, with blocking, bounded queries.
///
/// postgres-nio runs each query on the connection's event loop and hands back an `EventLoopFuture`;
/// the store's transactions are synchronous closures, so the calling thread (a thread of
/// ``PostgresConnectionPool/blockingThreads`` or the gateway's write queue, never an event loop or
/// the cooperative pool) waits for each result, at most `statementSeconds`.
final class PostgresLink: @unchecked Sendable {
    let connection: PostgresConnection
    let logger: Logger
    let statementTimeout: TimeAmount
    let server: String
    /// Set once the connection failed or a wait timed out: the pool closes it instead of reusing it.
    var broken = false

    init(connection: PostgresConnection, logger: Logger, statementTimeout: TimeAmount, server: String) {
        self.connection = connection
        self.logger = logger
        self.statementTimeout = statementTimeout
        self.server = server
    }

    /// Runs one statement (placeholders `$1`, `$2`, …) and returns its rows and how many rows it changed.
    func run(_ sql: String, _ binds: PostgresBindings) throws(PostgresStoreError) -> (rows: [PostgresRow], changed: Int) {
        if connection.isClosed {
            broken = true
            throw PostgresStoreError(
                "the connection to PostgreSQL at \(server) is closed (the server restarted or went away); the next transaction reconnects")
        }
        let result: PostgresQueryResult
        do {
            result = try Self.wait(
                connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger), on: connection.eventLoop, timeout: statementTimeout,
                what: "a statement")
        } catch let error as PostgresStoreError {
            broken = true
            throw error
        } catch {
            let mapped = Self.describe(error, server: server)
            if mapped.sqlState == nil || connection.isClosed || mapped.endsConnection { broken = true }
            throw mapped
        }
        return (Array(result.rows), result.metadata.rows ?? 0)
    }

    /// Waits for `future` from a thread that may block, failing after `timeout`.
    static func wait<T: Sendable>(_ future: EventLoopFuture<T>, on eventLoop: any EventLoop, timeout: TimeAmount, what: String) throws -> T {
        let promise = eventLoop.makePromise(of: T.self)
        future.cascade(to: promise)
        let seconds = timeout.nanoseconds / 1_000_000_000
        let timer = eventLoop.scheduleTask(in: timeout) {
            promise.fail(
                PostgresStoreError(
                    "PostgreSQL did not answer \(what) within \(seconds) s; the connection is dropped and the next transaction reconnects"))
        }
        defer { timer.cancel() }
        return try promise.futureResult.wait()
    }

    /// One line for a postgres-nio error: the server's message and SQLSTATE, or what broke the
    /// connection. Never the query's bound values (PSQLError's own description hides them too).
    static func describe(_ error: any Error, server: String) -> PostgresStoreError {
        guard let error = error as? PSQLError else { return PostgresStoreError("PostgreSQL at \(server): \(error)") }
        if let info = error.serverInfo {
            let message = info[.message] ?? "error"
            let state = info[.sqlState]
            // FATAL and PANIC end the session; so do the classes 08 (connection) and 57 (operator
            // intervention: shutdown, terminated backend).
            let fatal = ["FATAL", "PANIC"].contains(info[.severity] ?? "") || ["08", "57"].contains(state.map { String($0.prefix(2)) } ?? "")
            if fatal {
                return PostgresStoreError(
                    "PostgreSQL at \(server) ended the connection: \(message) (SQLSTATE \(state ?? "?")); the next transaction reconnects",
                    sqlState: state,
                    endsConnection: true)
            }
            return PostgresStoreError("PostgreSQL refused a statement: \(message) (SQLSTATE \(state ?? "?"))", sqlState: state)
        }
        let underlying = error.underlying.map { ": \($0)" } ?? ""
        return PostgresStoreError(
            "the connection to PostgreSQL at \(server) failed (\(error.code)\(underlying)); the next transaction reconnects")
    }

    func close() {
        broken = true
        // The connection must outlive its closing (postgres-nio checks that it is closed when freed).
        let connection = self.connection
        connection.close().whenComplete { _ in _ = connection }
    }
}

/// A bounded pool of ``PostgresLink``s. `withConnection` blocks the calling thread: it waits at most
/// `acquireSeconds` for a free connection, reuses an idle one whose socket is still open, and
/// otherwise connects (at most `connectSeconds`). A connection that failed is closed, not reused,
/// so after PostgreSQL restarts the transaction that met the dead connection fails and the next
/// one connects anew.
final class PostgresConnectionPool: Sendable {
    /// The threads `read` and `write` run their transactions on: they block on PostgreSQL, so they are
    /// neither the cooperative pool's nor an event loop's. One set for the process, sized for the
    /// connections of one store; more transactions wait in line.
    static let blockingThreads: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()

    let url: PostgresURL
    let limits: PostgresStoreLimits
    private let configuration: PostgresConnection.Configuration
    private let slots: DispatchSemaphore
    private let idle = NIOLockedValueBox<[PostgresLink]>([])
    private let nextID = NIOLockedValueBox(0)
    private let logger: Logger

    init(url: PostgresURL, limits: PostgresStoreLimits) throws(PostgresStoreError) {
        self.url = url
        self.limits = limits
        let tls: PostgresConnection.Configuration.TLS
        switch url.tls {
        case .disable:
            tls = .disable
        case .verifyFull:
            do {
                tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            } catch {
                throw PostgresStoreError("cannot set up TLS for PostgreSQL (\(error)); check the system's CA certificates")
            }
        }
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        configuration.options.connectTimeout = .seconds(limits.connectSeconds)
        if url.tls != .disable { configuration.options.tlsServerName = url.host }
        // Commit means durable whatever the server's default; a statement or an idle transaction
        // cannot hold a connection (and its locks) for ever.
        configuration.options.additionalStartupParameters = [
            ("application_name", "agent-gateway"),
            ("synchronous_commit", "on"),
            ("statement_timeout", "\(limits.statementSeconds * 1000)"),
            ("idle_in_transaction_session_timeout", "\(limits.statementSeconds * 2000)"),
        ]
        self.configuration = configuration
        self.slots = DispatchSemaphore(value: limits.maxConnections)
        var logger = Logger(label: "agent-gateway.postgres")
        logger.logLevel = .critical
        self.logger = logger
    }

    /// Runs `body` with a connection of its own; blocks the calling thread.
    func withConnection<T>(_ body: (PostgresLink) throws -> T) throws -> T {
        guard slots.wait(timeout: .now() + .seconds(Int(limits.acquireSeconds))) == .success else {
            throw PostgresStoreError(
                "no PostgreSQL connection was free within \(limits.acquireSeconds) s (\(limits.maxConnections) in use); the database is slow or overloaded"
            )
        }
        defer { slots.signal() }
        let link = try idleLink() ?? connect()
        defer {
            if link.broken || link.connection.isClosed {
                link.close()
            } else {
                idle.withLockedValue { $0.append(link) }
            }
        }
        return try body(link)
    }

    private func idleLink() -> PostgresLink? {
        while let link = idle.withLockedValue({ $0.popLast() }) {
            if !link.connection.isClosed { return link }
            link.close()
        }
        return nil
    }

    private func connect() throws -> PostgresLink {
        let id = nextID.withLockedValue { value -> Int in
            value += 1
            return value
        }
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let connection: PostgresConnection
        do {
            connection = try PostgresLink.wait(
                PostgresConnection.connect(on: eventLoop, configuration: configuration, id: id, logger: logger), on: eventLoop,
                timeout: .seconds(limits.connectSeconds + 5), what: "the connection")
        } catch let error as PostgresStoreError {
            throw PostgresStoreError("cannot connect to PostgreSQL at \(url): \(error.message)")
        } catch let error as PSQLError {
            if let info = error.serverInfo {
                throw PostgresStoreError(
                    "cannot connect to PostgreSQL at \(url): \(info[.message] ?? "refused") (SQLSTATE \(info[.sqlState] ?? "?")); check the URL's user, password and database",
                    sqlState: info[.sqlState])
            }
            let underlying = error.underlying.map { ": \($0)" } ?? ""
            throw PostgresStoreError(
                "cannot connect to PostgreSQL at \(url) (\(error.code)\(underlying)); check that it runs and the URL's host and port")
        } catch {
            throw PostgresStoreError("cannot connect to PostgreSQL at \(url): \(error)")
        }
        return PostgresLink(connection: connection, logger: logger, statementTimeout: .seconds(limits.statementSeconds), server: url.description)
    }

    /// A connection of its own, outside the pool's bound, for `LISTEN` (``PostgresSharedState``).
    func connectDedicated() async throws -> PostgresConnection {
        let id = nextID.withLockedValue { value -> Int in
            value += 1
            return value
        }
        return try await PostgresConnection.connect(
            on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: id, logger: logger)
    }

    /// Runs one statement outside any transaction (`CREATE DATABASE` cannot run inside one); blocks.
    func executeOutsideTransaction(_ sql: String) throws {
        try withConnection { link in _ = try link.run(sql, PostgresBindings()) }
    }

    /// Closes the idle connections (those in use close when their transaction ends, if the pool is gone).
    func closeIdle() {
        let links = idle.withLockedValue { links -> [PostgresLink] in
            defer { links = [] }
            return links
        }
        for link in links { link.close() }
    }

    deinit { closeIdle() }
}
