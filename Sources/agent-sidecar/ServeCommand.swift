import ArgumentParser
import SidecarCore

#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the MCP stdio server that your MCP client (Codex) launches.",
        discussion: """
            Generic mode bridges to any remote MCP server over Streamable HTTP:
              agent-sidecar serve --upstream https://mcp.example.com/mcp --bearer-env EXAMPLE_TOKEN
            stdout carries MCP messages only; logs go to stderr.
            """
    )

    @Option(name: .long, help: "URL of a remote MCP server (Streamable HTTP). https://, or http:// to loopback only.")
    var upstream: String

    @Option(name: .customLong("header"), help: "Extra HTTP header for the upstream, 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(name: .long, help: "Name of an environment variable holding a bearer token for the upstream (never put tokens in argv).")
    var bearerEnv: String?

    @Flag(name: .long, help: "List and allow only tools whose readOnlyHint is true.")
    var readOnly = false

    @Option(name: .customLong("exclude-tool"), help: "Hide this tool from the client (repeatable).")
    var excludedTools: [String] = []

    @Option(name: .long, help: "PEM file of an extra certificate authority to trust, added to the system bundle.")
    var caFile: String?

    @Option(name: .long, help: "Seconds allowed to connect to the upstream.")
    var connectTimeout: Double = 5

    @Option(name: .long, help: "Seconds allowed for one upstream call.")
    var requestTimeout: Double = 120

    @Option(name: .long, help: "Largest message accepted on stdin or from the upstream, in bytes.")
    var maxMessageBytes: Int = 64 * 1024 * 1024

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = try logging.makeLogger()
        var configuration = BridgeConfiguration(upstreamURL: upstream)
        configuration.headers = headers
        if let bearerEnv {
            guard let token = environmentValue(bearerEnv), !token.isEmpty else {
                printError("environment variable \(bearerEnv) (named by --bearer-env) is not set or empty; export it with the upstream's token")
                throw ExitCode(2)
            }
            configuration.bearerToken = token
        }
        configuration.caFile = caFile
        guard connectTimeout > 0, requestTimeout > 0, maxMessageBytes >= 1024 else {
            printError("--connect-timeout and --request-timeout must be positive and --max-message-bytes at least 1024")
            throw ExitCode(2)
        }
        configuration.connectTimeout = .milliseconds(Int(connectTimeout * 1000))
        configuration.requestTimeout = .milliseconds(Int(requestTimeout * 1000))
        configuration.serveOptions.maximumMessageBytes = maxMessageBytes
        configuration.serveOptions.readOnly = readOnly
        configuration.serveOptions.excludedTools = Set(excludedTools)
        let server: MCPStdioServer
        do {
            server = try configuration.makeServer(logger: logger)
        } catch {
            printError(error.description)
            throw ExitCode(2)
        }
        let code = await server.run()
        Glibc.exit(code)
    }
}
