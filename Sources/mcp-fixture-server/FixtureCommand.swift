import ArgumentParser
import Foundation
import Hummingbird

extension ResponseMode: ExpressibleByArgument {}
extension ProtocolEra: ExpressibleByArgument {}

struct FixtureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp-fixture-server",
        abstract: "A scriptable MCP Streamable HTTP server for the sidecar's end-to-end tests and benchmarks.")

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind; 0 picks a free port.")
    var port = 0

    @Option(help: "How request responses are framed: json or sse.")
    var responseMode: ResponseMode = .json

    @Option(help: "Protocol era: legacy (initialize + sessions), modern (2026-07-28, stateless) or dual.")
    var era: ProtocolEra = .dual

    @Option(help: "tools/list page size; 0 returns every tool in one page.")
    var pageSize = 0

    @Option(help: "Require Authorization: Bearer <token> on /mcp.")
    var requireBearer: String?

    @Option(name: .customLong("keepalive-ms"), help: "Interval between ': keepalive' comments on notification streams.")
    var keepaliveMilliseconds = 15_000

    @Flag(help: "Log each MCP request to stderr.")
    var verbose = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard pageSize >= 0 else { throw ValidationError("--page-size must be 0 or more") }
        guard keepaliveMilliseconds > 0 else { throw ValidationError("--keepalive-ms must be positive") }
    }

    func run() async throws {
        let signalSources = Self.exitOnTerminationSignals()
        let options = FixtureOptions(
            responseMode: responseMode, era: era, pageSize: pageSize, requireBearer: requireBearer, verbose: verbose,
            keepaliveMilliseconds: keepaliveMilliseconds)
        let urlHost = host.contains(":") ? "[\(host)]" : host
        var app = Application(
            responder: FixtureResponder(server: FixtureServer(options: options)),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let boundPort = channel.localAddress?.port ?? 0
                // One line, written unbuffered: the parent process reads it to learn the URL.
                FileHandle.standardOutput.write(Data(#"{"url":"http://\#(urlHost):\#(boundPort)/mcp"}\#n"#.utf8))
            })
        app.logger.logLevel = verbose ? .info : .error
        try await app.runService(gracefulShutdownSignals: [])
        withExtendedLifetime(signalSources) {}
    }

    /// SIGTERM and SIGINT end the process at once with status 0: open SSE streams and stalled
    /// responses would otherwise hold a graceful shutdown open.
    private static func exitOnTerminationSignals() -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { _exit(0) }
            source.resume()
            return source
        }
    }
}
