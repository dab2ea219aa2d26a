import AgentWire
import Logging
import SodiumKit
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The last tool catalog a paired gateway served, as the gateway sent it, with the gateway's
/// `initialize` instructions.
public struct ToolCatalogSnapshot: Sendable, Equatable {
    /// The `tools` array of `tools/list`, unfiltered (narrowing applies when it is served).
    public var tools: [JSONValue]
    /// The gateway's `initialize` instructions, if it sent any.
    public var instructions: String?
    /// The gateway it came from (`SidecarProfile.gatewayURL`): a catalog of another gateway is not served.
    public var gatewayURL: String
    /// When it was stored (ISO 8601, UTC).
    public var savedAt: String

    public init(tools: [JSONValue], instructions: String?, gatewayURL: String, savedAt: String = Timestamp.iso8601(Timestamp.nowSeconds())) {
        self.tools = tools
        self.instructions = instructions
        self.gatewayURL = gatewayURL
        self.savedAt = savedAt
    }
}

/// Where a profile keeps the last tool catalog its gateway served: `state/NAME.tools.json`
/// (``SidecarPaths/toolCatalogFile(_:)``), mode `0600` in a `0700` directory, replaced atomically.
///
/// Nothing in it is secret (tool names, descriptions and schemas, the gateway's instructions), but
/// it is nobody else's business either. `setup` writes the first one; `serve --profile` rewrites it
/// whenever the gateway serves a different catalog, and serves it when the gateway cannot be
/// reached or refuses the session, so `tools/list` always succeeds in paired mode.
public struct ToolCatalogCache: Sendable {
    public static let formatVersion = 1
    /// A larger file is not read (the gateway's catalog is a few tens of KiB).
    public static let maximumBytes = 4 << 20
    /// A catalog with more tools is not stored or served.
    public static let maximumTools = 1000

    public let path: String
    public let gatewayURL: String

    /// - Parameters:
    ///   - paths: The state layout.
    ///   - profile: The profile name (already validated).
    ///   - gatewayURL: The profile's gateway; a stored catalog of another gateway is ignored.
    public init(paths: SidecarPaths, profile: String, gatewayURL: String) {
        self.path = paths.toolCatalogFile(profile)
        self.gatewayURL = gatewayURL
    }

    /// Why a stored catalog cannot be used.
    public enum LoadFailure: Error, Sendable, Equatable, CustomStringConvertible {
        case missing
        case unreadable(String)
        case tooLarge(Int)
        case malformed(String)
        case otherGateway(String)

        public var description: String {
            switch self {
            case .missing: return "there is no stored tool catalog yet"
            case .unreadable(let detail): return "the stored tool catalog cannot be read (\(detail))"
            case .tooLarge(let size): return "the stored tool catalog is \(size) bytes, over the \(ToolCatalogCache.maximumBytes)-byte limit"
            case .malformed(let detail): return "the stored tool catalog is malformed (\(detail))"
            case .otherGateway(let url): return "the stored tool catalog belongs to another gateway (\(url))"
            }
        }
    }

