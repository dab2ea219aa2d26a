import ArgumentParser
import SidecarCore

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        // Named here, not derived from the type name: deriving demangles the type at start-up.
        commandName: "logout",
        abstract: "Revoke this device at the gateway and delete its key and profile.",
        discussion: """
            When the gateway cannot be reached, nothing is deleted (the key is what revokes the device) and the command exits 1: run it again later, or add --force to delete the local key anyway, after which the agent's owner must revoke the device at the gateway.
            """
    )

    @Option(name: .long, help: "The profile.")
    var profile: String = ProfileName.defaultName

    @Flag(name: .long, help: "Also take the sidecar's entries out of the MCP client configs and AGENTS.md that setup wrote.")
    var purgeConfig = false

    @Flag(name: .long, help: "Do not contact the gateway; only delete local state.")
    var noRevoke = false

    @Flag(name: .long, help: "Delete local state even when the gateway cannot be reached to revoke the device.")
    var force = false

    @Option(name: .long, help: "Where the key-encryption key is (default: where setup put it).")
    var keyFile: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        _ = try logging.makeLogger()
        let environment = ProcessEnvironment.variables()
        let paths = SidecarPaths(environment: environment)
        let deviceID = try? ProfileStore(paths: paths).load(profile).deviceID
        let setup = SidecarSetup(paths: paths, environment: environment, transport: CurlHTTPClient())
        let outcome: LogoutOutcome
        do {
            outcome = try await setup.logout(profile: profile, revoke: !noRevoke, purgeConfig: purgeConfig, keyFile: keyFile, force: force)
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        let report = CommandReport.logout(outcome, profile: profile, deviceID: deviceID, revokeRequested: !noRevoke)
        writeStandardOutput(report.text)
        if let warning = report.warning {
            printError(warning)
            throw ExitCode(1)
        }
    }
}
