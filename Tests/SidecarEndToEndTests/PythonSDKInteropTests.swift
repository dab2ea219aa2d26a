import Foundation
import Testing

/// The official MCP Python SDK, an independent implementation, drives the real sidecar:
/// a 1.x ClientSession (initialize handshake) and a 2.x Client in its default auto mode
/// (server/discover probe). The virtualenvs come from `scripts/install-deps --python`.
@Suite("Interop with the official MCP Python SDK", .secretScan)
struct PythonSDKInteropTests {
    @Test("the MCP Python SDK drives the sidecar end to end", arguments: ["mcp1", "mcp2"])
    func pythonSDK(line: String) async throws {
        let root = BuiltProducts.repositoryRoot
        let python = root.appendingPathComponent(".venv/\(line)/bin/python").path
        try #require(
            FileManager.default.isExecutableFile(atPath: python), "missing \(python): run scripts/install-deps --python (scripts/test does it)")
        let (status, text) = try await runToCompletion(
            python, [root.appendingPathComponent("Tests/Tooling/interop-python-sdk.py").path, BuiltProducts.directory.path])
        #expect(status == 0, "\(text)")
        #expect(text.contains(" 0 failed"), "\(text)")
    }
}
