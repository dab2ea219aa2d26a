import ArgumentParser
import SidecarCore

/// The options `status` and `doctor` share, and how both say that a profile does not exist.
struct ProfileReportOptions: ParsableArguments {
    @Option(name: .long, help: "The profile.")
    var profile: String = ProfileName.defaultName

    @Option(name: .long, help: "Where the key-encryption key is (default: where setup put it).")
    var keyFile: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    /// The report `make` produces; when it throws, the error on stderr and exit status 2 (a
    /// missing profile names the profiles there are).
    func report<Report>(paths: SidecarPaths, _ make: () async throws -> Report) async throws -> Report {
        do {
            return try await make()
        } catch let error as CredentialError where error.code == .profileNotFound {
            let others = ProfileStore(paths: paths).names()
            printError(error.message + (others.isEmpty ? "" : " (profiles here: \(others.joined(separator: ", ")); choose one with --profile)"))
            throw ExitCode(2)
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
    }
}
