import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `setup` learned and wrote for one pairing. Nothing in it is secret: it is the public
/// half of the device identity plus facts the gateway told us, stored as `profiles/NAME.json`.
public struct SidecarProfile: Sendable, Equatable {
    /// An agent or owner as the gateway names it.
    public struct Party: Sendable, Equatable {
        public var id: String
        public var name: String
        public init(id: String, name: String) {
            self.id = id
            self.name = name
        }
    }

    /// One project the agent may act in, with its scopes.
    public struct Grant: Sendable, Equatable {
        /// The project identifier (what tools take).
        public var project: String
        /// The project's display name, when the gateway gave one.
        public var name: String?
        public var scopes: [String]
        public init(project: String, name: String? = nil, scopes: [String]) {
            self.project = project
            self.name = name
            self.scopes = scopes
        }
    }

    /// A file `setup` wrote into, so `logout --purge-config` can take our part out again.
    public struct WrittenFile: Sendable, Equatable {
        public var path: String
        public var kind: SetupTarget
        public init(path: String, kind: SetupTarget) {
            self.path = path
            self.kind = kind
        }
    }

    public static let formatVersion = 1

    public var name: String
    /// The gateway URL as normalised by ``GatewayOrigin``.
    public var gatewayURL: String
    public var deviceID: String
    public var deviceName: String
    public var agent: Party
    public var owner: Party
    /// The device public key, standard base64.
    public var publicKey: String
    /// When the device was paired, ISO 8601 UTC.
    public var createdAt: String
    /// The grants as of the last setup (the gateway stays the authority).
    public var grants: [Grant]
    /// Where the key-encryption key was put, when not in the default place.
    public var keyEncryptionKeyFile: String?
    public var writtenFiles: [WrittenFile]

    public init(
        name: String, gatewayURL: String, deviceID: String, deviceName: String, agent: Party, owner: Party, publicKey: String,
        createdAt: String, grants: [Grant], keyEncryptionKeyFile: String? = nil, writtenFiles: [WrittenFile] = []
    ) {
        self.name = name
        self.gatewayURL = gatewayURL
        self.deviceID = deviceID
        self.deviceName = deviceName
        self.agent = agent
        self.owner = owner
        self.publicKey = publicKey
        self.createdAt = createdAt
        self.grants = grants
        self.keyEncryptionKeyFile = keyEncryptionKeyFile
        self.writtenFiles = writtenFiles
    }

    /// The gateway as a parsed origin.
    public var gateway: GatewayOrigin? { GatewayOrigin(gatewayURL) }

    /// The profile as JSON.
    public var json: JSONValue {
        var object: JSONObject = [
            "version": .int(Self.formatVersion),
            "name": .string(name),
            "gateway": .string(gatewayURL),
            "deviceId": .string(deviceID),
            "deviceName": .string(deviceName),
            "agent": ["id": .string(agent.id), "name": .string(agent.name)],
            "owner": ["id": .string(owner.id), "name": .string(owner.name)],
            "publicKey": .string(publicKey),
            "createdAt": .string(createdAt),
            "grants": .array(
                grants.map { grant in
                    var entry: JSONObject = ["project": .string(grant.project)]
                    if let name = grant.name { entry["name"] = .string(name) }
                    entry["scopes"] = .array(grant.scopes.map { .string($0) })
                    return .object(entry)
                }),
        ]
        if let keyEncryptionKeyFile { object["keyEncryptionKeyFile"] = .string(keyEncryptionKeyFile) }
        object["writtenFiles"] = .array(writtenFiles.map { ["path": .string($0.path), "kind": .string($0.kind.rawValue)] })
        return .object(object)
    }

