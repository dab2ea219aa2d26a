import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `agent-sidecar doctor`: checks, one by one, everything a client needs for the sidecar of one
/// profile to work, and says for each thing that does not hold how to fix it.
///
/// In order: the profile file; the device key and its key-encryption key (present, owner-only,
/// decrypting to the key the profile registered); the stored tool catalog; each client config setup wrote (still parses,
/// still starts this binary with `serve --profile NAME`; Codex's through `codex mcp get` when the
/// Codex CLI is on `PATH`); the variables Codex would not pass on; the gateway (reachable, TLS
/// valid); the clock against the gateway's `Date`; and a session minted with the device key, with
/// the agent's tools listed over MCP and the session ended again.
public struct SidecarDoctor: Sendable {
    public let paths: SidecarPaths
    public let environment: [String: String]
    let transport: any GatewayTransport
    /// The binary the client configs should start (this process's executable).
    public var executablePath: String
    /// The Codex CLI used to read Codex's config back (`nil`: look for `codex` on `PATH`).
    public var codexExecutable: String?
    /// Time allowed for each request to the gateway.
    public var timeout: Duration = .seconds(15)

    /// - Parameters:
    ///   - paths: The state layout.
    ///   - environment: The environment the checks see (`PATH`, proxies, `AGENT_SIDECAR_KEY_FILE`…).
    ///   - transport: The HTTP client (`CurlHTTPClient`).
    public init(paths: SidecarPaths, environment: [String: String], transport: any GatewayTransport) {
        self.paths = paths
        self.environment = environment
        self.transport = transport
        self.executablePath = SidecarSetup.currentExecutablePath()
    }

    /// The clock skew from which the gateway refuses a session request (it allows five minutes).
    public static let refusedSkewSeconds: Int64 = 300
    /// The skew from which the doctor warns.
    public static let warnedSkewSeconds: Int64 = 60

    /// Runs every check for a profile.
    ///
    /// - Parameters:
    ///   - name: The profile.
    ///   - keyFile: `--key-file PATH`, when the key-encryption key is not where setup put it.
    /// - Throws: ``CredentialError/Code/profileNotFound`` when there is no such profile (the command
    ///   exits 2 then, like `status`); every other problem is a failed check in the report.
    public func run(profile name: String, keyFile: String? = nil) async throws -> DoctorReport {
        try ProfileName.validate(name)
        var checks: [DoctorCheck] = []
        let store = ProfileStore(paths: paths)
        guard store.exists(name) else {
            throw CredentialError(.profileNotFound, "there is no profile \"\(name)\" (\(paths.profileFile(name))); run `agent-sidecar setup` first")
        }

        // The profile.
        let profile: SidecarProfile
        do {
            profile = try store.load(name)
            checks.append(profileCheck(profile))
        } catch {
            checks.append(DoctorCheck("profile", .failed, "\(error)", fix: "run `agent-sidecar setup --profile \(name)` again"))
            return DoctorReport(
                profile: name, checks: checks + skipped(["device key", "tool catalog", "client configs", "gateway", "clock", "session"]))
        }

        // The device key.
        var deviceKey: DeviceKey?
        do {
            let key = try CredentialStore(paths: paths, environment: environment).loadDeviceKey(
                for: profile, explicitKeyEncryptionKeyFile: keyFile)
            deviceKey = key
            let kek = CredentialStore(paths: paths, environment: environment).keyEncryptionKeyFile(
                profile: name, explicitPath: keyFile, recordedPath: profile.keyEncryptionKeyFile)
            checks.append(
                DoctorCheck(
                    "device key", .ok,
                    "\(paths.keyFile(name)) (\(Self.mode(paths.keyFile(name)))) decrypts with \(kek) (\(Self.mode(kek))) to the key this device registered"
                ))
        } catch let error as CredentialError {
            checks.append(DoctorCheck("device key", .failed, error.message, fix: Self.keyFix(error, profile: name)))
        } catch {
            checks.append(DoctorCheck("device key", .failed, "\(error)", fix: "run `agent-sidecar setup --profile \(name)` again"))
        }

        // The stored tool catalog (what serve lists when the gateway is down or refuses).
        checks.append(catalogCheck(profile))

        // The client configs setup wrote, and what Codex would pass on.
        checks += clientChecks(profile)

        // The gateway, its TLS and its clock.
        guard let gateway = profile.gateway, let api = try? GatewayAPIClient(gateway: gateway, transport: transport) else {
            checks.append(
                DoctorCheck(
                    "gateway", .failed, "the profile's gateway URL \(profile.gatewayURL) is not usable",
                    fix: "run `agent-sidecar setup --gateway URL --profile \(name)` with a new pairing code"))
            return DoctorReport(profile: name, checks: checks + skipped(["clock", "session"]))
        }
        let reached = await gatewayCheck(gateway)
        checks.append(reached.check)
        guard reached.check.status != .failed else { return DoctorReport(profile: name, checks: checks + skipped(["clock", "session"])) }
        checks.append(clockCheck(reached.date))

        // A session, and the agent's tools.
        guard let deviceKey else { return DoctorReport(profile: name, checks: checks + skipped(["session"])) }
        checks.append(await sessionCheck(api: api, key: deviceKey, profile: profile))
        return DoctorReport(profile: name, checks: checks)
    }

