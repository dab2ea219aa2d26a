import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the sidecar keeps its profiles and keys.
///
/// * `AGENT_SIDECAR_HOME` set: everything under that one root —
///   `$AGENT_SIDECAR_HOME/profiles/NAME.json`, `$AGENT_SIDECAR_HOME/keys/NAME.key`,
///   `$AGENT_SIDECAR_HOME/keys/NAME.kek`, `$AGENT_SIDECAR_HOME/state/NAME.tools.json`.
/// * Otherwise the XDG base directories: profiles (nothing secret) in
///   `$XDG_CONFIG_HOME/agent-sidecar/profiles/` (default `~/.config/agent-sidecar/profiles/`),
///   keys in `$XDG_STATE_HOME/agent-sidecar/keys/` (default `~/.local/state/agent-sidecar/keys/`),
///   the non-secret state of a profile (the last tool catalog) in `$XDG_STATE_HOME/agent-sidecar/state/`.
///
/// Every directory the sidecar creates here is `0700`.
public struct SidecarPaths: Sendable, Equatable {
    /// The directory of profile files.
    public let profilesDirectory: String
    /// The directory of encrypted key files and (by default) key-encryption keys.
    public let keysDirectory: String
    /// The directory of non-secret profile state: the last tool catalog each profile's gateway served.
    public let stateDirectory: String
    /// The `AGENT_SIDECAR_HOME` in effect, if any (the setup writer passes it on to MCP hosts).
    public let customHome: String?

    /// The layout for an environment.
    ///
    /// - Parameter environment: The variables to read (`AGENT_SIDECAR_HOME`, `XDG_CONFIG_HOME`,
    ///   `XDG_STATE_HOME`, `HOME`); the home directory falls back to the password database.
    public init(environment: [String: String]) {
        if let home = environment["AGENT_SIDECAR_HOME"], !home.isEmpty {
            let root = FileSystem.absolute(home)
            customHome = root
            profilesDirectory = FileSystem.join(root, "profiles")
            keysDirectory = FileSystem.join(root, "keys")
            stateDirectory = FileSystem.join(root, "state")
            return
        }
        customHome = nil
        let userHome = Self.homeDirectory(environment)
        // The XDG spec says relative values are invalid and must be ignored.
        let config = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? FileSystem.join(userHome, ".config")
        let state =
            environment["XDG_STATE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? FileSystem.join(userHome, ".local/state")
        profilesDirectory = FileSystem.join(FileSystem.join(config, "agent-sidecar"), "profiles")
        keysDirectory = FileSystem.join(FileSystem.join(state, "agent-sidecar"), "keys")
        stateDirectory = FileSystem.join(FileSystem.join(state, "agent-sidecar"), "state")
    }

    /// The layout for this process's environment.
    public static func current() -> SidecarPaths { SidecarPaths(environment: ProcessEnvironment.variables()) }

    /// `profiles/NAME.json`.
    public func profileFile(_ profile: String) -> String { FileSystem.join(profilesDirectory, "\(profile).json") }
    /// `profiles/NAME.ca.pem`: the private CA of the profile's gateway, when setup was given one (`GatewayCA`).
    public func gatewayCAFile(_ profile: String) -> String { FileSystem.join(profilesDirectory, "\(profile).ca.pem") }
    /// `keys/NAME.key`: the encrypted device key.
    public func keyFile(_ profile: String) -> String { FileSystem.join(keysDirectory, "\(profile).key") }
    /// `keys/NAME.kek`: the default place of the key-encryption key.
    public func defaultKeyEncryptionKeyFile(_ profile: String) -> String { FileSystem.join(keysDirectory, "\(profile).kek") }
    /// `state/NAME.tools.json`: the last tool catalog the profile's gateway served (not secret).
    public func toolCatalogFile(_ profile: String) -> String { FileSystem.join(stateDirectory, "\(profile).tools.json") }

    /// The user's home directory: `$HOME`, else the password database, else `/`.
    public static func homeDirectory(_ environment: [String: String]) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        if let entry = getpwuid(getuid()), let directory = entry.pointee.pw_dir { return String(cString: directory) }
        return "/"
    }
}

/// Profile names end up in file names, TOML keys and AGENTS.md markers, so they are kept plain:
/// 1 to 64 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit.
public enum ProfileName {
    /// The profile used when none is named.
    public static let defaultName = "default"

    /// Throws ``CredentialError/Code/invalidProfileName`` unless `name` is a usable profile name.
    public static func validate(_ name: String) throws(CredentialError) {
        let bytes = Array(name.utf8)
        let allowed = { (byte: UInt8) in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
        guard (1...64).contains(bytes.count), bytes.allSatisfy(allowed), bytes[0] != UInt8(ascii: "-"), bytes[0] != UInt8(ascii: "_")
        else {
            throw CredentialError(
                .invalidProfileName,
                "profile name \"\(name)\" is not allowed; use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit")
        }
    }
}

/// The process environment as a dictionary.
public enum ProcessEnvironment {
    public static func variables() -> [String: String] {
        var result: [String: String] = [:]
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            cursor += 1
        }
        return result
    }
}
