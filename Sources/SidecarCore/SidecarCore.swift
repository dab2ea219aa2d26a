// SidecarCore: everything `agent-sidecar` does, behind a thin command line.
//
// Owns: the MCP stdio server (Serve/, Transport/), the Streamable HTTP client over CurlHTTP
// (Upstream/), the gateway's REST client (Gateway/), the device key and profiles
// (Credentials/), pairing and the setup packet (Setup/), status and logout (PairedDevice/), and
// `doctor` (Doctor/).
//
// May depend on AgentWire, CurlHTTP (libcurl), SodiumKit, SystemSupport and swift-log. Must not
// depend on a server stack (no NIO, no Hummingbird) or on GatewayCore: the sidecar ships without
// them. Its public API takes CurlHTTP's request and client types, so it re-exports that module.

@_exported import CurlHTTP
