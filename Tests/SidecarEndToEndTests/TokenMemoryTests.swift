import AgentWire
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Copies of the session token in the sidecar's readable memory (issue 11, INFO: 473 copies after
/// 300 calls, found in a `gcore` dump). Requests carry the token from guarded memory and libcurl's
/// copies are zeroed when freed, so the count stays small and does not grow with the calls.
@Suite("Session token copies in the sidecar's memory", .secretScan)
struct TokenMemoryTests {
    /// Counts `ags_` + 43 token characters in every readable mapping of `pid`, as a core dump
    /// would hold them (guarded pages, which are `PROT_NONE` between uses, are not readable).
    /// Returns the number of copies of the most frequent token, and where they were.
    static func tokenCopies(pid: Int32) throws -> (copies: Int, regions: [String: Int]) {
        let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
        let memory = open("/proc/\(pid)/mem", O_RDONLY | O_CLOEXEC)
        guard memory >= 0 else { throw TestTimeout(description: "cannot open /proc/\(pid)/mem: errno \(errno)") }
        defer { close(memory) }
        let tokenCharacters = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8))
        var counts: [[UInt8]: Int] = [:]
        var regionsByToken: [[UInt8]: [String: Int]] = [:]
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 5, fields[1].hasPrefix("r") else { continue }
            let name = fields.count >= 6 ? String(fields[5]) : "[anonymous]"
            if name == "[vvar]" || name == "[vsyscall]" || name == "[vvar_vclock]" { continue }
            let bounds = fields[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
            guard bounds.count == 2, bounds[1] > bounds[0], bounds[1] - bounds[0] <= 1 << 30 else { continue }
            let kind = name.hasPrefix("/") ? "file" : name
            var offset = bounds[0]
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            var carry: [UInt8] = []
            while offset < bounds[1] {
                let size = Int(min(UInt64(chunk.count), bounds[1] - offset))
                let got = chunk.withUnsafeMutableBytes { pread(memory, $0.baseAddress, size, off_t(Int64(bitPattern: offset))) }
                if got <= 0 { break }
                let bytes = carry + chunk[0..<got]
                var index = 0
                while index + 47 <= bytes.count {
                    if bytes[index] == 0x61, bytes[index + 1] == 0x67, bytes[index + 2] == 0x73, bytes[index + 3] == 0x5F,
                        bytes[(index + 4)..<(index + 47)].allSatisfy({ tokenCharacters.contains($0) }),
                        index + 47 == bytes.count || !tokenCharacters.contains(bytes[index + 47])
                    {
                        let token = Array(bytes[index..<(index + 47)])
                        counts[token, default: 0] += 1
                        regionsByToken[token, default: [:]][kind, default: 0] += 1
                        index += 47
                        continue
                    }
                    index += 1
                }
                carry = Array(bytes.suffix(min(bytes.count, 47)))
                offset += UInt64(got)
            }
        }
        guard let most = counts.max(by: { $0.value < $1.value }) else { return (0, [:]) }
        return (most.value, regionsByToken[most.key] ?? [:])
    }

    @Test("after 300 calls the session token is in the sidecar's readable memory a few times at most")
    func tokenCopiesStayFew() async throws {
        let world = try PairingWorld()
        let gateway = try await TestGateway.start(in: world.root)
        let result = try await world.setup(gateway: gateway, code: world.issued(try await gateway.pairingCode()))
        try #require(result.status == 0, "\(result)")
        let sidecar = try world.serve()
        _ = try await sidecar.initialize()
        for id in 1...300 {
            let answer = try await sidecar.callTool(id, "list_projects")
            try #require(answer["result"]?["isError"] == false, "call \(id): \(answer)")
        }
        let (copies, regions) = try Self.tokenCopies(pid: sidecar.child.pid)
        print(
            "session token copies in the sidecar's readable memory after 300 calls: \(copies) (\(regions.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")))"
        )
        #expect(copies <= 4, "the token is in the sidecar's readable memory \(copies) times after 300 calls: \(regions)")
        sidecar.child.closeStdin()
        #expect(try await sidecar.child.waitForExit(timeout: .seconds(10)) == 0)
    }
}
