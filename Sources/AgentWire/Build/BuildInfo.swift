/// What both binaries say they are: the version (the one place it is written) and the git commit
/// they were built from.
///
/// The commit is baked in at build time, never asked of git at run time: `scripts/build-release`
/// (and `scripts/test`, through `scripts/build-release --stamp`) writes
/// `BuildCommit.generated.swift` beside this file before building, a one-line extension that makes
/// ``BuildStamp`` conform to ``BuildCommitStamp``. That file is not committed (`.gitignore`); a
/// build without it (a plain `swift build` in a fresh clone) says `unknown`.
public enum BuildInfo {
    /// The release version of agent-sidecar and agent-gateway.
    public static let version = "0.1.0"

    /// The commit (12 hex digits, `-dirty` when tracked files had changes) or `unknown`.
    public static var commit: String {
        ((BuildStamp.self as Any.Type) as? any BuildCommitStamp.Type)?.commit ?? "unknown"
    }

    /// What `--version` prints: `agent-gateway 0.1.0 (commit 0123456789ab)`.
    public static func versionLine(program: String) -> String {
        "\(program) \(version) (commit \(commit))"
    }
}

/// The type the generated file extends.
public enum BuildStamp {}

/// What the generated file provides.
public protocol BuildCommitStamp {
    static var commit: String { get }
}
