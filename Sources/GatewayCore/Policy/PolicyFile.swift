import AgentWire
import SystemSupport
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Why a policy file was refused: the line (1-based, 0 when unknown) and the reason.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let reason: String

    public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
}

/// Reads the capability policy from YAML and checks it against the rules of
/// `docs/policy.schema.json` (the JSON Schema published for editors and CI), reporting the first
/// problem with its line. Every size and count is bounded: the file, the nodes walked (aliases
/// included), the lists.
public enum PolicyFile {
    public static let maximumBytes = 256 * 1024
    public static let maximumNodes = 20_000
    public static let maximumValuesPerCondition = 50
    public static let maximumConditions = 20

    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(PolicyError) -> CapabilityPolicy {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readRequiredFile(path, limit: maximumBytes)
        } catch {
            if error.code == EFBIG { throw PolicyError(line: 0, reason: "the policy file \(path) is larger than \(maximumBytes / 1024) KiB") }
            throw PolicyError(line: 0, reason: "cannot read the policy file \(path) (\(error)); check the path and its permissions")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw PolicyError(line: 0, reason: "the policy file \(path) is not UTF-8 text")
        }
        var policy = try parse(text)
        policy.source = path
        return policy
    }

    /// Parses and validates policy YAML.
    public static func parse(_ text: String) throws(PolicyError) -> CapabilityPolicy {
        guard text.utf8.count <= maximumBytes else { throw PolicyError(line: 0, reason: "the policy is larger than \(maximumBytes / 1024) KiB") }
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else { throw PolicyError(line: 1, reason: "the policy file is empty") }
            root = composed
        } catch let error as PolicyError {
            throw error
        } catch let error as YamlError {
            throw yamlProblem(error)
        } catch {
            throw PolicyError(line: 0, reason: "the policy is not valid YAML")
        }
        var walker = Walker()
        return try walker.policy(root)
    }

    static func yamlProblem(_ error: YamlError) -> PolicyError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return PolicyError(line: mark.line, reason: "not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return PolicyError(line: context.mark.line, reason: "the key \(duplicates.joined(separator: ", ")) appears twice in one mapping")
        default:
            return PolicyError(line: 0, reason: "not valid YAML: \(String(describing: error).flattenedToOneLine(limit: 200))")
        }
    }

    struct Walker {
        var visited = 0

        mutating func count(_ node: Node) throws(PolicyError) {
            visited += 1
            guard visited <= PolicyFile.maximumNodes else {
                throw PolicyError(line: line(node), reason: "the policy has more than \(PolicyFile.maximumNodes) values (aliases count each time)")
            }
        }

        func line(_ node: Node) -> Int { node.mark?.line ?? 0 }

        mutating func mapping(_ node: Node, _ what: String, allowed: Set<String>) throws(PolicyError) -> [(String, Node, Int)] {
            try count(node)
            guard case .mapping(let mapping) = node else { throw PolicyError(line: line(node), reason: "\(what) must be a mapping") }
            var pairs: [(String, Node, Int)] = []
            for (key, value) in mapping {
                try count(key)
                guard case .scalar(let scalar) = key else { throw PolicyError(line: line(key), reason: "a key of \(what) must be text") }
                if !allowed.isEmpty, !allowed.contains(scalar.string) {
                    throw PolicyError(
                        line: line(key),
                        reason:
                            "unknown key \(BoundedText.excerpt(scalar.string, limit: 60)) in \(what); allowed: \(allowed.sorted().joined(separator: ", "))"
                    )
                }
                pairs.append((scalar.string, value, line(key)))
            }
            return pairs
        }

        mutating func scalar(_ node: Node, _ what: String) throws(PolicyError) -> String {
            try count(node)
            guard case .scalar(let scalar) = node else { throw PolicyError(line: line(node), reason: "\(what) must be a single value") }
            return scalar.string
        }

        mutating func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ what: String, _: T.Type) throws(PolicyError) -> T
        where T.RawValue == String {
            let text = try scalar(node, what)
            guard let value = T(rawValue: text) else {
                throw PolicyError(
                    line: line(node),
                    reason: "\(what) is \(BoundedText.excerpt(text, limit: 40)); use one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return value
        }

        mutating func integer(_ node: Node, _ what: String, in range: ClosedRange<Int>) throws(PolicyError) -> Int {
            let text = try scalar(node, what)
            guard let value = Int(text), range.contains(value) else {
                throw PolicyError(
                    line: line(node),
                    reason:
                        "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(BoundedText.excerpt(text, limit: 40))")
            }
            return value
        }

        mutating func policy(_ root: Node) throws(PolicyError) -> CapabilityPolicy {
            var policy = CapabilityPolicy()
            var sawVersion = false
            for (key, value, _) in try mapping(root, "the policy", allowed: ["version", "defaults", "tools"]) {
                switch key {
                case "version":
                    guard try integer(value, "version", in: 1...1) == 1 else { continue }
                    sawVersion = true
                case "defaults":
                    for (name, setting, _) in try mapping(value, "defaults", allowed: ["approval", "waitSeconds", "approvers", "requestOpenMinutes"])
                    {
                        switch name {
                        case "approval": policy.approval = try choice(setting, "defaults.approval", ApprovalScope.self)
                        case "waitSeconds": policy.waitSeconds = try integer(setting, "defaults.waitSeconds", in: CapabilityPolicy.waitSecondsRange)
                        case "approvers": policy.approvers = try choice(setting, "defaults.approvers", Approvers.self)
                        default:
                            policy.requestOpenMinutes = try integer(
                                setting, "defaults.requestOpenMinutes", in: CapabilityPolicy.requestOpenMinutesRange)
                        }
                    }
                default:
                    for (name, body, keyLine) in try mapping(value, "tools", allowed: []) {
                        guard let tool = ToolCatalog.byName[name] else {
                            throw PolicyError(
                                line: keyLine,
                                reason:
                                    "unknown tool \(BoundedText.excerpt(name, limit: 60)); tools: \(ToolCatalog.all.map(\.name).joined(separator: ", "))"
                            )
                        }
                        policy.tools[name] = try toolPolicy(body, tool: tool)
                    }
                }
            }
            guard sawVersion else { throw PolicyError(line: line(root), reason: "the policy needs `version: 1`") }
            return policy
        }

        mutating func toolPolicy(_ node: Node, tool: ToolDefinition) throws(PolicyError) -> ToolPolicy {
            var result = ToolPolicy()
            let pairs = try mapping(node, "tools.\(tool.name)", allowed: ["tier", "approval", "waitSeconds", "approvers", "when", "projects"])
            var ruleNode: [(String, Node, Int)] = []
            for (key, value, _) in pairs {
                if key == "projects" {
                    for (project, body, keyLine) in try mapping(value, "tools.\(tool.name).projects", allowed: []) {
                        guard Self.isProjectKey(project) else {
                            throw PolicyError(
                                line: keyLine,
                                reason:
                                    "\(BoundedText.excerpt(project, limit: 40)) is not a project key (capital letters and digits, starting with a letter, at most 20)"
                            )
                        }
                        let fields = try mapping(
                            body, "tools.\(tool.name).projects.\(project)", allowed: ["tier", "approval", "waitSeconds", "approvers", "when"])
                        result.projects[project] = try rule(fields, tool: tool, path: "tools.\(tool.name).projects.\(project)")
                    }
                } else {
                    ruleNode.append((key, value, 0))
                }
            }
            result.rule = try rule(ruleNode, tool: tool, path: "tools.\(tool.name)")
            return result
        }

        mutating func rule(_ fields: [(String, Node, Int)], tool: ToolDefinition, path: String) throws(PolicyError) -> PolicyRule {
            var rule = PolicyRule()
            for (key, value, _) in fields {
                switch key {
                case "tier": rule.tier = try choice(value, "\(path).tier", Tier.self)
                case "approval": rule.approval = try choice(value, "\(path).approval", ApprovalScope.self)
                case "waitSeconds": rule.waitSeconds = try integer(value, "\(path).waitSeconds", in: CapabilityPolicy.waitSecondsRange)
                case "approvers": rule.approvers = try choice(value, "\(path).approvers", Approvers.self)
                default: rule.when = try conditions(value, tool: tool, path: "\(path).when")
                }
            }
            return rule
        }

        mutating func conditions(_ node: Node, tool: ToolDefinition, path: String) throws(PolicyError) -> [PolicyCondition] {
            try count(node)
            guard case .sequence(let sequence) = node else { throw PolicyError(line: line(node), reason: "\(path) must be a list") }
            guard sequence.count <= PolicyFile.maximumConditions else {
                throw PolicyError(line: line(node), reason: "\(path) has more than \(PolicyFile.maximumConditions) conditions")
            }
            let stringArguments = Set(
                (tool.inputSchema["properties"]?.objectValue?.members ?? []).filter { $0.value["type"]?.stringValue == "string" }.map(\.key)
            ).subtracting(["idempotencyKey"])
            var result: [PolicyCondition] = []
            for item in sequence {
                var argument: String?
                var values: [String] = []
                var tier: Tier?
                for (key, value, keyLine) in try mapping(item, path, allowed: ["argument", "in", "tier"]) {
                    switch key {
                    case "argument":
                        let name = try scalar(value, "\(path).argument")
                        guard stringArguments.contains(name) else {
                            throw PolicyError(
                                line: line(value),
                                reason:
                                    "\(tool.name) has no text argument \(BoundedText.excerpt(name, limit: 40)); use one of \(stringArguments.sorted().joined(separator: ", "))"
                            )
                        }
                        argument = name
                    case "in":
                        try count(value)
                        guard case .sequence(let list) = value, (1...PolicyFile.maximumValuesPerCondition).contains(list.count) else {
                            throw PolicyError(
                                line: keyLine, reason: "\(path).in must be a list of 1 to \(PolicyFile.maximumValuesPerCondition) values")
                        }
                        for entry in list {
                            let text = try scalar(entry, "\(path).in")
                            guard (1...100).contains(text.count) else {
                                throw PolicyError(line: line(entry), reason: "each value of \(path).in must have 1 to 100 characters")
                            }
                            values.append(text)
                        }
                    default: tier = try choice(value, "\(path).tier", Tier.self)
                    }
                }
                guard let argument, !values.isEmpty, let tier else {
                    throw PolicyError(line: line(item), reason: "each condition of \(path) needs argument, in and tier")
                }
                result.append(PolicyCondition(argument: argument, values: values, tier: tier))
            }
            return result
        }

        static func isProjectKey(_ text: String) -> Bool {
            let scalars = Array(text.unicodeScalars)
            guard (1...20).contains(scalars.count), let first = scalars.first, ("A"..."Z").contains(first) else { return false }
            return scalars.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
        }
    }
}
