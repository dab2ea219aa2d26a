import ArgumentParser
import SidecarCore

#if canImport(Glibc)
import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        // Named here, not derived from the type name: deriving demangles the type at start-up.
        commandName: "serve",
        abstract: "Run the MCP stdio server that your MCP client (Codex) launches.",
        discussion: """
            Paired mode (what `agent-sidecar setup` writes into the MCP client config) serves a paired gateway with short-lived session tokens minted by this device's key:

              agent-sidecar serve --profile default

            Generic mode bridges to any remote MCP server over Streamable HTTP:

              agent-sidecar serve --upstream https://mcp.example.com/mcp --bearer-env EXAMPLE_TOKEN

            stdout carries MCP messages only; logs go to stderr.
            """
    )

    @Option(name: .long, help: "Paired mode: the profile `agent-sidecar setup` created.")
    var profile: String?

    @Option(name: .long, help: "Paired mode: where the key-encryption key is (default: where setup put it).")
    var keyFile: String?

    @Option(name: .long, help: "Generic mode: URL of a remote MCP server (Streamable HTTP). https://, or http:// to loopback only.")
    var upstream: String?

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

    @Option(
        name: .long,
        help: "Seconds allowed for one upstream call (330: a high-tier call may wait up to 300 s for a person's approval at the gateway).")
    var requestTimeout: Double = 330

    @Option(name: .long, help: "Largest message accepted on stdin or from the upstream, in bytes.")
    var maxMessageBytes: Int = 64 * 1024 * 1024

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        switch (upstream, profile) {
        case (nil, nil):
            throw ValidationError("give --profile NAME (paired with `agent-sidecar setup`) or --upstream URL (any MCP server)")
        case (.some, .some):
            throw ValidationError("--profile and --upstream cannot be used together; paired mode takes its gateway from the profile")
        case (nil, .some):
            if !headers.isEmpty || bearerEnv != nil {
                throw ValidationError("--header and --bearer-env are for --upstream; with --profile the sidecar authenticates itself")
            }
        case (.some, nil):
            if keyFile != nil { throw ValidationError("--key-file is for --profile (paired mode)") }
        }
    }

    func run() async throws {
        let logger = try logging.makeLogger()
        var configuration = BridgeConfiguration(upstreamURL: upstream ?? "")
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
            if let profile {
                let paired = PairedBridge(
                    paths: SidecarPaths.current(), environment: ProcessEnvironment.variables(), profile: profile, keyFile: keyFile,
                    bridge: configuration)
                server = try paired.makeServer(logger: logger) { message in printError(message) }
            } else {
                server = try configuration.makeServer(logger: logger)
            }
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        let code = await server.run()
        Glibc.exit(code)
    }
}
