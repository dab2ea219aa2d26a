import AgentWire
import ArgumentParser
import GatewayCore

struct Policy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a capability policy file (tiers, approvals).", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy file and print the effective table; without FILE, the built-in defaults.",
            discussion: "An invalid file is refused with its line and reason (exit 1). The schema is docs/policy.schema.json.")
        @Argument(help: "The YAML policy file.") var file: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let policy: CapabilityPolicy
            if let file {
                do { policy = try PolicyFile.load(path: file) } catch { throw CommandFailure(description: "\(file): \(error.description)") }
            } else {
                policy = .builtIn
            }
            if json {
                printLine(policy.tableJSON().jsonText)
                return
            }
            printLine("policy \(policy.source): valid; pending requests stay open \(policy.requestOpenMinutes) min")
            printTable(CapabilityPolicy.tableHeader, policy.table(), empty: "no tools")
        }
    }
}

struct Approvals: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, approve and deny the approval requests of high and critical tool calls.",
        subcommands: [List.self, Approve.self, Deny.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List requests, newest first (pending ones only unless --all).")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this owner's agents' requests.") var owner: String?
        @Flag(help: "Also list decided and expired requests.") var all = false
        @Option(help: "At most this many (1 to 1000).") var limit = 200

        func run() async throws {
            do {
                let admin = try await store.admin()
                let requests = try await admin.approvalRequests(ownerID: owner, pendingOnly: !all, limit: limit)
                let moment = admin.clock.nowMilliseconds()
                if store.json {
                    printLine(JSONValue.object(["requests": .array(requests.map { GatewayAdmin.json($0, at: moment) })]).jsonText)
                    return
                }
                printTable(
                    ["REQUEST", "STATUS", "TIER", "AGENT", "OWNER", "TOOL", "PROJECT", "SCOPE", "ASKED", "SUMMARY"],
                    requests.map { request in
                        [
                            request.id, request.effectiveStatus(at: moment), request.tier, request.agentID, request.ownerID, request.tool,
                            request.project ?? "-", request.scope, Timestamp.rfc3339(milliseconds: request.createdAt, fractional: false),
                            request.summary,
                        ]
                    }, empty: all ? "no approval requests yet" : "no pending approval requests (--all lists the decided ones)")
            } catch { throw fail(error) }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve a pending request: the waiting call runs (a session-wide request also covers the session's later calls).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The request id (apr_…, see `approvals list`).") var requestID: String
        @Option(help: "Why (required for a critical request).") var reason: String?
        @Option(name: .customLong("as"), help: "Decide as this admin (needed for a critical request: the admin's break-glass grant).")
        var asUser: String?

        func run() async throws {
            do {
                let decided = try await store.admin().decideApproval(
                    id: requestID, approve: true, reason: reason, by: asUser.map { .user($0) } ?? .hostCLI)
                printLine(store.json ? GatewayAdmin.json(decided, at: decided.decidedAt ?? 0).jsonText : "approved \(requestID)")
            } catch { throw fail(error) }
        }
    }

    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deny a pending request: the waiting call ends with your reason.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The request id (apr_…, see `approvals list`).") var requestID: String
        @Option(help: "Why: the agent sees it.") var reason: String
        @Option(name: .customLong("as"), help: "Decide as this person.") var asUser: String?

        func run() async throws {
            do {
                let decided = try await store.admin().decideApproval(
                    id: requestID, approve: false, reason: reason, by: asUser.map { .user($0) } ?? .hostCLI)
                printLine(store.json ? GatewayAdmin.json(decided, at: decided.decidedAt ?? 0).jsonText : "denied \(requestID)")
            } catch { throw fail(error) }
        }
    }
}

struct BreakGlass: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "breakglass", abstract: "Open, end and list break-glass grants: an admin may approve critical requests while one is in force.",
        subcommands: [Open.self, End.self, List.self])

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open a time-boxed break-glass grant for an admin, with a reason.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The admin's id.") var admin: String
        @Option(help: "Why (kept in the action log).") var reason: String
        @Option(help: "How long, 1 to 240 minutes.") var minutes = 30

        func run() async throws {
            do {
                let grant = try await store.admin().openBreakGlass(adminID: admin, reason: reason, minutes: minutes, by: .hostCLI)
                printLine(
                    store.json
                        ? JSONValue.object([
                            "id": .string(grant.id), "admin": .string(grant.adminID),
                            "expiresAt": .string(Timestamp.rfc3339(milliseconds: grant.expiresAt, fractional: false)),
                        ]).jsonText
                        : "\(grant.id) (\(admin), until \(Timestamp.rfc3339(milliseconds: grant.expiresAt, fractional: false)))")
            } catch { throw fail(error) }
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a break-glass grant now.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The grant id (bkg_…).") var grantID: String

        func run() async throws {
            do {
                try await store.admin().endBreakGlass(id: grantID, by: .hostCLI)
                printLine(store.json ? JSONValue.object(["ended": .string(grantID)]).jsonText : "ended \(grantID)")
            } catch { throw fail(error) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List break-glass grants, newest first.")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            do {
                let admin = try await store.admin()
                let grants = try await admin.breakGlassGrants()
                let moment = admin.clock.nowMilliseconds()
                printTable(
                    ["GRANT", "ADMIN", "STATE", "UNTIL", "REASON"],
                    grants.map {
                        [
                            $0.id, $0.adminID, $0.isActive(at: moment) ? "in force" : "ended",
                            Timestamp.rfc3339(milliseconds: $0.endedAt ?? $0.expiresAt, fractional: false), $0.reason,
                        ]
                    }, empty: "no break-glass grants yet")
            } catch { throw fail(error) }
        }
    }
}
