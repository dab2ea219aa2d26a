import AgentWire
import Foundation
import TestSupport
import Testing

/// The process-level complement of `Fuzz/fuzz`: thousands of hostile lines from the seeded
/// generator (`sidecar-fuzz lines`) go to one real `agent-sidecar serve` over a pipe, in front of
/// the real fixture upstream. Checked: every request answered exactly once (the fuzz oracle,
/// `sidecar-fuzz check`), every line on stdout valid against the revision's schema, the process
/// still answering afterwards, and a clean exit at end of input.
@Suite("Hostile stdin against the real binary", .secretScan)
struct HostileInputTests {
    static let maximumLineBytes = 16_384

    @Test(
        "thousands of hostile lines: each request answered once, every stdout line schema-valid, still serving",
        arguments: [("2025-03-26", 10_000, UInt64(20_250_326)), ("2025-11-25", 4_000, UInt64(20_251_125))])
    func hostileLines(revision: String, count: Int, seed: UInt64) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sidecar-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(
            upstream: fixture.url, revision: revision, extra: ["--max-message-bytes", String(Self.maximumLineBytes)])
        let hostile = try await Self.generate(seed: seed, count: count, giant: Self.maximumLineBytes + 600, into: directory)

        // Writing runs on its own thread: the sidecar's answers are read meanwhile, so neither side blocks.
        let started = ContinuousClock.now
        try await Self.writeInBackground(hostile, to: sidecar)
        // Still serving after all that: a fresh id no hostile line uses.
        sidecar.write(raw: "")  // ends a last line that had no newline
        let alive = try await sidecar.call(987_654_321, "ping", timeout: .seconds(60))
        #expect(alive["result"] == [:], "the sidecar stopped answering: \(alive)")
        let elapsed = ContinuousClock.now - started
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(15)) == 0, "stderr: \(sidecar.child.stderr.suffix(2000))")

        let output = sidecar.child.allStdoutLines
        #expect(!output.contains { $0.contains("\u{FFFD}") }, "stdout carried bytes that are not UTF-8")
        let input = Self.initializePrefix(revision: revision) + hostile + Array("\n".utf8) + Array(sidecar.sent.last!.utf8) + [0x0A]
        try await Self.checkExactlyOnce(input: input, output: output, in: directory)
        try await sidecar.validateAgainstSchema(sentFilter: Self.unambiguousIDs)
        print("hostile stdin (\(revision)): \(count) lines, \(hostile.count) bytes, answered in \(elapsed); \(output.count) lines out")
    }

    // Regressions: what sidecar-fuzz found, one test each.

    @Test("a malformed response sent to the server is never answered (its id is the client's own)")
    func malformedResponseIgnored() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-11-25")
        sidecar.write(raw: #"{"id":1,"result":{}}"#)
        sidecar.write(raw: #"{"jsonrpc":"1.0","id":1,"error":{"code":1,"message":"no"}}"#)
        let next = try await sidecar.call(2, "ping")
        #expect(next["id"] == 2)
        #expect(sidecar.child.allStdoutLines.count == 2, "\(sidecar.child.allStdoutLines)")
        try await sidecar.validateAgainstSchema()
    }

    @Test("a fractional id is refused with an error that names no request")
    func fractionalID() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-11-25")
        sidecar.write(raw: #"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#)
        let refused = try await sidecar.child.nextMessage()
        #expect(refused["error"]?["code"]?.intValue == -32600)
        #expect(refused["id"] == nil)
        sidecar.write(raw: #"{"jsonrpc":"2.0","id":3.0,"method":"ping"}"#)
        #expect(try await sidecar.child.nextMessage()["result"] == [:])
        try await sidecar.validateAgainstSchema()
    }

    @Test("a 2026-07-28 request inside a 2025-03-26 batch is refused inside the batch's array")
    func modernRequestInBatch() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try await SidecarUnderTest.legacy(upstream: fixture.url, revision: "2025-03-26")
        let listen: JSONValue = [
            "jsonrpc": "2.0", "id": 2, "method": "subscriptions/listen",
            "params": ["notifications": ["toolsListChanged": true], "_meta": SidecarUnderTest.modernMeta],
        ]
        sidecar.write(raw: "[" + #"{"jsonrpc":"2.0","id":1,"method":"ping"}"# + "," + listen.jsonText + "]")
        let batch = try #require(try await sidecar.child.nextMessage().arrayValue)
        #expect(batch.count == 2)
        #expect(batch.first { $0["id"] == 1 }?["result"] == [:])
        #expect(batch.first { $0["id"] == 2 }?["error"]?["code"]?.intValue == -32600)
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
        #expect(sidecar.child.allStdoutLines.count == 2, "nothing after the batch: \(sidecar.child.allStdoutLines)")
        try await sidecar.validateAgainstSchema()
    }

    @Test("an empty header value reaches the upstream (an empty tool name is the upstream's to judge)")
    func emptyHeaderValueSent() async throws {
        let fixture = try await FixtureServer.start()
        let sidecar = try SidecarUnderTest.modern(upstream: fixture.url)
        let response = try await sidecar.call(1, "tools/call", ["name": "", "arguments": [:], "_meta": SidecarUnderTest.modernMeta])
        let text = response.jsonText
        #expect(!text.contains("Mcp-Name header is missing"), "\(text)")
        #expect(response["error"]?["code"]?.intValue == -32602, "\(text)")
    }

    /// Hostile lines from the seeded generator, as raw bytes (some are not UTF-8).
    static func generate(seed: UInt64, count: Int, giant: Int, into directory: URL) async throws -> [UInt8] {
        let file = directory.appendingPathComponent("hostile.bin")
        let process = try SpawnedProcess(
            executable: BuiltProducts.path("sidecar-fuzz"),
            arguments: ["lines", "--seed", String(seed), "--count", String(count), "--giant", String(giant)], environment: [:], stdin: .null,
            stdout: .file(file.path), stderr: .null)
        // Hundreds of MB with the giant lines: 1 min 45 s on a loaded machine.
        #expect(try await process.waitForExit(timeout: .seconds(300)) == 0)
        return [UInt8](try Data(contentsOf: file))
    }

    static func writeInBackground(_ bytes: [UInt8], to sidecar: SidecarUnderTest) async throws {
        // Only lines that are UTF-8 can be JSON; the others get a parse error and name no request.
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            if let text = String(validating: line, as: UTF8.self) { sidecar.recordSent(text) }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                sidecar.child.writeRaw(bytes)
                continuation.resume()
            }
        }
    }

    /// The `initialize` line `SidecarUnderTest.legacy` sent, as the sidecar saw it (for the oracle).
    static func initializePrefix(revision: String) -> [UInt8] {
        let initialize: JSONValue = [
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": ["protocolVersion": .string(revision), "capabilities": [:], "clientInfo": ["name": "swift-tests", "version": "1"]],
        ]
        return initialize.serialized() + [0x0A] + Array(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.utf8) + [0x0A]
    }

    static func checkExactlyOnce(input: [UInt8], output: [String], in directory: URL) async throws {
        let inputFile = directory.appendingPathComponent("in.bin")
        let outputFile = directory.appendingPathComponent("out.jsonl")
        try Data(input).write(to: inputFile)
        try Data(output.map { $0 + "\n" }.joined().utf8).write(to: outputFile)
        let result = try await runToCompletion(
            BuiltProducts.path("sidecar-fuzz"),
            ["check", "--input", inputFile.path, "--output", outputFile.path, "--max-line", String(maximumLineBytes)])
        #expect(result.status == 0, "exactly-once check failed:\n\(result.output.prefix(6000))")
    }

    /// Sent messages whose id was used more than once, or that Python's JSON reads differently from
    /// the sidecar's (duplicate keys: Python keeps the last), cannot tell the schema check which
    /// result type a reply must have; their replies are checked against the generic response only.
    static func unambiguousIDs(_ lines: [String]) -> [String] {
        var uses: [String: Int] = [:]
        var parsed: [(line: String, members: [JSONValue], duplicateKeys: Bool)] = []
        for line in lines {
            guard let value = try? JSONValue(parsing: line) else { continue }
            let members = value.arrayValue ?? [value]
            var duplicateKeys = false
            for case .object(let object) in members {
                duplicateKeys = duplicateKeys || Set(object.keys).count != object.count
                for member in object.members where member.key == "id" { uses[member.value.jsonText, default: 0] += 1 }
            }
            parsed.append((line, members, duplicateKeys))
        }
        return parsed.compactMap { line, members, duplicateKeys in
            if duplicateKeys { return nil }
            return members.contains { member in member["id"].map { (uses[$0.jsonText] ?? 0) > 1 } ?? false } ? nil : line
        }
    }
}
