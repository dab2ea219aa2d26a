// agent-gateway: the Agent Gateway's executable. Thin ArgumentParser commands (serve, init,
// seed-demo and the admin commands); every behaviour lives in GatewayCore, and the admin commands
// call the same operations the HTTP surface does.
//
// May depend on AgentWire, GatewayCore, ArgumentParser and swift-log. Must not depend on SidecarCore.

import AgentWire
import ArgumentParser
import Dispatch
import GatewayCore
import Logging
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `agent-gateway`: the reference Agent Gateway and its admin CLI.
@main
struct AgentGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-gateway",
        abstract: "The reference Agent Gateway: scoped, audited access for local agents to an embedded task tracker.",
        version: BuildInfo.versionLine(program: "agent-gateway"),
        subcommands: [
            Serve.self, Initialize.self, SeedDemo.self, User.self, Agent.self, Device.self, Session.self, Owner.self, Audit.self, Policy.self,
            Approvals.self, BreakGlass.self, Backup.self,
        ])

    /// A mistyped subcommand gets a suggestion instead of ArgumentParser's bare "unexpected argument".
    static func main() async {
        if let typed = CommandLine.arguments.dropFirst().first, !typed.hasPrefix("-") {
            let names = configuration.subcommands.map { $0._commandName } + ["help"]
            if !names.contains(typed) {
                FileHandleOutput.standardError("Error: \(CommandSuggestion.unknownCommandMessage(typed, among: names, program: "agent-gateway"))\n")
                Glibc.exit(2)
            }
        }
        await main(nil)
    }
}

/// Options every command shares.
struct StoreOptions: ParsableArguments {
    @Option(
        name: [.customLong("db"), .customLong("database")],
        help: ArgumentHelp(
            "The SQLite database file, or a PostgreSQL database as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full].",
            discussion:
                "A SQLite file must exist, except for init, serve and seed-demo, which create it; a PostgreSQL database must exist, and only those three commands create the gateway's tables in it. Without a password in the URL, PGPASSWORD is used."
        ))
    var db: String

    @Option(
        name: .long,
        help:
            "The file with the secret for keyed hashes (64 hex digits), kept out of the database; made, or the database's stored key moved into it, when it does not exist. Without it the key is stored in the database."
    )
    var hashKeyFile: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    /// The database as it may be shown: the SQLite path, or the PostgreSQL URL without its password.
    var displayName: String {
        guard PostgresURL.isPostgres(db) else { return db }
        return (try? PostgresURL(parsing: db).description) ?? "postgres://(a URL that does not parse)"
    }

    /// Opens the store. Only `creating` commands (init, serve, seed-demo) may make a new SQLite file
    /// or the tables of a PostgreSQL database: for every other command a missing one is a typo,
    /// refused with its name. `durability` is SQLite's; PostgreSQL always commits durably.
    func openStore(durability: Durability = .normal, creating: Bool) async throws -> any GatewayStore {
        if PostgresURL.isPostgres(db) {
            var url = try PostgresURL(parsing: db)
            if !url.hasPassword, let password = getenv("PGPASSWORD") { url = url.withPassword(String(cString: password)) }
            return try await PostgresGatewayStore.open(url: url, creating: creating)
        }
        if !creating { try GatewayAdmin.requireExistingDatabase(db) }
        return try SQLiteGatewayStore(path: db, durability: durability)
    }

    func open(durability: Durability = .normal, creating: Bool = false) async throws -> (any GatewayStore, [UInt8]) {
        let store = try await openStore(durability: durability, creating: creating)
        let key = try await GatewayAdmin.loadHashKey(store: store, hashKeyFile: hashKeyFile)
        return (store, key)
    }

    /// The admin operations. Only `agent pair` hashes; the other commands also work on a database
    /// whose hash key is kept in a file when `--hash-key-file` is not given (pairing then refuses).
    func admin(creating: Bool = false) async throws -> GatewayAdmin {
        let store = try await openStore(creating: creating)
        do {
            return try GatewayAdmin(store: store, hashKey: try await GatewayAdmin.loadHashKey(store: store, hashKeyFile: hashKeyFile))
        } catch let error as AdminError where error.code == "hash_key_file_required" {
            return try GatewayAdmin(store: store, hashKey: [])
        }
    }
}

