// TestSupport: what the test targets and `sidecar-fuzz` share. Not a product.
//
// Owns: real child processes for the tests (`SpawnedProcess`, `Command`: posix_spawn, nothing
// inherited but stdio, exits collected per pid), the in-memory upstream (`MemoryUpstream`), a
// real stdio server over it in the test's process (`InMemoryStdioServer`), an output file in
// memory.
//
// May depend on AgentWire, SidecarCore and swift-log. Nothing the shipped binaries link may
// depend on it.
