import AgentWire
import ArgumentParser
import GatewayCore

/// `agent-gateway user …`: people, their roles and entitlements, and sign-in links. The same
/// operations the owner API's admin routes call (GatewayAdmin), recorded as the admin CLI's actions.
struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and add people, switch their agent entitlement, print sign-in links.",
        subcommands: [List.self, Create.self, Entitlement.self, LoginLink.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List people with their role, entitlement and state.")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            do {
                let users = try await store.admin().users()
                if store.json {
                    printLine(
                        JSONValue.object([
                            "users": .array(
                                users.map {
                                    [
                                        "id": .string($0.id), "name": .string($0.name), "role": .string($0.role),
                                        "agentsEntitled": .bool($0.agentsEntitled), "blocked": .bool($0.blockedAt != nil),
                                    ]
                                })
                        ]).jsonText)
                    return
                }
                printTable(
                    ["USER", "NAME", "ROLE", "AGENTS", "STATE"],
                    users.map { [$0.id, $0.name, $0.role, $0.agentsEntitled ? "on" : "off", $0.blockedAt == nil ? "active" : "blocked"] },
                    empty: "no people yet; run `agent-gateway seed-demo` or `agent-gateway user create`")
            } catch { throw fail(error) }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a person (they sign in by link; no password is stored).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The new user id, e.g. erin.") var userID: String
        @Option(help: "Their display name.") var name: String
        @Option(help: "owner or admin.") var role = "owner"

        func run() async throws {
            guard let role = UserRole(rawValue: role) else { throw ValidationError("--role must be owner or admin") }
            do {
                try await store.admin().createUser(id: userID, name: name, role: role)
                printLine(store.json ? JSONValue.object(["id": .string(userID), "role": .string(role.rawValue)]).jsonText : "created \(userID)")
            } catch { throw fail(error) }
        }
    }

    struct Entitlement: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch a person's agent entitlement on or off; off stops their agents at the next call.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user id.") var userID: String
        @Argument(help: "on or off.") var state: String

        func run() async throws {
            guard state == "on" || state == "off" else { throw ValidationError("give on or off") }
            do {
                try await store.admin().setEntitlement(userID: userID, entitled: state == "on")
                printLine(
                    store.json
                        ? JSONValue.object(["id": .string(userID), "agentsEntitled": .bool(state == "on")]).jsonText : "agents \(state) for \(userID)"
                )
            } catch { throw fail(error) }
        }
    }

    struct LoginLink: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "login-link",
            abstract: "Print a single-use sign-in link for the console. It is a secret: give it to that person only.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user id.") var userID: String
        @Option(help: "Seconds the link stays valid (30 to 86400).") var ttl = 900
        @Option(name: .customLong("url"), help: "The gateway's address as the browser reaches it.") var url = "http://127.0.0.1:7420"

        func run() async throws {
            guard let origin = OriginFormat.normalize(url) else { throw ValidationError("--url must look like https://gateway.example.com[:port]") }
            do {
                let token = try await store.admin().createLoginLink(userID: userID, ttlSeconds: ttl)
                let link = "\(origin)/console/sign-in?token=\(token)"
                printLine(store.json ? JSONValue.object(["link": .string(link), "expiresInSeconds": .int(ttl)]).jsonText : link)
            } catch { throw fail(error) }
        }
    }
}
