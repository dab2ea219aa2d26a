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

    @Option(name: .long, help: "The profile.")
    var profile: String = ProfileName.defaultName

    @Option(name: .long, help: "Where the key-encryption key is (default: where setup put it).")
    var keyFile: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = try logging.makeLogger()
        let environment = ProcessEnvironment.variables()
        let doctor = SidecarDoctor(paths: SidecarPaths(environment: environment), environment: environment, transport: CurlHTTPClient())
        let report: DoctorReport
        do {
            report = try await doctor.run(profile: profile, keyFile: keyFile)
        } catch let error as CredentialError where error.code == .profileNotFound {
            let others = ProfileStore(paths: doctor.paths).names()
            printError(error.message + (others.isEmpty ? "" : " (profiles here: \(others.joined(separator: ", ")); choose one with --profile)"))
            throw ExitCode(2)
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        writeStandardOutput(json ? report.json.jsonText + "\n" : report.text)
        if !report.holds { throw ExitCode(1) }
    }
}
