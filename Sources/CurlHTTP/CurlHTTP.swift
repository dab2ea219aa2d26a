// CurlHTTP: the one HTTP client of both products, over libcurl. The sidecar reaches the gateway and
// remote MCP servers with it; the gateway reaches Plane with it.
//
// Owns: `CurlHTTPClient` (one multi handle on its own thread, a connection cache, bounded bodies,
// timeouts, streamed event streams), the request and response types, and secret header fields
// written to libcurl straight from guarded memory.
//
// May depend on CCurl/CurlShim (libcurl), SodiumKit and SystemSupport. Nothing of either product's
// vocabulary: no JSON-RPC, no MCP, no gateway types.