    func skipped(_ names: [String]) -> [DoctorCheck] {
        names.map { DoctorCheck($0, .skipped, "not checked: it needs what failed above") }
    }

    // MARK: Profile and key

    func profileCheck(_ profile: SidecarProfile) -> DoctorCheck {
        let file = paths.profileFile(profile.name)
        let fileMode = Self.permissions(file)
        let directoryMode = Self.permissions(paths.profilesDirectory)
        if let fileMode, fileMode & 0o077 != 0 {
            return DoctorCheck(
                "profile", .failed, "\(file) is \(Self.octal(fileMode)), readable by others", fix: "run `chmod 600 \(file)`")
        }
        if let directoryMode, directoryMode & 0o022 != 0 {
            return DoctorCheck(
                "profile", .failed, "\(paths.profilesDirectory) is \(Self.octal(directoryMode)), writable by others",
                fix: "run `chmod 700 \(paths.profilesDirectory)`")
        }
        return DoctorCheck(
            "profile", .ok,
            "\(file) (\(Self.mode(file))): device \(profile.deviceID) of agent \(profile.agent.name) (\(profile.agent.id)), gateway \(profile.gatewayURL)"
        )
    }

    /// The catalog `serve` lists when it cannot reach the gateway: readable, this gateway's, owner-only.
    /// A missing one is a warning (the first `serve` that reaches the gateway writes it).
    func catalogCheck(_ profile: SidecarProfile) -> DoctorCheck {
        let cache = ToolCatalogCache(paths: paths, profile: profile.name, gatewayURL: profile.gatewayURL)
        let again = "run `agent-sidecar setup --profile \(profile.name)` again (or start the sidecar once while the gateway is up) to store it afresh"
        switch cache.load() {
        case .success(let snapshot):
            if let mode = Self.permissions(cache.path), mode & 0o077 != 0 {
                return DoctorCheck(
                    "tool catalog", .failed, "\(cache.path) is \(Self.octal(mode)), readable by others", fix: "run `chmod 600 \(cache.path)`")
            }
            return DoctorCheck(
                "tool catalog", .ok,
                "\(cache.path) (\(Self.mode(cache.path))): \(snapshot.tools.count) tools stored \(snapshot.savedAt), served while the gateway is unreachable"
            )
        case .failure(.missing):
            return DoctorCheck(
                "tool catalog", .warning, "\(cache.path) is missing: with the gateway down at start, the client would get no tools", fix: again)
        case .failure(let failure):
            return DoctorCheck("tool catalog", .failed, "\(failure.description) (\(cache.path))", fix: again)
        }
    }

    static func keyFix(_ error: CredentialError, profile: String) -> String {
        switch error.code {
        case .permissionsTooOpen: return error.path.map { "run `chmod 600 \($0)`" } ?? "make the key files owner-only (chmod 600)"
        case .unsafeDirectory: return error.path.map { "run `chmod 700 \($0)`" } ?? "make the key directory owner-only (chmod 700)"
        case .keyEncryptionKeyMissing:
            return
                "pass --key-file or set \(CredentialStore.keyFileVariable) to where the key-encryption key is, or run `agent-sidecar setup --profile \(profile)` again with a new pairing code"
        default: return "get a new pairing code from the agent's owner and run `agent-sidecar setup --profile \(profile)` again"
        }
    }

    // MARK: File modes

    static func permissions(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o777
    }

    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func mode(_ path: String) -> String { permissions(path).map(octal) ?? "missing" }
}

/// `Date` header times (RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`).
enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the epoch, or nil when the text is not an IMF-fixdate.
    static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int32(parts[1]), let month = months.firstIndex(of: String(parts[2])),
            let year = Int32(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":").compactMap { Int32($0) }
        guard clock.count == 3 else { return nil }
        var fields = tm()
        fields.tm_year = year - 1900
        fields.tm_mon = Int32(month)
        fields.tm_mday = day
        fields.tm_hour = clock[0]
        fields.tm_min = clock[1]
        fields.tm_sec = clock[2]
        let seconds = timegm(&fields)
        return seconds < 0 ? nil : Int64(seconds)
    }
}
