import AgentWire
import SystemSupport

/// One check of `agent-sidecar doctor`: what it found and, when that is not as it should be, what
/// to do about it. Nothing in it is secret.
public struct DoctorCheck: Sendable, Equatable {
    public enum Status: String, Sendable {
        case ok
        /// Works now, but something is off that can stop it working (a clock drifting, a variable
        /// the client will not pass on).
        case warning = "warn"
        case failed = "fail"
        /// Not run because a check it needs failed.
        case skipped = "skip"
    }

    /// A short name: `profile`, `device key`, `codex config`, `gateway`…
    public let name: String
    public let status: Status
    /// What was found, in one line.
    public let detail: String
    /// What to do, for anything but `ok`.
    public let fix: String?

    public init(_ name: String, _ status: Status, _ detail: String, fix: String? = nil) {
        self.name = name
        self.status = status
        self.detail = detail
        self.fix = fix
    }
}

/// Everything `doctor` checked for one profile.
public struct DoctorReport: Sendable {
    public let profile: String
    public let checks: [DoctorCheck]

    /// Whether every check holds (`doctor` exits 0 only then).
    public var holds: Bool { checks.allSatisfy { $0.status == .ok } }

    /// One line per check, then a verdict.
    public var text: String {
        let width = checks.map(\.name.count).max() ?? 0
        var output = "agent-sidecar doctor, profile \(profile):\n"
        for check in checks {
            let label: String
            switch check.status {
            case .ok: label = "ok  "
            case .warning: label = "WARN"
            case .failed: label = "FAIL"
            case .skipped: label = "skip"
            }
            let name = check.name + String(repeating: " ", count: width - check.name.count)
            output += "  \(label)  \(name)  \(check.detail.flattenedToOneLine())\(check.fix.map { "; " + $0.flattenedToOneLine() } ?? "")\n"
        }
        let failed = checks.filter { $0.status == .failed }.count
        let warned = checks.filter { $0.status == .warning }.count
        if holds {
            output += "All \(checks.count) checks hold.\n"
        } else {
            var parts: [String] = []
            if failed > 0 { parts.append("\(failed) failed") }
            if warned > 0 { parts.append("\(warned) warned") }
            let skipped = checks.filter { $0.status == .skipped }.count
            if skipped > 0 { parts.append("\(skipped) skipped") }
            output += "\(parts.joined(separator: ", ")) of \(checks.count): fix what each line says, then run `agent-sidecar doctor` again.\n"
        }
        return output
    }

    /// The same for scripts: `{"profile","ok","checks":[{"name","status","detail","fix"}]}`.
    public var json: JSONValue {
        [
            "profile": .string(profile),
            "ok": .bool(holds),
            "checks": .array(
                checks.map { check in
                    var object: JSONObject = ["name": .string(check.name), "status": .string(check.status.rawValue), "detail": .string(check.detail)]
                    if let fix = check.fix { object["fix"] = .string(fix) }
                    return .object(object)
                }),
        ]
    }
}
