import ArgumentParser
import GatewayCore

#if canImport(Glibc)
import Glibc
#endif

/// `serve`'s choice of tracker: the embedded one (the default), or a Plane workspace.
struct TrackerOptions: ParsableArguments {
    @Option(help: "embedded (the gateway's own tracker, the default) or plane (a Plane workspace, see docs/plane.md).")
    var tracker = "embedded"
    @Option(name: .customLong("plane-url"), help: "Plane's API server, such as https://plane.example.com (with --tracker plane).")
    var planeURL: String?
    @Option(name: .customLong("plane-workspace"), help: "The Plane workspace slug (with --tracker plane).")
    var planeWorkspace: String?
    @Option(
        name: .customLong("plane-api-key-file"),
        help: "A file (mode 600) holding the Plane bot user's API key; or set AGENT_GATEWAY_PLANE_API_KEY. Never on the command line.")
    var planeAPIKeyFile: String?
    @Option(name: .customLong("plane-web-url"), help: "Where people open work items in Plane's web app (default: --plane-url).")
    var planeWebURL: String?
    @Option(name: .customLong("plane-timeout"), help: "Seconds one request to Plane may take (1 to 300).")
    var planeTimeout = 15

    /// Plane's settings, or `nil` for the embedded tracker.
    func planeSettings() throws -> PlaneSettings? {
        switch tracker {
        case "embedded":
            guard planeURL == nil, planeWorkspace == nil, planeAPIKeyFile == nil, planeWebURL == nil, planeTimeout == 15 else {
                throw ValidationError(
                    "--plane-url, --plane-workspace, --plane-api-key-file, --plane-web-url and --plane-timeout need --tracker plane")
            }
            return nil
        case "plane":
            var environment: [String: String] = [:]
            if let value = getenv(PlaneSettings.apiKeyVariable) { environment[PlaneSettings.apiKeyVariable] = String(cString: value) }
            guard (1...300).contains(planeTimeout) else { throw ValidationError("--plane-timeout must be 1 to 300 seconds") }
            do {
                var settings = try PlaneSettings.fromOptions(
                    url: planeURL, workspace: planeWorkspace, apiKeyFile: planeAPIKeyFile, webURL: planeWebURL, environment: environment)
                settings.requestTimeoutSeconds = planeTimeout
                return settings
            } catch {
                throw CommandFailure(description: error.message)
            }
        default:
            throw ValidationError("--tracker must be embedded or plane")
        }
    }
}
