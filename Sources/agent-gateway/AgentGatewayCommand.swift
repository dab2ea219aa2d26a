import AgentWire
import ArgumentParser
import GatewayCore
import Logging

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
        subcommands: [Serve.self, SeedDemo.self, Agent.self, Owner.self, Audit.self])
}

/// Options every command shares.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The SQLite database file (created if missing).")
    var db: String

    @Option(name: .long, help: "A file with the 32-byte secret for keyed hashes (raw or 64 hex digits); default: the key stored in the database.")
    var hashKeyFile: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func open(durability: Durability = .normal) async throws -> (SQLiteGatewayStore, [UInt8]) {
        let store = try SQLiteGatewayStore(path: db, durability: durability)
        let key = try await GatewayAdmin.loadHashKey(store: store, hashKeyFile: hashKeyFile)
        return (store, key)
    }

    func admin() async throws -> GatewayAdmin {
        let (store, key) = try await open()
        return GatewayAdmin(store: store, hashKey: key)
    }
}

/// Prints one line on stdout and flushes it at once (tests and scripts read it line by line).
func printLine(_ text: String) {
    let line = Array((text + "\n").utf8)
    var offset = 0
    while offset < line.count {
        let written = line[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
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

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
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
        configuration.readsPerMinute = readRate
        configuration.writesPerMinute = writeRate
        if let publicOrigin {
            guard let origin = OriginFormat.normalize(publicOrigin) else {
                throw ValidationError("--public-origin must look like https://gateway.example.com[:port]")
            }
            configuration.publicOrigins = [origin]
        }
        let (sqlite, key): (SQLiteGatewayStore, [UInt8])
        do { (sqlite, key) = try await store.open(durability: durability) } catch { throw fail(error) }
        let gateway = Gateway(store: sqlite, hashKey: key, configuration: configuration)
        let server = GatewayHTTPServer(gateway: gateway)
        let host = self.host
        let app = server.makeApplication(host: host, port: port, logger: logger) { boundPort in
            let urlHost = host.contains(":") ? "[\(host)]" : host
            let url = "http://\(urlHost):\(boundPort)"
            gateway.adoptListenOrigins(OriginFormat.listenOrigins(host: host, port: boundPort))
            printLine(JSONValue.object(["url": .string(url)]).jsonText)
            logger.info("agent-gateway listening", metadata: ["url": "\(url)", "db": "\(sqlite.path)"])
        }
        try await app.runService()
    }
}

struct SeedDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed-demo", abstract: "Create the demo workspace: owner alice, members bob and carol, projects WEB and OPS.")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        do {
            let result = try await store.admin().seedDemo()
            printLine(store.json ? result.jsonText : (result["seeded"]?.boolValue == true ? "seeded WEB and OPS" : "already seeded"))
        } catch { throw fail(error) }
    }
}

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create, pair and revoke agents.", subcommands: [Create.self, Pair.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an agent with grants; prints its id.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The owner's id, e.g. alice.") var owner: String
        @Option(help: "The agent's name.") var name: String
        @Option(name: .customLong("project"), parsing: .upToNextOption, help: "Project keys to grant.") var projects: [String]
        @Option(name: .customLong("scope"), parsing: .upToNextOption, help: "Scopes to grant on each project.") var scopes: [String]

        func run() async throws {
            do {
                let id = try await store.admin().createAgent(ownerID: owner, name: name, projects: projects, scopes: scopes)
                printLine(store.json ? JSONValue.object(["id": .string(id)]).jsonText : id)
            } catch { throw fail(error) }
        }
    }

    struct Pair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a fresh one-time pairing code (valid 10 minutes).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The agent id.") var agentID: String

        func run() async throws {
            do {
                let code = try await store.admin().createPairingCode(agentID: agentID)
                printLine(store.json ? JSONValue.object(["code": .string(code)]).jsonText : code)
            } catch { throw fail(error) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an agent: its next call fails.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The agent id.") var agentID: String

        func run() async throws {
            do {
                try await store.admin().revokeAgent(id: agentID)
                printLine(store.json ? JSONValue.object(["revoked": true, "id": .string(agentID)]).jsonText : "revoked \(agentID)")
            } catch { throw fail(error) }
        }
    }
}

struct Owner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Block or unblock owners.", subcommands: [Block.self, Unblock.self])

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Block an owner: every agent of the owner fails on its next call.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The owner id.") var ownerID: String

        func run() async throws {
            do {
                try await store.admin().setOwnerBlocked(id: ownerID, blocked: true)
                printLine(store.json ? JSONValue.object(["blocked": true, "id": .string(ownerID)]).jsonText : "blocked \(ownerID)")
            } catch { throw fail(error) }
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unblock an owner.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The owner id.") var ownerID: String

        func run() async throws {
            do {
                try await store.admin().setOwnerBlocked(id: ownerID, blocked: false)
                printLine(store.json ? JSONValue.object(["blocked": false, "id": .string(ownerID)]).jsonText : "unblocked \(ownerID)")
            } catch { throw fail(error) }
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print audit events, oldest first.")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only this agent's events.") var agent: String?

    func run() async throws {
        do {
            let events = try await store.admin().auditEvents(agentID: agent)
            if store.json {
                printLine(JSONValue.object(["events": .array(events.map(GatewayAdmin.json))]).jsonText)
            } else {
                var lines: [String] = []
                for event in events {
                    let at = Timestamp.rfc3339(milliseconds: event.at, fractional: true)
                    let outcome = event.errorCode.map { "\(event.outcome) \($0)" } ?? event.outcome
                    lines.append(
                        "\(at) \(event.id) \(event.agentID ?? "-") \(event.tool) \(event.project ?? "-") \(outcome)\(event.replayed ? " replayed" : "") \(event.latencyMicroseconds)µs"
                    )
                }
                if !lines.isEmpty { printLine(lines.joined(separator: "\n")) }
            }
        } catch { throw fail(error) }
    }
}
