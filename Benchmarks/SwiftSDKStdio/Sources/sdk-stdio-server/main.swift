import MCP

// Answers ping (built in), tools/list, and tools/call "big" {bytes} with one text of that size.
let server = Server(name: "sdk-stdio-server", version: "1.0.0", capabilities: .init(tools: .init(listChanged: false)))
await server.withMethodHandler(ListTools.self) { _ in
    .init(tools: [Tool(name: "big", description: "returns N bytes", inputSchema: .object(["type": .string("object")]))])
}
await server.withMethodHandler(CallTool.self) { params in
    let count = params.arguments?["bytes"]?.intValue ?? 0
    return .init(content: [.text(String(repeating: "x", count: count))], isError: false)
}
try await server.start(transport: StdioTransport())
await server.waitUntilCompleted()