/// Writes to stderr without buffering.
enum FileHandleOutput {
    static func standardError(_ text: String) {
        Descriptor.writeStandardError(text)
    }
}

/// Prints one line on stdout and flushes it at once (tests and scripts read it line by line).
func printLine(_ text: String) {
    try? Descriptor.writeAll(STDOUT_FILENO, Array((text + "\n").utf8))
}

/// A failed admin command: ArgumentParser prints `Error: <message>` (one line, no usage) and exits 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
}

func fail(_ error: any Error) -> any Error {
    if let error = error as? AdminError { return CommandFailure(description: error.message) }
    return error
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway over HTTP.")

    @OptionGroup var store: StoreOptions
    @OptionGroup(title: "Tracker") var tracker: TrackerOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free port and prints {\"url\": …} once listening.") var port = 7420
    @Option(name: .customLong("session-ttl"), help: "Session token lifetime in seconds.") var sessionTTL = 900
    @Option(name: .customLong("read-rate"), help: "Read tool calls per agent per minute (token bucket, burst = rate).") var readRate = 6000
    @Option(name: .customLong("write-rate"), help: "Write tool calls per agent per minute (token bucket, burst = rate).") var writeRate = 1200
    @Option(name: .customLong("public-origin"), help: "The origin session signatures must name (default: the listen URL).")
    var publicOrigin: String?
    @Option(help: "normal (WAL, synchronous=NORMAL: survives kill -9) or full (also fsync every commit).") var durability = "normal"
    @Option(name: .customLong("header-timeout"), help: "Seconds a request header may take (from the accept, or from its first byte).")
    var headerTimeout: Double = 10
    @Option(name: .customLong("body-timeout"), help: "Seconds a request body may take after its header.") var bodyTimeout: Double = 30
    @Option(name: .customLong("idle-timeout"), help: "Seconds an idle keep-alive connection stays open.") var idleTimeout: Double = 60
    @Option(name: .customLong("max-connections"), help: "Open connections in total (default 1024, fitted to the descriptor limit).")
    var maxConnections: Int?
    @Option(name: .customLong("max-connections-per-address"), help: "Open connections per client address (IPv6: per /64).")
    var maxConnectionsPerAddress = 128
    @Option(
        name: .customLong("proxy-user-header"),
        help: "Trust this request header (set by an authenticating reverse proxy) as the console user's id; off by default.")
    var proxyUserHeader: String?
    @Option(name: .customLong("trusted-proxy"), parsing: .upToNextOption, help: "The exact addresses the proxy connects from.")
    var trustedProxies: [String] = []
    @Option(name: .customLong("console-idle-timeout"), help: "Seconds a console session lasts without a request.") var consoleIdle = 1800
    @Option(name: .customLong("console-max-age"), help: "Seconds a console session lasts at most.") var consoleMaxAge = 43_200
    @Option(name: .customLong("stale-after"), help: "Seconds without a call after which an agent with an open work session is stale.")
    var staleAfter = 900
    @Option(
        help: ArgumentHelp(
            "The capability policy (YAML: tiers and approvals, see docs/policy.schema.json); reloaded on SIGHUP.",
            discussion:
                "Without it, reads are low and writes medium: nothing waits for approval. An invalid file refuses to start; on SIGHUP it is refused with its line and reason, and the policy in force stays."
        ))
    var policy: String?
    @Option(
        name: .customLong("approval-webhook"),
        help: "POST each new approval request here (JSON, signed: X-Agent-Gateway-Signature: sha256=HMAC of the body).")
    var approvalWebhook: String?
    @Option(name: .customLong("approval-webhook-secret-file"), help: "The HMAC key for --approval-webhook (16 to 4096 bytes).")
    var approvalWebhookSecretFile: String?
    @Option(
        name: .customLong("metrics-port"),
        help: "Serve Prometheus metrics at GET /metrics on this port, a listener of its own (0 picks one); off without it.")
    var metricsPort: Int?
    @Option(
        name: .customLong("metrics-host"),
        help: "The address of the metrics listener: loopback unless you mean it (the scrape shows tool names and call counts).")
    var metricsHost = "127.0.0.1"
    @Option(
        name: .customLong("log-format"),
        help: "Log lines on stderr as text or json (one object per line, for a log collector); env AGENT_GATEWAY_LOG_FORMAT.")
    var logFormat: String?
    @Option(
        name: .customLong("log-level"),
        help: "The least level logged: trace, debug, info (each tools/call), notice, warning, error, critical; env AGENT_GATEWAY_LOG_LEVEL.")
    var logLevel: String?

    func run() async throws {
        do { _ = try StandardErrorLog.bootstrap(level: logLevel, format: logFormat, environmentPrefix: "AGENT_GATEWAY") } catch {
            throw ValidationError(error.description)
        }
        let logger = Logger(label: "agent-gateway")
        guard let durability = Durability(rawValue: durability) else { throw ValidationError("--durability must be normal or full") }
        guard sessionTTL > 0, readRate > 0, writeRate > 0 else {
            throw ValidationError("--session-ttl, --read-rate and --write-rate must be positive")
        }
        for (flag, seconds) in [("--header-timeout", headerTimeout), ("--body-timeout", bodyTimeout), ("--idle-timeout", idleTimeout)]
        where !(seconds > 0 && seconds <= 3600) {
            throw ValidationError("\(flag) must be more than 0 and at most 3600 seconds")
        }
        var configuration = GatewayConfiguration()
        guard (1...1_000_000).contains(maxConnections ?? configuration.maxConnections),
            (1...(maxConnections ?? configuration.maxConnections)).contains(maxConnectionsPerAddress)
        else { throw ValidationError("--max-connections must be 1 to 1000000, and --max-connections-per-address 1 to --max-connections") }
        let fitted: (connections: Int, note: String?)
        do {
            fitted = try DescriptorBudget.fit(maxConnections: maxConnections ?? configuration.maxConnections, explicit: maxConnections != nil)
        } catch {
            throw CommandFailure(description: error.message)
        }
        if let note = fitted.note { logger.warning("\(note)") }
        configuration.maxConnections = fitted.connections
        configuration.maxConnectionsPerAddress = min(maxConnectionsPerAddress, fitted.connections)
        configuration.headerTimeoutSeconds = headerTimeout
        configuration.bodyTimeoutSeconds = bodyTimeout
        configuration.idleTimeoutSeconds = idleTimeout
        configuration.sessionTTLSeconds = sessionTTL
        configuration.callLog = Logger(label: "agent-gateway.calls")
        guard (60...86_400).contains(consoleIdle), (consoleIdle...604_800).contains(consoleMaxAge), (60...86_400).contains(staleAfter) else {
            throw ValidationError(
                "--console-idle-timeout must be 60 to 86400 s, --console-max-age at least that and at most 604800, --stale-after 60 to 86400")
        }
        guard (proxyUserHeader == nil) == trustedProxies.isEmpty else {
            throw ValidationError("--proxy-user-header and --trusted-proxy go together: name the header and the proxy's addresses")
        }
        if let proxyUserHeader, proxyUserHeader.isEmpty || proxyUserHeader.contains(where: { $0 == ":" || $0 == " " }) {
            throw ValidationError("--proxy-user-header must be a header name such as X-Forwarded-User")
        }
        configuration.consoleIdleSeconds = consoleIdle
        configuration.consoleAbsoluteSeconds = consoleMaxAge
        configuration.staleAfterSeconds = staleAfter
        configuration.proxyUserHeader = proxyUserHeader
        configuration.trustedProxyAddresses = trustedProxies
        configuration.readsPerMinute = readRate
        configuration.writesPerMinute = writeRate
        if let publicOrigin {
            guard let origin = OriginFormat.normalize(publicOrigin) else {
                throw ValidationError("--public-origin must look like https://gateway.example.com[:port]")
            }
            configuration.publicOrigins = [origin]
        }
        configuration.plane = try tracker.planeSettings()
        if let policy {
            do { configuration.policy = try PolicyFile.load(path: policy) } catch {
                throw CommandFailure(
                    description: "the policy file \(policy) is invalid: \(error.description); fix it (`agent-gateway policy check FILE`)")
            }
        }
        guard (approvalWebhook == nil) == (approvalWebhookSecretFile == nil) else {
            throw ValidationError("--approval-webhook and --approval-webhook-secret-file go together: every body is signed")
        }
        if let approvalWebhook, let approvalWebhookSecretFile {
            do {
                configuration.approvalWebhook = try ApprovalWebhookSettings.load(url: approvalWebhook, secretFile: approvalWebhookSecretFile)
            } catch { throw CommandFailure(description: "\(error)") }
        }
        let (database, key): (any GatewayStore, [UInt8])
        do {
            (database, key) = try await store.open(durability: durability, creating: true)
            try await TrackerBinding.bind(database, plane: configuration.plane)
        } catch { throw fail(error) }
        let gateway = try Gateway(store: database, hashKey: key, configuration: configuration)
        let databaseName = store.displayName
        let server = GatewayHTTPServer(gateway: gateway)
        let host = self.host
        let metrics = try await startMetrics(gateway: gateway, logger: logger)
        defer { metrics?.task.cancel() }
        let trackerName = configuration.plane.map(\.description) ?? "embedded"
        let app = server.makeApplication(host: host, port: port, logger: logger) { boundPort in
            let urlHost = host.contains(":") ? "[\(host)]" : host
            let url = "http://\(urlHost):\(boundPort)"
            gateway.adoptListenOrigins(OriginFormat.listenOrigins(host: host, port: boundPort))
            var listening: JSONObject = ["url": .string(url)]
            if let metrics { listening["metricsUrl"] = .string(metrics.url) }
            printLine(JSONValue.object(listening).jsonText)
            logger.info(
                "agent-gateway listening",
                metadata: ["url": "\(url)", "db": "\(databaseName)", "tracker": "\(trackerName)", "metrics": "\(metrics?.url ?? "off")"])
        }
        let reload = policy.map { Self.reloadOnHangUp(gateway: gateway, path: $0, logger: logger) }
        try await app.runService()
        reload?.cancel()
    }

    /// Starts the metrics listener (`--metrics-port`) before the gateway's, so that the one line
    /// `serve` prints once listening can name both; a port that cannot be bound refuses to start.
    func startMetrics(gateway: Gateway, logger: Logger) async throws -> (url: String, task: Task<Void, any Error>)? {
        guard let metricsPort else { return nil }
        guard (0...65_535).contains(metricsPort), metricsPort != port || port == 0 else {
            throw ValidationError("--metrics-port must be 0 to 65535 and not the gateway's --port")
        }
        if !["127.0.0.1", "::1", "localhost"].contains(metricsHost) {
            logger.warning("the metrics listener is not on loopback; keep it off the internet", metadata: ["host": "\(metricsHost)"])
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = GatewayMetricsServer(gateway: gateway).makeApplication(host: metricsHost, port: metricsPort, logger: logger) { bound in
            continuation.yield(bound)
            continuation.finish()
        }
        let task = Task {
            defer { continuation.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next() else {
            let reason = await task.result.failureDescription
            throw CommandFailure(
                description: "cannot listen for metrics on \(metricsHost):\(metricsPort) (\(reason)); pick another --metrics-port")
        }
        let urlHost = metricsHost.contains(":") ? "[\(metricsHost)]" : metricsHost
        return ("http://\(urlHost):\(bound)/metrics", task)
    }

    /// Reloads the policy file on SIGHUP; an invalid file is refused with its line and reason, and
    /// the policy in force stays.
    static func reloadOnHangUp(gateway: Gateway, path: String, logger: Logger) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            do {
                let loaded = try gateway.reloadPolicy(path: path)
                logger.notice("policy reloaded", metadata: ["policy": "\(path)", "tools": "\(loaded.tools.count)"])
            } catch {
                logger.error(
                    "policy refused, the last good policy stays in force",
                    metadata: ["policy": "\(path)", "problem": "\(String(describing: error))", "inForce": "\(gateway.policy.source)"])
            }
        }
        source.resume()
        return source
    }
}

struct SeedDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed-demo", abstract: "Create the demo workspace: owners alice and bob (carol and dave too), admin ada, projects WEB and OPS.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        do {
            let result = try await store.admin(creating: true).seedDemo()
            printLine(store.json ? result.jsonText : (result["seeded"]?.boolValue == true ? "seeded WEB and OPS" : "already seeded"))
        } catch { throw fail(error) }
    }
}

extension Result where Failure == any Error {
    /// The error's text, or that there was none.
    var failureDescription: String {
        if case .failure(let error) = self { return "\(error)" }
        return "the listener stopped"
    }
}
