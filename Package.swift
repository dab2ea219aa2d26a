// swift-tools-version: 6.1
import PackageDescription

/// Our own targets build with warnings as errors under Swift 6 strict concurrency.
let strictSettings: [SwiftSetting] = [
    .unsafeFlags(["-warnings-as-errors"]),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "agent-sidecar",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "agent-sidecar", targets: ["agent-sidecar"]),
        .executable(name: "agent-gateway", targets: ["agent-gateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
    ],
    targets: [
        // System libraries from apt (see scripts/install-deps).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        // Non-variadic wrappers for curl_easy_setopt / curl_easy_getinfo, which Swift cannot call.
        .target(name: "CurlShim", dependencies: ["CCurl"]),

        // Wire formats shared by the sidecar and the gateway: JSON, JSON-RPC, ULID, the session
        // challenge, the W3C trace context in `_meta`, and the JSON log line both write on stderr.
        .target(
            name: "AgentWire",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ],
            swiftSettings: strictSettings
        ),
        // The one libsodium wrapper of both sides: random bytes, guarded secrets, constant-time
        // base64 and hex, Ed25519, XChaCha20-Poly1305, BLAKE2b and SHA-256. Nothing of ours.
        .target(name: "SodiumKit", dependencies: ["CSodium"], swiftSettings: strictSettings),
        // POSIX helpers written once: whole reads and writes, the atomic file writer, paths, the
        // detached thread, the ThreadSanitizer lock. Nothing of ours, no Foundation.
        .target(name: "SystemSupport", swiftSettings: strictSettings),

        // The HTTP client of both products, over libcurl (secret headers from guarded memory).
        .target(name: "CurlHTTP", dependencies: ["CurlShim", "SodiumKit", "SystemSupport"], swiftSettings: strictSettings),

        // The sidecar: MCP stdio server, libcurl upstream bridge, credentials and setup.
        .target(
            name: "SidecarCore",
            dependencies: [
                "AgentWire", "CurlHTTP", "SodiumKit", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "agent-sidecar",
            dependencies: ["AgentWire", "SidecarCore", "SystemSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSettings
        ),

        // The reference gateway: HTTP (Hummingbird), SQLite (GRDB), embedded tracker, Prometheus metrics.
        .target(
            name: "GatewayCore",
            dependencies: [
                "AgentWire", "CurlHTTP", "SodiumKit", "SystemSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "agent-gateway",
            dependencies: ["AgentWire", "GatewayCore", "SystemSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSettings
        ),

        // A scriptable Streamable HTTP MCP server for the sidecar's end-to-end tests and benchmarks.
        .executableTarget(
            name: "mcp-fixture-server",
            dependencies: [
                "AgentWire", "SystemSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),

        // The stdin fuzz harness: libFuzzer's entry point when built by Fuzz/fuzz with -sanitize=fuzzer
        // (-D LIBFUZZER), otherwise a corpus replayer and seeded generator. Not a product.
        .executableTarget(
            name: "sidecar-fuzz",
            dependencies: ["AgentWire", "SidecarCore", "SystemSupport", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),

        // What the test targets and sidecar-fuzz share: child processes (posix_spawn), the
        // in-memory upstream, an in-process stdio server over it, an output file in memory.
        // A library, not a product.
        .target(
            name: "TestSupport",
            dependencies: ["AgentWire", "SidecarCore", "SystemSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),

        .testTarget(
            name: "AgentWireTests",
            dependencies: [
                "AgentWire", .product(name: "Logging", package: "swift-log"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ],
            swiftSettings: strictSettings),
        .testTarget(name: "SodiumKitTests", dependencies: ["SodiumKit"], swiftSettings: strictSettings),
        .testTarget(name: "SystemSupportTests", dependencies: ["SystemSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "SidecarCoreTests", dependencies: ["CurlHTTP", "SidecarCore", "SodiumKit", "SystemSupport", "TestSupport"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "SidecarEndToEndTests",
            dependencies: [
                "AgentWire", "SidecarCore", "SystemSupport", "TestSupport", "agent-sidecar", "agent-gateway", "mcp-fixture-server", "sidecar-fuzz",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "GatewayCoreTests",
            dependencies: [
                "GatewayCore", "AgentWire", "SodiumKit", "SystemSupport", "TestSupport", "agent-gateway",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
