import ArgumentParser
import Logging
import SidecarCore

#if canImport(Glibc)
import Glibc
#endif

@main
struct AgentSidecar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-sidecar",
        abstract: "Scoped, audited, revocable access to a task tracker for local coding agents, over MCP.",
        version: SidecarIdentity.version,
        subcommands: [Serve.self]
    )
}

/// Options every subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "Log level on stderr: trace, debug, info, notice, warning, error, critical (env AGENT_SIDECAR_LOG_LEVEL).")
    var logLevel: String?

    func makeLogger() throws -> Logger {
        let text = logLevel ?? getenv("AGENT_SIDECAR_LOG_LEVEL").map { String(cString: $0) } ?? "info"
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ValidationError("unknown log level '\(text)'; use one of trace, debug, info, notice, warning, error, critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "agent-sidecar")
        logger.logLevel = level
        return logger
    }
}

func environmentValue(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// Prints a one-line error on stderr.
func printError(_ message: String) {
    var line = "agent-sidecar: \(message)\n"
    line.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
