import SystemSupport

/// A private CA that a gateway's certificate chains to (`setup --ca-file`): setup checks it, pairs
/// through it, and keeps a copy beside the profile, so that `serve`, `doctor` and later refreshes
/// trust it for that profile's gateway without a path into a directory that may move or change.
/// It is added to the system's CA bundle, never put in its place.
public enum GatewayCA {
    /// A CA bundle larger than this is refused (a few certificates are a few kilobytes).
    public static let maximumBytes = 256 * 1024

    /// Reads and checks the PEM file a user named.
    public static func read(_ path: String) throws(SetupError) -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readRequiredFile(path, limit: maximumBytes) } catch {
            throw SetupError(.invalidInput, "cannot read the CA file (\(error)); check --ca-file, a PEM file of at most 256 KiB")
        }
        guard String(decoding: bytes, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            throw SetupError(
                .invalidInput, "\(path) holds no PEM certificate (-----BEGIN CERTIFICATE-----); pass the gateway's CA in PEM with --ca-file")
        }
        return bytes
    }

    /// The CA kept for a profile, if setup was given one.
    public static func stored(paths: SidecarPaths, profile: String) throws(FileSystemError) -> [UInt8]? {
        try FileSystem.readFile(paths.gatewayCAFile(profile), limit: maximumBytes)
    }

    /// Keeps the CA for a profile (owner-only, written atomically, never through a link).
    public static func store(_ bytes: [UInt8], paths: SidecarPaths, profile: String) throws {
        try AtomicFile.write(bytes, to: paths.gatewayCAFile(profile), permissions: .ownerOnly, followLinks: false)
    }

    /// Removes a profile's CA; whether there was one.
    public static func remove(paths: SidecarPaths, profile: String) throws -> Bool {
        try FileSystem.removeFile(paths.gatewayCAFile(profile))
    }

    /// The certificates to add to the system bundle: the stored CA and an explicit `--ca-file`'s.
    public static func combined(_ parts: [UInt8]?...) -> [UInt8]? {
        let present = parts.compactMap { $0 }
        guard !present.isEmpty else { return nil }
        return Array(present.joined(separator: Array("\n".utf8)))
    }
}
