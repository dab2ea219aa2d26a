import AgentWire
import ArgumentParser
import GatewayCore

struct Initialize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Create an empty gateway database (or check and migrate an existing one).")
    @OptionGroup var store: StoreOptions

    func run() async throws {
        do {
            _ = try await store.open(creating: true)
            printLine(store.json ? JSONValue.object(["database": .string(store.displayName)]).jsonText : "database \(store.displayName) is ready")
        } catch { throw fail(error) }
    }
}

struct Agent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, pair and revoke agents.", subcommands: [Create.self, List.self, Pair.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an agent with grants; prints its id.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The owner's id, e.g. alice.") var owner: String
        @Option(help: "The agent's name.") var name: String
        @Option(name: .customLong("project"), parsing: .upToNextOption, help: "Project keys to grant.") var projects: [String]
        @Option(name: .customLong("scope"), parsing: .upToNextOption, help: "Scopes to grant on each project.") var scopes: [String]

        func run() async throws {
            do {
                let id = try await store.admin().createAgent(ownerID: owner, name: name, projects: projects, scopes: scopes)
                printLine(store.json ? JSONValue.object(["id": .string(id)]).jsonText : id)
            } catch { throw fail(error) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List agents with their owner, state, devices and last call.")
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this owner's agents.") var owner: String?

        func run() async throws {
            do {
                let agents = try await store.admin().agentSummaries(ownerID: owner)
                if store.json {
                    printLine(JSONValue.object(["agents": .array(agents.map(AdminJSON.agent))]).jsonText)
                    return
                }
                printTable(
                    ["AGENT", "NAME", "OWNER", "STATE", "GRANTS", "DEVICES", "SESSIONS", "LAST CALL"],
                    agents.map { summary in
                        [
                            summary.agent.id, summary.agent.name, summary.agent.ownerID, summary.state,
                            summary.grants.map(\.projectKey).joined(separator: ","), "\(summary.activeDevices)", "\(summary.openSessions)",
                            summary.lastCallAt.map { Timestamp.rfc3339(milliseconds: $0, fractional: false) } ?? "never",
                        ]
                    }, empty: "no agents yet; create one with `agent-gateway agent create`")
            } catch { throw fail(error) }
        }
    }

    struct Pair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a fresh one-time pairing code (valid 10 minutes).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The agent id (see `agent list`).") var agentID: String

        func run() async throws {
            do {
                let code = try await store.admin().createPairingCode(agentID: agentID)
                printLine(store.json ? JSONValue.object(["code": .string(code)]).jsonText : code)
            } catch { throw fail(error) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an agent: its next call fails.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The agent id (see `agent list`).") var agentID: String

        func run() async throws {
            do {
                try await store.admin().revokeAgent(id: agentID)
                printLine(store.json ? JSONValue.object(["revoked": true, "id": .string(agentID)]).jsonText : "revoked \(agentID)")
            } catch { throw fail(error) }
        }
    }
}

struct Device: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List and revoke an agent's devices.", subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an agent's devices.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The agent id (see `agent list`).") var agent: String

        func run() async throws {
            do {
                let devices = try await store.admin().devices(agentID: agent)
                if store.json {
                    printLine(JSONValue.object(["devices": .array(devices.map(AdminJSON.device))]).jsonText)
                    return
                }
                printTable(
                    ["DEVICE", "NAME", "STATE", "PAIRED"],
                    devices.map { device in
                        [
                            device.id, device.name,
                            device.revokedAt.map { "revoked \(Timestamp.rfc3339(milliseconds: $0, fractional: false))" } ?? "active",
                            Timestamp.rfc3339(milliseconds: device.createdAt, fractional: false),
                        ]
                    }, empty: "agent \(agent) has no devices; pair one with `agent-gateway agent pair \(agent)`")
            } catch { throw fail(error) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke one device: its sessions end and its next call fails.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The device id (see `device list`).") var deviceID: String

        func run() async throws {
            do {
                try await store.admin().revokeDevice(id: deviceID)
                printLine(store.json ? JSONValue.object(["revoked": true, "id": .string(deviceID)]).jsonText : "revoked \(deviceID)")
            } catch { throw fail(error) }
        }
    }
}

struct Session: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List and end an agent's sessions.", subcommands: [List.self, End.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an agent's open sessions, newest first.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The agent id (see `agent list`).") var agent: String
        @Flag(help: "Also list ended and expired sessions.") var all = false

        func run() async throws {
            do {
                let sessions = try await store.admin().sessions(agentID: agent, includeClosed: all)
                if store.json {
                    printLine(JSONValue.object(["sessions": .array(sessions.map(AdminJSON.session))]).jsonText)
                    return
                }
                printTable(
                    ["SESSION", "DEVICE", "STARTED", "EXPIRES", "ENDED"],
                    sessions.map { session in
                        [
                            session.id, session.deviceID, Timestamp.rfc3339(milliseconds: session.createdAt, fractional: false),
                            Timestamp.rfc3339(milliseconds: session.expiresAt, fractional: false),
                            session.endedAt.map { Timestamp.rfc3339(milliseconds: $0, fractional: false) } ?? "-",
                        ]
                    }, empty: all ? "agent \(agent) has had no sessions" : "agent \(agent) has no open sessions (--all lists the closed ones)")
            } catch { throw fail(error) }
        }
    }

    struct End: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End one session: its token stops working at once.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The session id (see `session list`).") var sessionID: String

        func run() async throws {
            do {
                try await store.admin().endSession(id: sessionID)
                printLine(store.json ? JSONValue.object(["ended": true, "id": .string(sessionID)]).jsonText : "ended \(sessionID)")
            } catch { throw fail(error) }
        }
    }
}

