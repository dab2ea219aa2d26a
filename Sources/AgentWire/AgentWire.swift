// AgentWire: the vocabulary every program in this package shares, so that the sidecar, the
// gateway, the fixture server and the tests can never disagree on a format.
//
// Owns: JSON (`JSONValue`, the bounded parser, the serializer), JSON-RPC envelopes and error
// codes, MCP revisions and `_meta` keys, the gateway's error codes, the bytes a device signs,
// the pairing code format, ULIDs and base32, command-name suggestions.
//
// Must not depend on anything: no Foundation, no package, no other module of ours. Everything
// here is a pure function or a value type.
