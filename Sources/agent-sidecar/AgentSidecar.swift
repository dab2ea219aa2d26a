// agent-sidecar: the executable Codex (or any MCP host) launches. Thin ArgumentParser commands
// (serve, setup, status, logout, doctor); every behaviour lives in SidecarCore.
//
// May depend on AgentWire, SidecarCore, ArgumentParser and swift-log. Must not depend on a server
// stack or on GatewayCore.

import AgentWire
import ArgumentParser
import Logging
import SidecarCore
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

@main
struct AgentSidecar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-sidecar",
        abstract: "Scoped, audited, revocable access to a task tracker for local coding agents, over MCP.",
        version: BuildInfo.versionLine(program: "agent-sidecar"),
        subcommands: [Setup.self, Serve.self, Status.self, Logout.self, Doctor.self]
    )

    /// `serve` is what an MCP client starts, and there start-up time counts: parsed as a root
    /// command of its own, it skips ArgumentParser's walk over the whole command tree. Anything
    /// the fast path does not accept (help, a mistake) goes the ordinary way, for the usual output.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "serve", let serve = try? Serve.parse(Array(arguments.dropFirst())) {
            do { try await serve.run() } catch { exit(withError: error) }
        }
        if let typed = arguments.first, !typed.hasPrefix("-") {
            let names = configuration.subcommands.map { $0._commandName } + ["help"]
            if !names.contains(typed) {
                printError(CommandSuggestion.unknownCommandMessage(typed, among: names, program: "agent-sidecar"))
                Glibc.exit(2)
            }
        }
        await main(nil)
    }
}

/// Options every subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "Log level on stderr: trace, debug, info, notice, warning, error, critical (env AGENT_SIDECAR_LOG_LEVEL).")
    var logLevel: String?
    @Option(
        name: .long,
        help: "Log lines on stderr as text or json, one object per line (env AGENT_SIDECAR_LOG_FORMAT).")
    var logFormat: String?

    func makeLogger() throws -> Logger {
        let level: Logger.Level
        do { level = try StandardErrorLog.bootstrap(level: logLevel, format: logFormat, environmentPrefix: "AGENT_SIDECAR") } catch {
            throw ValidationError(error.description)
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
    writeStandardError("agent-sidecar: \(message)\n")
}

/// Writes all of `text` to stdout.
func writeStandardOutput(_ text: String) { try? Descriptor.writeAll(STDOUT_FILENO, Array(text.utf8)) }

/// Writes all of `text` to stderr.
func writeStandardError(_ text: String) { Descriptor.writeStandardError(text) }
