import ArgumentParser
import SidecarCore

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        // Named here, not derived from the type name: deriving demangles the type at start-up.
        commandName: "status",
        abstract: "Show a paired profile and check that the gateway would give this device a session now.",
        discussion: """
            Mints a session, reads the agent's grants and tools, and ends the session again. Exits 0 when a session can be had, 1 when the gateway refuses (revoked, blocked) or cannot be reached, or the device key cannot be used (the report says which; stderr says why, once), and 2 when there is no such profile.
            """
    )

    @OptionGroup var options: ProfileReportOptions

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = try logging.makeLogger()
        let environment = ProcessEnvironment.variables()
        let setup = SidecarSetup(paths: SidecarPaths(environment: environment), environment: environment, transport: CurlHTTPClient())
        let report = try await options.report(paths: setup.paths) { try await setup.status(profile: options.profile, keyFile: options.keyFile) }
        writeStandardOutput(options.json ? report.json.jsonText + "\n" : report.text)
        if let problem = report.problem {
            printError(problem.message)
            throw ExitCode(1)
        }
    }
}
