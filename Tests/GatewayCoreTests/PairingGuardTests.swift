import AgentWire
import Foundation
import GatewayCore
import SodiumKit
import Testing

/// The pairing-claim limiter (issue 11, item 6): atomic, per address, per code prefix and for the
/// whole gateway, and slowing guesses rather than locking out a valid code. Clients come from
/// distinct 127.x.y.z source addresses (Linux routes all of 127.0.0.0/8 to loopback).
@Suite("Pairing guard", .serialized)
struct PairingGuardTests {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    /// A well-formed code that was never issued (with `prefix` as its first four characters, if given).
    static func wrongCode(prefix: String? = nil) -> String {
        let random = String((0..<8).map { _ in alphabet.randomElement()! })
        let code = (prefix ?? String(random.prefix(4))) + String(random.suffix(4))
        return code.prefix(4) + "-" + code.suffix(4)
    }

    static func claimBody(_ code: String) -> String {
        let body: JSONValue = ["code": .string(code), "publicKey": .string(Base64.encode(try! Sodium.randomBytes(32))), "deviceName": "guess"]
        return body.jsonText
    }

    static func claim(_ code: String) -> [UInt8] {
        LoopbackConnections.request(method: "POST", path: "/api/v1/pairing/claim", json: claimBody(code))
    }

    /// How many turns after the free failures can have come within `seconds` of the first guess:
    /// the gaps double from 1 s (1, 2, 4, 8, 16, then 30 s each).
    static func turns(within seconds: Double) -> Int {
        var at = 0.0
        var gap = 1.0
        var count = 0
        while true {
            at += gap
            if at > seconds { return count }
            count += 1
            gap = min(30, gap * 2)
        }
    }

    /// Sends every claim at once, one connection each, and counts the answers by status. Also
    /// returns the bound on turns: the limiter's turns that fit before the last answer.
    static func flood(_ server: GatewayProcess, sources: [String], codes: [String]) async throws -> (counts: [Int: Int], turns: Int) {
        let started = Date()
        let connections = try LoopbackConnections(port: server.port, sources: sources, payloads: codes.map(claim))
        let answered = await connections.wait(seconds: 45) { $0.openCount == 0 }
        // No claim is evaluated after it was answered, so the turns up to the last answer bound
        // them, however late a loaded server read the claims (load 67 made the bound at "all sent"
        // too tight). The pauses double, so this stays a handful.
        let turns = Self.turns(within: Date().timeIntervalSince(started))
        #expect(answered, "\(connections.openCount) claims got no answer")
        var counts: [Int: Int] = [:]
        for index in sources.indices { counts[connections.status(index) ?? 0, default: 0] += 1 }
        for index in sources.indices where connections.status(index) == 429 {
            #expect(connections.body(index).contains("pairing_rate_limited"))
        }
        return (counts, turns)
    }

    @Test("300 concurrent guesses from one address: 5 are evaluated at once, a few more after doubling pauses, the rest get 429")
    func concurrentGuessesCannotRaceTheLimiter() async throws {
        // The connection cap per address is raised so that all 300 claims are in flight at once.
        let server = try await GatewayProcess.start(extraArguments: ["--max-connections-per-address", "400"])
        defer { server.stop() }
        let started = Date()
        let (counts, turns) = try await Self.flood(
            server, sources: Array(repeating: "127.0.30.1", count: 300), codes: (0..<300).map { _ in Self.wrongCode() })
        let evaluated = counts[401, default: 0]
        // 8 when every claim arrives within 4 s: 5, then turns at 1, 3 and 7 s.
        #expect(evaluated >= 5 && evaluated <= 5 + turns, "\(evaluated) of 300 concurrent guesses were evaluated (at most \(5 + turns)): \(counts)")
        #expect(counts[429, default: 0] == 300 - evaluated, "\(counts)")
        print(
            String(
                format: "300 concurrent guesses from one address: %d evaluated, %d refused with 429, in %.1f s", evaluated, counts[429, default: 0],
                Date().timeIntervalSince(started)))
    }

    @Test("a valid code sent after bad guesses from the same address is accepted, after a pause")
    func validCodeAfterBadGuesses() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        let (_, code) = try server.newAgent(scopes: [Scope.projectRead])
        for _ in 0..<6 {
            let answer = try await loopbackRequest(
                port: server.port, source: "127.0.31.1", method: "POST", path: "/api/v1/pairing/claim", json: Self.claimBody(Self.wrongCode()))
            #expect(answer.status == 401, "a bad guess: \(answer.status.map(String.init) ?? "no answer") \(answer.body)")
        }
        let started = Date()
        let valid = try await loopbackRequest(
            port: server.port, source: "127.0.31.1", method: "POST", path: "/api/v1/pairing/claim", json: Self.claimBody(code))
        #expect(valid.status == 201, "the valid code after 6 bad guesses: \(valid.status.map(String.init) ?? "no answer") \(valid.body)")
        print(
            String(
                format: "valid code after 6 bad guesses from its address: HTTP %d after %.1f s", valid.status ?? 0, Date().timeIntervalSince(started))
        )
    }

    @Test("guesses rotated over 200 source addresses meet the gateway-wide limit")
    func rotatingAddressesMeetTheGlobalLimit() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        let (counts, turns) = try await Self.flood(
            server, sources: LoopbackConnections.sources(200, firstBlock: 32), codes: (0..<200).map { _ in Self.wrongCode() })
        let evaluated = counts[401, default: 0]
        #expect(evaluated <= 30 + turns, "\(evaluated) of 200 guesses from 200 addresses were evaluated (at most \(30 + turns)): \(counts)")
        #expect(counts[429, default: 0] == 200 - evaluated, "\(counts)")
        print("200 guesses from 200 addresses: \(evaluated) evaluated, \(counts[429, default: 0]) refused with 429")
    }

    @Test("guesses at one code prefix from 20 addresses meet the per-prefix limit")
    func onePrefixFromManyAddresses() async throws {
        let server = try await GatewayProcess.start()
        defer { server.stop() }
        let (counts, turns) = try await Self.flood(
            server, sources: LoopbackConnections.sources(20, firstBlock: 34), codes: (0..<20).map { _ in Self.wrongCode(prefix: "7KQ2") })
        let evaluated = counts[401, default: 0]
        #expect(evaluated >= 5 && evaluated <= 5 + turns, "\(evaluated) of 20 guesses at one prefix were evaluated (at most \(5 + turns)): \(counts)")
        #expect(counts[429, default: 0] == 20 - evaluated, "\(counts)")
    }
}
