import AgentWire
import SodiumKit

/// A gateway database serves one tracker for its whole life: grants name projects by key, and
/// the same key in the embedded tracker and in Plane are different projects. The first `serve`
/// records which tracker the database serves (setting `tracker`); a later `serve` with another
/// tracker is refused.
public enum TrackerBinding {
    static let settingName = "tracker"

    /// What the setting holds: `embedded`, or `plane URL WORKSPACE`.
    static func value(_ kind: TrackerKind, plane: PlaneSettings?) -> String {
        guard kind == .plane, let plane else { return TrackerKind.embedded.rawValue }
        return "plane \(plane.apiURL) \(plane.workspace)"
    }

    /// Records the tracker on first use, or checks that it is the recorded one.
    public static func bind(_ store: any GatewayStore, plane: PlaneSettings?) async throws(AdminError) {
        let wanted = value(plane == nil ? .embedded : .plane, plane: plane)
        do {
            try await store.write { store in
                if let recorded = try store.setting(settingName) {
                    guard recorded == wanted else {
                        let described = recorded == "embedded" ? "the embedded tracker" : "Plane (\(recorded.dropFirst(6)))"
                        throw AdminError(
                            code: "tracker_mismatch",
                            message: "this database serves \(described); start the gateway with the same tracker, or give it a database of its own")
                    }
                    return
                }
                if plane != nil, try !store.projects().isEmpty {
                    throw AdminError(
                        code: "tracker_mismatch",
                        message:
                            "this database holds the embedded tracker's projects; give the gateway in front of Plane a database of its own (--db)")
                }
                try store.setSetting(settingName, value: wanted)
            }
        } catch let error as AdminError {
            throw error
        } catch {
            throw AdminError(code: "database_unavailable", message: "cannot record the tracker in the database (\(error)); check --db")
        }
    }

    /// Whether the database serves Plane (grants then name Plane's projects, checked at call time).
    static func servesPlane(_ store: any StoreReader) throws -> Bool {
        try store.setting(settingName)?.hasPrefix("plane ") == true
    }

    /// A project key as Plane and the embedded tracker make them: 1 to 12 letters and digits.
    static func isProjectKey(_ key: String) -> Bool {
        (1...12).contains(key.utf8.count) && key.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}

/// Reading Plane's settings from the command line and the environment.
extension PlaneSettings {
    /// The environment variable that may hold Plane's API key instead of a file.
    public static let apiKeyVariable = "AGENT_GATEWAY_PLANE_API_KEY"

    /// Settings from `serve`'s options: the key from `apiKeyFile` (an owner-only regular file) or
    /// from `AGENT_GATEWAY_PLANE_API_KEY`, never from the command line.
    public static func fromOptions(
        url: String?, workspace: String?, apiKeyFile: String?, webURL: String?, environment: [String: String]
    ) throws(AdminError) -> PlaneSettings {
        guard let url, url.hasPrefix("http://") || url.hasPrefix("https://"), url.utf8.count <= 2048,
            !url.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace })
        else {
            throw AdminError(code: "plane_url_invalid", message: "--plane-url must be Plane's API server, such as https://plane.example.com")
        }
        guard let workspace, isValidWorkspaceSlug(workspace) else {
            throw AdminError(
                code: "plane_workspace_invalid", message: "--plane-workspace must be the workspace slug from Plane's URLs (lowercase, such as acme)")
        }
        let keyBytes: [UInt8]
        if let apiKeyFile {
            guard let content = try OwnerOnlyFile.read(apiKeyFile, naming: "the Plane API key file", codePrefix: "plane_api_key", limit: 4096)
            else {
                throw AdminError(code: "plane_api_key_unreadable", message: "the Plane API key file \(apiKeyFile) does not exist; check the path")
            }
            keyBytes = content
        } else if let value = environment[apiKeyVariable] {
            keyBytes = Array(value.utf8)
        } else {
            throw AdminError(
                code: "plane_api_key_missing",
                message: "Plane's API key is missing: pass --plane-api-key-file FILE (mode 600) or set \(apiKeyVariable)")
        }
        let trimmed = keyBytes.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }.reversed().drop {
            $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09
        }.reversed()
        let key = Array(trimmed)
        guard (8...512).contains(key.count), key.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw AdminError(code: "plane_api_key_invalid", message: "Plane's API key must be one line of 8 to 512 printable characters")
        }
        let secret = SecretBytes(copying: key)
        if let webURL, !(webURL.hasPrefix("http://") || webURL.hasPrefix("https://")) {
            throw AdminError(code: "plane_url_invalid", message: "--plane-web-url must be Plane's web app, such as https://plane.example.com")
        }
        return PlaneSettings(apiURL: url, workspace: workspace, apiKey: secret, webURL: webURL)
    }
}