struct Owner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Block or unblock owners.", subcommands: [Block.self, Unblock.self])

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Block an owner: every agent of the owner fails on its next call.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The owner id.") var ownerID: String

        func run() async throws {
            do {
                try await store.admin().setOwnerBlocked(id: ownerID, blocked: true)
                printLine(store.json ? JSONValue.object(["blocked": true, "id": .string(ownerID)]).jsonText : "blocked \(ownerID)")
            } catch { throw fail(error) }
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unblock an owner.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The owner id.") var ownerID: String

        func run() async throws {
            do {
                try await store.admin().setOwnerBlocked(id: ownerID, blocked: false)
                printLine(store.json ? JSONValue.object(["blocked": false, "id": .string(ownerID)]).jsonText : "unblocked \(ownerID)")
            } catch { throw fail(error) }
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print audit events, oldest first (with --actions, owner and admin actions, newest first).")
    @OptionGroup var store: StoreOptions
    @Option(help: "Only this agent's events.") var agent: String?
    @Flag(help: "Print owner and admin actions (console, owner API, this CLI) instead of tool calls.") var actions = false

    func run() async throws {
        if actions {
            do {
                let admin = try await store.admin()
                let records = try await admin.ownerActions()
                if store.json {
                    printLine(JSONValue.object(["actions": .array(records.map(GatewayAdmin.json))]).jsonText)
                    return
                }
                printTable(
                    ["TIME", "WHO", "ACTION", "SUBJECT", "DETAIL"],
                    records.map {
                        [
                            Timestamp.rfc3339(milliseconds: $0.at, fractional: false), $0.actorUserID ?? "admin CLI", $0.action, $0.subjectID ?? "-",
                            $0.detail,
                        ]
                    }, empty: "no owner or admin actions yet")
            } catch { throw fail(error) }
            return
        }
        do {
            let events = try await store.admin().auditEvents(agentID: agent)
            if store.json {
                printLine(JSONValue.object(["events": .array(events.map(GatewayAdmin.json))]).jsonText)
                return
            }
            printTable(
                ["TIME", "EVENT", "AGENT", "TOOL", "PROJECT", "OUTCOME", "LATENCY"],
                events.map { event in
                    [
                        Timestamp.rfc3339(milliseconds: event.at, fractional: true), event.id, event.agentID ?? "-", event.tool, event.project ?? "-",
                        (event.errorCode.map { "\(event.outcome) \($0)" } ?? event.outcome) + (event.replayed ? " replayed" : ""),
                        "\(event.latencyMicroseconds)µs",
                    ]
                }, empty: "no audit events\(agent.map { " for agent \($0)" } ?? "") yet")
        } catch { throw fail(error) }
    }
}

/// The JSON forms of the listings.
enum AdminJSON {
    static func time(_ milliseconds: Int64?) -> JSONValue {
        milliseconds.map { .string(Timestamp.rfc3339(milliseconds: $0, fractional: true)) } ?? .null
    }

    static func agent(_ summary: AgentSummary) -> JSONValue {
        [
            "id": .string(summary.agent.id), "name": .string(summary.agent.name), "owner": .string(summary.agent.ownerID),
            "state": .string(summary.state), "createdAt": time(summary.agent.createdAt), "revokedAt": time(summary.agent.revokedAt),
            "grants": .array(
                summary.grants.map { ["project": .string($0.projectKey), "scopes": .array($0.scopes.map { .string($0) })] }),
            "activeDevices": .int(summary.activeDevices), "openSessions": .int(summary.openSessions), "lastCallAt": time(summary.lastCallAt),
        ]
    }

    static func device(_ device: DeviceRecord) -> JSONValue {
        [
            "id": .string(device.id), "agent": .string(device.agentID), "name": .string(device.name), "createdAt": time(device.createdAt),
            "revokedAt": time(device.revokedAt),
        ]
    }

    static func session(_ session: SessionRecord) -> JSONValue {
        [
            "id": .string(session.id), "device": .string(session.deviceID), "createdAt": time(session.createdAt),
            "expiresAt": time(session.expiresAt), "endedAt": time(session.endedAt),
        ]
    }
}

/// Prints rows under a header, in columns as wide as their widest cell; `empty` when there are none.
func printTable(_ header: [String], _ rows: [[String]], empty: String) {
    guard !rows.isEmpty else {
        FileHandleOutput.standardError(empty + "\n")
        return
    }
    var widths = header.map(\.count)
    for row in rows { for (column, cell) in row.enumerated() where column < widths.count { widths[column] = max(widths[column], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { column, cell in
            column == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
        }.joined(separator: "  ")
    }
    printLine(([header] + rows).map(line).joined(separator: "\n"))
}
