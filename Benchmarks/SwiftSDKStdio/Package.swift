// swift-tools-version: 6.1
// A minimal MCP server on the MCP swift-sdk's StdioTransport, built only to measure that transport
// beside agent-sidecar's own (Benchmarks/compare-stdio-transports.py). Not part of the product or CI.
import PackageDescription

let package = Package(
    name: "SwiftSDKStdio",
    platforms: [.macOS(.v14)],
    dependencies: [.package(url: "https://github.com/modelcontextprotocol/swift-sdk", exact: "0.12.1")],
    targets: [
        .executableTarget(name: "sdk-stdio-server", dependencies: [.product(name: "MCP", package: "swift-sdk")])
    ]
)