    /// Reads a profile from its JSON.
    ///
    /// - Parameters:
    ///   - json: The parsed file.
    ///   - path: The file, for messages.
    public init(json: JSONValue, path: String) throws(CredentialError) {
        func malformed(_ what: String) -> CredentialError {
            CredentialError(
                .malformedProfile,
                "the profile \(path) is not valid (\(what)); pair again with `agent-sidecar setup --gateway URL` and a new pairing code from the agent's owner",
                path: path)
        }
        func string(_ value: JSONValue?, _ field: String) throws(CredentialError) -> String {
            guard let text = value?.stringValue else { throw malformed("missing \(field)") }
            return text
        }
        func party(_ value: JSONValue?, _ field: String) throws(CredentialError) -> Party {
            Party(id: try string(value?["id"], "\(field).id"), name: try string(value?["name"], "\(field).name"))
        }
        guard json.objectValue != nil else { throw malformed("not a JSON object") }
        guard let version = json["version"]?.intValue, version <= Self.formatVersion else {
            throw CredentialError(
                .malformedProfile, "the profile \(path) was written by a newer agent-sidecar; upgrade agent-sidecar",
                path: path)
        }
        name = try string(json["name"], "name")
        gatewayURL = try string(json["gateway"], "gateway")
        deviceID = try string(json["deviceId"], "deviceId")
        deviceName = json["deviceName"]?.stringValue ?? ""
        agent = try party(json["agent"], "agent")
        owner = try party(json["owner"], "owner")
        publicKey = try string(json["publicKey"], "publicKey")
        createdAt = json["createdAt"]?.stringValue ?? ""
        var grants: [Grant] = []
        for entry in json["grants"]?.arrayValue ?? [] {
            grants.append(
                Grant(
                    project: try string(entry["project"], "grants.project"), name: entry["name"]?.stringValue,
                    scopes: (entry["scopes"]?.arrayValue ?? []).compactMap(\.stringValue)))
        }
        self.grants = grants
        keyEncryptionKeyFile = json["keyEncryptionKeyFile"]?.stringValue
        writtenFiles = (json["writtenFiles"]?.arrayValue ?? []).compactMap { entry in
            guard let path = entry["path"]?.stringValue, let kind = entry["kind"]?.stringValue.flatMap(SetupTarget.init(rawValue:))
            else { return nil }
            return WrittenFile(path: path, kind: kind)
        }
    }
}

/// Reads and writes profile files.
public struct ProfileStore: Sendable {
    public let paths: SidecarPaths

    public init(paths: SidecarPaths) { self.paths = paths }

    /// The profile, or ``CredentialError/Code/profileNotFound``.
    public func load(_ name: String) throws -> SidecarProfile {
        try ProfileName.validate(name)
        let path = paths.profileFile(name)
        guard let bytes = try FileSystem.readFile(path) else {
            throw CredentialError(
                .profileNotFound, "there is no profile \"\(name)\" (\(path)); run `agent-sidecar setup` first", path: path)
        }
        guard let json = try? JSONValue(parsing: bytes) else {
            throw CredentialError(
                .malformedProfile,
                "the profile \(path) is not valid JSON; pair again with `agent-sidecar setup --gateway URL` and a new pairing code from the agent's owner",
                path: path)
        }
        let profile = try SidecarProfile(json: json, path: path)
        guard profile.name == name else {
            throw CredentialError(
                .malformedProfile,
                "the profile \(path) names itself \"\(profile.name)\"; pair again with `agent-sidecar setup --gateway URL` and a new pairing code from the agent's owner",
                path: path)
        }
        return profile
    }

    /// Whether a profile file exists.
    public func exists(_ name: String) -> Bool { FileSystem.exists(paths.profileFile(name)) }

    /// Writes the profile atomically (`0600`: it is not secret, but it is nobody else's business).
    public func save(_ profile: SidecarProfile) throws {
        try ProfileName.validate(profile.name)
        try AtomicFile.write(PrettyJSON.render(profile.json), to: paths.profileFile(profile.name), permissions: .ownerOnly)
    }

    /// Removes the profile file; `false` when there was none.
    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try ProfileName.validate(name)
        let removed = try FileSystem.removeFile(paths.profileFile(name))
        if removed { AtomicFile.syncDirectory(paths.profilesDirectory) }
        return removed
    }

    /// The names of all profiles, sorted.
    public func names() -> [String] {
        guard let directory = opendir(paths.profilesDirectory) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".json") else { continue }
            let profile = String(name.dropLast(5))
            if (try? ProfileName.validate(profile)) != nil { names.append(profile) }
        }
        return names.sorted()
    }
}

/// UTC timestamps in ISO 8601.
public enum Timestamp {
    /// Seconds since the Unix epoch, now.
    public static func nowSeconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
    public static func iso8601(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
