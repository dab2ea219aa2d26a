// GatewayCore: the Agent Gateway, everything `agent-gateway` does behind its command line.
//
// Owns: the HTTP surface and `/mcp` (Server/), the tools and the embedded tracker (Tracker/),
// the store interface and its SQLite implementation (Storage/), the admin operations the CLI
// calls (Admin/), people and their access: sign-in links, console sessions, the owner API and its
// authorization (Owners/), the server-rendered web console and its templates (Console/), and
// small shared helpers (Support/).
//
// May depend on AgentWire, SodiumKit, SystemSupport, Hummingbird, GRDB, swift-log and swift-mustache. Must not depend on
// SidecarCore: the two sides meet only on the wire, through AgentWire's formats.
