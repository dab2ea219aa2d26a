import AgentWire
import Foundation
import Testing

/// What a careless first hour does to a pairing, against the real gateway: re-running setup with a
/// bad code, a lost key, a gateway that is down, a typo. Nothing that works may be lost, and every
/// message must say what actually helps.
@Suite("The first hour: bad codes, lost keys, a down gateway, typos", .secretScan)
struct FirstHourTests {
    @Test("re-running setup with a used, a wrong or a rate-limited code keeps the working pairing", arguments: ["used", "wrong", "limited"])
    func badCodeKeepsTheWorkingPairing(kind: String) async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        let deviceID = try world.deviceID()
        let keyBefore = world.read("sidecar-home/keys/default.key")
        let profileBefore = world.read("sidecar-home/profiles/default.json")

        var code: String
        switch kind {
        case "used":
            code = world.issued(try await gateway.pairingCode())
            let other = try PairingWorld()
            let claimed = try await other.setup(gateway: gateway, code: code)
            try #require(claimed.status == 0, "\(claimed)")
        case "wrong":
            code = "ZZZZ-ZZZZ"
        default:
            // Five failed claims from this address trip the gateway's pairing limiter first.
            for _ in 0..<5 { _ = try await world.setup(gateway: gateway, code: "YYYY-YYYY") }
            code = "XXXX-XXXX"
        }
        let again = try await world.setup(gateway: gateway, code: code)
        #expect(again.status != 0, "\(again)")
        #expect(again.stderr.contains("The previous pairing of profile default is unchanged and still works"), "\(again)")
        #expect(again.stderr.split(separator: "\n").count == 1, "one line: \(again.stderr)")

        // The old device is alive at the gateway, and its key and profile are untouched.
        #expect(try await gateway.sql("SELECT revokedAt IS NULL FROM device WHERE id = '\(deviceID)'") == "1")
        #expect(world.read("sidecar-home/keys/default.key") == keyBefore)
        #expect(world.read("sidecar-home/profiles/default.json") == profileBefore)
        let status = try await world.sidecar(["status"])
        #expect(status.status == 0, "the old pairing must still work: \(status)")
    }

    @Test("re-pairing with a good code retires the old device only after the new one signed in")
    func goodCodeRetiresTheOldDevice() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        let oldDevice = try world.deviceID()
        let again = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        #expect(again.status == 0, "\(again)")
        let newDevice = try world.deviceID()
        #expect(newDevice != oldDevice)
        #expect(again.stdout.contains("the previous device \(oldDevice), revoked at the gateway"), "\(again)")
        #expect(try await gateway.sql("SELECT revokedAt IS NOT NULL FROM device WHERE id = '\(oldDevice)'") == "1")
        #expect(try await gateway.sql("SELECT revokedAt IS NULL FROM device WHERE id = '\(newDevice)'") == "1")
        #expect(try await world.sidecar(["status"]).status == 0)
    }

    @Test("after the key file is deleted, status and setup both say a new pairing code is needed, and setup with one mends it")
    func lostKeyAsksForANewCode() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        try FileManager.default.removeItem(atPath: world.path("sidecar-home/keys/default.key"))

        let status = try await world.sidecar(["status"])
        #expect(status.status == 1)
        #expect(status.stdout.contains("session  not checked: the device key cannot be used (key_missing)"), "\(status)")
        #expect(status.stderr.contains("ask the agent's owner for a new pairing code"), "\(status)")
        #expect(status.stderr.split(separator: "\n").count == 1 && !status.stdout.contains("new pairing code"), "the reason is said once")

        // A refresh cannot mend a lost key: setup says so and how to pass the new code, not "run setup again".
        let refresh = try await world.setup(gateway: gateway, code: nil)
        #expect(refresh.status == 1, "\(refresh)")
        #expect(refresh.stderr.contains("ask the agent's owner for a new pairing code"), "\(refresh)")
        #expect(refresh.stderr.contains("pass --code CODE or set AGENT_SIDECAR_PAIRING_CODE"), "\(refresh)")
        #expect(!refresh.stderr.contains("run `agent-sidecar setup` again"))

        let mended = try await world.setup(
            gateway: gateway, code: nil, extraEnvironment: ["AGENT_SIDECAR_PAIRING_CODE": world.issued(try await gateway.pairingCode())])
        #expect(mended.status == 0, "\(mended)")
        #expect(try await world.sidecar(["status"]).status == 0)
    }

    @Test("a revoked device's refresh asks for a new code instead of going in a circle")
    func revokedRefreshAsksForANewCode() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        _ = try await gateway.admin(["device", "revoke", try world.deviceID()])
        let refresh = try await world.setup(gateway: gateway, code: nil)
        #expect(refresh.status == 1, "\(refresh)")
        #expect(refresh.stderr.contains("this device was revoked at the gateway; ask the agent's owner for a new pairing code"), "\(refresh)")
        #expect(refresh.stderr.contains("pass --code CODE or set AGENT_SIDECAR_PAIRING_CODE"), "\(refresh)")
    }

    @Test("status with the gateway down says it could not be reached, not refused, and gives the reason once")
    func statusWithGatewayDown() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        gateway.child.terminate()
        _ = try await gateway.child.waitForExit(timeout: .seconds(20))
        try world.pointProfileAtNothing()
        let status = try await world.sidecar(["status"])
        #expect(status.status == 1, "\(status)")
        #expect(status.stdout.contains("session  not checked: the gateway could not be reached (unreachable)"), "\(status)")
        #expect(!status.stdout.contains("refused"), "\(status)")
        #expect(status.stderr.split(separator: "\n").count == 1, "\(status)")
        let json = try JSONValue(parsing: Array(try await world.sidecar(["status", "--json"]).stdout.utf8))
        #expect(json["error"]?["kind"] == "unreachable")
    }

    @Test("logout with the gateway down keeps the key for a retry; --force deletes it and names the device to revoke by hand")
    func logoutKeepsTheKeyUntilRevoked() async throws {
        let (world, gateway, _) = try await PairedServeTests.paired()
        let deviceID = try world.deviceID()
        gateway.child.terminate()
        _ = try await gateway.child.waitForExit(timeout: .seconds(20))
        try world.pointProfileAtNothing()

        let kept = try await world.sidecar(["logout"])
        #expect(kept.status == 1, "\(kept)")
        #expect(kept.stderr.contains("nothing was deleted: run `agent-sidecar logout` again when the gateway answers"), "\(kept)")
        #expect(world.read("sidecar-home/keys/default.key") != nil)
        #expect(world.read("sidecar-home/profiles/default.json") != nil)

        let forced = try await world.sidecar(["logout", "--force"])
        #expect(forced.status == 1, "\(forced)")
        #expect(forced.stderr.contains("agent-gateway device revoke \(deviceID)"), "\(forced)")
        #expect(world.read("sidecar-home/keys/default.key") == nil)
        #expect(world.read("sidecar-home/profiles/default.json") == nil)
    }

    @Test("a mistyped subcommand gets a suggestion", arguments: [("statsu", "status"), ("setpu", "setup"), ("logotu", "logout"), ("serv", "serve")])
    func typoSuggestion(typed: String, meant: String) async throws {
        let world = try PairingWorld()
        let result = try await world.sidecar([typed])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("unknown command '\(typed)'; did you mean '\(meant)'?"), "\(result)")
        #expect(result.stdout.isEmpty)
    }
}