    /// The stored catalog.
    public func load() -> Result<ToolCatalogSnapshot, LoadFailure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if descriptor < 0 {
            if errno == ENOENT { return .failure(.missing) }
            return .failure(.unreadable(SystemError.describe(errno)))
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return .failure(.unreadable("not a regular file")) }
        guard Int(info.st_size) <= Self.maximumBytes else { return .failure(.tooLarge(Int(info.st_size))) }
        let bytes: [UInt8]
        do {
            bytes = try Descriptor.readAll(descriptor, limit: Self.maximumBytes)
        } catch {
            // The file grew past the bound after fstat: at least one byte more than the limit.
            if error.code == EFBIG { return .failure(.tooLarge(Self.maximumBytes + 1)) }
            return .failure(.unreadable(SystemError.describe(error.code)))
        }
        return Self.decode(bytes, expectedGateway: gatewayURL)
    }

    static func decode(_ bytes: [UInt8], expectedGateway: String) -> Result<ToolCatalogSnapshot, LoadFailure> {
        guard let json = try? JSONValue(parsing: bytes), json.objectValue != nil else { return .failure(.malformed("not a JSON object")) }
        guard json["format"]?.intValue == formatVersion else { return .failure(.malformed("unknown format")) }
        guard let gateway = json["gateway"]?.stringValue else { return .failure(.malformed("no gateway")) }
        guard gateway == expectedGateway else { return .failure(.otherGateway(gateway)) }
        guard let tools = json["tools"]?.arrayValue, tools.count <= maximumTools else { return .failure(.malformed("no usable tools array")) }
        guard tools.allSatisfy({ $0["name"]?.stringValue != nil && $0["inputSchema"]?.objectValue != nil }) else {
            return .failure(.malformed("a tool has no name or input schema"))
        }
        return .success(
            ToolCatalogSnapshot(
                tools: tools, instructions: json["instructions"]?.stringValue, gatewayURL: gateway, savedAt: json["savedAt"]?.stringValue ?? ""))
    }

    static func encode(_ snapshot: ToolCatalogSnapshot) -> [UInt8] {
        var object: JSONObject = [
            "format": .int(formatVersion), "gateway": .string(snapshot.gatewayURL), "savedAt": .string(snapshot.savedAt),
        ]
        if let instructions = snapshot.instructions { object["instructions"] = .string(instructions) }
        object["tools"] = .array(snapshot.tools)
        return JSONValue.object(object).serialized() + [UInt8(ascii: "\n")]
    }

    /// Stores a catalog (atomically, `0600`). A catalog over ``maximumTools`` is refused.
    public func store(_ snapshot: ToolCatalogSnapshot) throws {
        guard snapshot.tools.count <= Self.maximumTools else {
            throw LoadFailure.malformed("\(snapshot.tools.count) tools, over the limit of \(Self.maximumTools)")
        }
        let bytes = Self.encode(snapshot)
        guard bytes.count <= Self.maximumBytes else { throw LoadFailure.tooLarge(bytes.count) }
        try AtomicFile.write(bytes, to: path, permissions: .ownerOnly)
    }

    /// Removes the stored catalog (logout); `false` when there was none.
    @discardableResult
    public func remove() throws -> Bool { try FileSystem.removeFile(path) }

    /// Reads the catalog from the gateway's `/mcp` with a session token and stores it: what `setup`
    /// does right after pairing, so that the first `serve` has a catalog to fall back on.
    ///
    /// - Parameters:
    ///   - api: The gateway client (its origin must be this cache's gateway).
    ///   - token: A session token minted by the device key; it goes to the gateway only.
    /// - Returns: The stored snapshot.
    @discardableResult
    public func refresh(from api: GatewayAPIClient, token: SecretBytes) async throws -> ToolCatalogSnapshot {
        let catalog = try await api.toolCatalog(token: token)
        let snapshot = ToolCatalogSnapshot(tools: catalog.tools, instructions: catalog.instructions, gatewayURL: gatewayURL)
        try store(snapshot)
        return snapshot
    }
}

/// Paired mode's memory of the tool catalog, shared by one `serve` process: the catalog loaded at
/// start (what `tools/list` falls back on), updated, and written back only when the gateway serves
/// a different one, so several sidecars of one profile rarely write at all.
public final class ToolCatalogMemory: Sendable {
    let cache: ToolCatalogCache
    let logger: Logger
    private let snapshot: Mutex<ToolCatalogSnapshot?>

    /// Loads the stored catalog (a missing or unusable one is logged and treated as none).
    public init(cache: ToolCatalogCache, logger: Logger) {
        self.cache = cache
        self.logger = logger
        switch cache.load() {
        case .success(let loaded):
            snapshot = Mutex(loaded)
            logger.debug("loaded the last tool catalog (\(loaded.tools.count) tools, stored \(loaded.savedAt)) from \(cache.path)")
        case .failure(let failure):
            snapshot = Mutex(nil)
            if failure == .missing {
                logger.debug("no stored tool catalog at \(cache.path)")
            } else {
                logger.notice("not using the stored tool catalog: \(failure); it is replaced on the next successful tools/list")
            }
        }
    }

    /// The last catalog, or nil when there is none.
    public var current: ToolCatalogSnapshot? { snapshot.withLock { $0 } }

    /// Records what the gateway just served; writes the file when it differs from the last one.
    /// Best effort: a failed write is logged and changes nothing else.
    public func remember(tools: [JSONValue], instructions: String?) {
        guard tools.count <= ToolCatalogCache.maximumTools else { return }
        let changed = snapshot.withLock { current -> ToolCatalogSnapshot? in
            if let current, current.tools == tools, current.instructions == instructions { return nil }
            let fresh = ToolCatalogSnapshot(tools: tools, instructions: instructions, gatewayURL: cache.gatewayURL)
            current = fresh
            return fresh
        }
        guard let changed else { return }
        do {
            try cache.store(changed)
            logger.debug("stored the tool catalog (\(tools.count) tools) in \(cache.path)")
        } catch {
            logger.notice("could not store the tool catalog in \(cache.path): \(error)")
        }
    }
}

extension SidecarSetup {
    /// Stores the gateway's tool catalog for the profile (what `setup` calls with the session it has
    /// just minted). Returns a warning when that failed: setup goes on, and `serve` stores the
    /// catalog on its first successful `tools/list`.
    func storeToolCatalog(api: GatewayAPIClient, token: SecretBytes, profile: SidecarProfile) async -> String? {
        let cache = ToolCatalogCache(paths: paths, profile: profile.name, gatewayURL: profile.gatewayURL)
        do {
            try await cache.refresh(from: api, token: token)
            return nil
        } catch let failure as UpstreamFailure {
            return "could not read the gateway's tool catalog (\(failure.message)); `serve` stores it once it lists the tools"
        } catch {
            return "could not store the gateway's tool catalog in \(cache.path) (\(error)); `serve` stores it once it lists the tools"
        }
    }
}
