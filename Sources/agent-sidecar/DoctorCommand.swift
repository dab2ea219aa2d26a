import ArgumentParser
import SidecarCore

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        // Named here, not derived from the type name: deriving demangles the type at start-up.
        commandName: "doctor",
        abstract: "Check everything a client needs for the sidecar of a profile, and say how to fix what fails.",
        discussion: """
            One line per check: the profile file; the device key (present, owner-only, untampered); each client config setup wrote (still parses, still starts this binary; Codex's through `codex mcp get` when codex is on PATH); the variables Codex would not pass on; the gateway (reachable, TLS valid); the clock against the gateway's Date; a session minted and the agent's tools listed. Exits 0 when every check holds, 1 when one does not, 2 when there is no such profile.
            """
    )

    @OptionGroup var options: ProfileReportOptions

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = try logging.makeLogger()
        let environment = ProcessEnvironment.variables()
        let paths = SidecarPaths(environment: environment)
        var http = HTTPClientConfiguration()
        if (try? ProfileName.validate(options.profile)) != nil {
            http.additionalCertificateAuthorities = (try? GatewayCA.stored(paths: paths, profile: options.profile)) ?? nil
        }
        let doctor = SidecarDoctor(paths: paths, environment: environment, transport: CurlHTTPClient(configuration: http))
        let report = try await options.report(paths: doctor.paths) { try await doctor.run(profile: options.profile, keyFile: options.keyFile) }
        writeStandardOutput(options.json ? report.json.jsonText + "\n" : report.text)
        if !report.holds { throw ExitCode(1) }
    }
}
