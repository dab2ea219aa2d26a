// mcp-fixture-server — a scriptable MCP Streamable HTTP server: the upstream of the sidecar's
// end-to-end tests and benchmarks. A real HTTP/1.1 server (Hummingbird 2 on NIO, keep-alive).
// May depend on AgentWire, Hummingbird and ArgumentParser; never on SidecarCore, whose behaviour
// it is the independent other side of (so it keeps its own revision list).
//
// CLI
//   mcp-fixture-server [--host 127.0.0.1] [--port 0] [--response-mode json|sse] [--era legacy|modern|dual]
//                      [--page-size N] [--require-bearer TOKEN] [--keepalive-ms 15000] [--verbose]
//   Once listening it prints exactly one line to stdout, {"url":"http://127.0.0.1:PORT/mcp"}, and
//   nothing else ever; logs go to stderr (quiet unless --verbose). SIGTERM/SIGINT exit at once with
//   status 0. Defaults: json, dual, no pagination, no auth.
//
// MCP endpoint: /mcp (every check below happens in this order)
//   * Origin header present and not http(s)://localhost|127.0.0.1|[::1] → 403, JSON-RPC error -32600.
//   * --require-bearer: no `Authorization: Bearer TOKEN` → 401, WWW-Authenticate: Bearer error="invalid_token",
//     body {"error":{"code":"token_invalid","message":"…","retryable":false}} (also for GET and DELETE).
//   * Other HTTP methods → 405 with Allow.
//   POST: body > 64 MiB → 413. Malformed JSON → 400, -32700, id null. Not an object (batches too) or
//   jsonrpc != "2.0" or not a request/notification/response → 400, -32600. A request (has id) whose
//   Accept lacks application/json or text/event-stream (*/* and type/* count) → 406, -32600.
//   A message is MODERN when params._meta["io.modelcontextprotocol/protocolVersion"] is present and the
//   era is modern or dual; otherwise it is LEGACY (with --era modern, legacy messages are refused).
//
//   Legacy (2024-11-05, 2025-03-26, 2025-06-18, 2025-11-25):
//   * initialize → echoes params.protocolVersion if supported, else 2025-11-25; response header
//     Mcp-Session-Id (32 hex chars, new each time); result {protocolVersion, capabilities
//     {"tools":{"listChanged":true},"logging":{}}, serverInfo {"name":"mcp-fixture-server","version":"1.0.0"},
//     instructions "fixture instructions"}. No params.protocolVersion → -32602.
//     With --era modern: 400, -32022 naming the supported versions, data {supported, requested}.
//   * Anything else needs Mcp-Session-Id: missing → 400, -32600 "…initialize first"; unknown (or expired,
//     or deleted) → 404, -32001 "Session not found…".
//   * MCP-Protocol-Version header, when present, must be a legacy version above → else 400, -32600.
//   * Notifications and client responses → 202, empty body. notifications/cancelled {requestId} cancels
//     that call if it is running and is recorded.
//   * ping → {}; logging/setLevel {level} → {} and records the level (bad level → -32602);
//     server/discover (and any unknown method) → -32601 with HTTP 200.
//   * GET /mcp (Accept: text/event-stream, else 406) opens the standalone SSE stream: it carries
//     notifications/tools/list_changed and ": keepalive" comments every --keepalive-ms; it ends when the
//     client leaves or the session is deleted or expired. Headers include Connection: close.
//   * DELETE /mcp → 204 and records the session in deletedSessions (missing id → 400, unknown → 404).
//
//   * With --era modern, a message without modern _meta → 400, -32022 (requested = its MCP-Protocol-Version
//     header, or "2025-03-26"); for initialize the message names the supported versions.
//
//   Modern (2026-07-28, stateless; Mcp-Session-Id is ignored, GET/DELETE → 405 with --era modern):
//   * MCP-Protocol-Version header missing or ≠ the _meta version → 400, -32020 (HeaderMismatch).
//   * _meta version ≠ 2026-07-28 → 400, -32022, data {"supported":["2026-07-28"],"requested":…}.
//   * Client responses → 400, -32600; notifications → 202 (notifications/cancelled also cancels).
//   * Requests need Mcp-Method = method, and for tools/call Mcp-Name = params.name (=?base64?…?= decoded),
//     else 400, -32020. Unknown methods (including ping, logging/setLevel, initialize) → 404, -32601.
//   * Every result has "resultType":"complete" (first member) and
//     _meta["io.modelcontextprotocol/serverInfo"] = {"name":"mcp-fixture-server","version":"1.0.0"}.
//   * server/discover → {resultType, supportedVersions ["2026-07-28"], capabilities {"tools":{"listChanged":true}},
//     instructions "fixture instructions", ttlMs 3600000, cacheScope "public", _meta{serverInfo}}.
//   * tools/list adds ttlMs 0 and cacheScope "private".
//   * subscriptions/listen {notifications:{toolsListChanged:true}} → SSE stream (always, Connection: close):
//     notifications/subscriptions/acknowledged {_meta {subscriptionId: <request id>}, notifications {honoured
//     subset: only toolsListChanged}}, then notifications/tools/list_changed with the same _meta, and
//     ": keepalive" comments, until the client closes it.
//
//   Both eras:
//   * tools/list: sorted by name (add, big, change_tools, echo, [extra_tool], fail, fail_write, garbage,
//     headers, progress, slow, write_note). With --page-size N, pages of N with an opaque nextCursor
//     (base64 of "fixture-tools:<offset>"); an unknown cursor → -32602 (HTTP 200).
//   * tools/call: no/invalid params.name or non-object arguments → -32602; unknown tool (extra_tool while
//     unlisted too) → -32602 "Unknown tool: …". Arguments that break the tool's inputSchema (wrong type,
//     missing, extra property, enum, min/max) → a RESULT with isError true and a text explaining it (MCP
//     2025-11-25 puts input validation errors in tool results).
//   * --response-mode json: one application/json body. sse: text/event-stream with one
//     "event: message\ndata: <json>\n\n" frame per message (progress notifications first), then the
//     stream ends. Errors with HTTP status ≠ 200 are always plain JSON.
//
// Tools (every inputSchema has additionalProperties false; every tool has title, description, annotations)
//   add {a, b: number}       readOnly. text "<sum>", structuredContent {"sum": …} (integer if both are
//                            integer literals). The lean benchmark path.
//   echo {text}              readOnly. content [{"type":"text","text":text,"x-fixture-future-content":{"kept":true}}],
//                            structuredContent {text, headers {"authorization-present": bool,
//                            "idempotency-key": value|null, "mcp-protocol-version": value|null}},
//                            _meta {"com.example.fixture/echo":{"utf8Length":n}}, "x-fixture-future-result": true.
//                            The tool itself carries icons, outputSchema, execution {"taskSupport":"forbidden"},
//                            _meta {"com.example.fixture/owner":"mcp-fixture-server"} and
//                            "x-fixture-future": {"nested":[1,2.50,"é"]} (2.50 exactly as written).
//   slow {ms}                readOnly. Waits, then text "slept N ms". Client closes the connection → recorded
//                            (via "disconnect"); notifications/cancelled → recorded (via "notification") and
//                            answered with error -32800 "Request cancelled" (json mode) or an SSE stream that
//                            ends without a response (sse mode: headers are sent at once, the event after the
//                            wait). Responses carry Connection: close (see Limits).
//   progress {steps, intervalMs = 10}  readOnly. With params._meta.progressToken: ALWAYS an SSE response
//                            (even in json mode): `steps` notifications/progress {progressToken, progress i,
//                            total steps, message "step i of steps"}, one every intervalMs, then the result
//                            text "completed N steps". Without a token: waits steps × intervalMs, then the
//                            result in the mode's framing. Cancellation is recorded as for slow.
//   big {bytes}              readOnly. One text content of exactly `bytes` UTF-8 bytes: floor(bytes/64) blocks
//                            of 59 'x' + '\' + 'é' + '"' + '\n' (64 bytes each), then (bytes mod 64) 'x'.
//                            0 ≤ bytes ≤ 256 MiB; 10 MB takes tens of milliseconds.
//   write_note {note}        NOT readOnly, idempotentHint false. Counts the Idempotency-Key header (a missing
//                            key counts as one shared key): structuredContent {note, idempotencyKey|null,
//                            timesSeen}, text "note recorded; idempotency key K seen N time(s)".
//   headers {}               readOnly. structuredContent = {lower-case header name: value} (repeated headers
//                            joined with ", "; authorization → "<present>"); text = the same JSON.
//   change_tools {}          Toggles extra_tool {} (readOnly, returns text "extra tool called") in tools/list,
//                            sends notifications/tools/list_changed on every standalone GET stream and every
//                            subscription that asked for it, and (legacy, sse mode) on this call's response
//                            stream before the result. structuredContent {"extraToolListed": bool}.
//   fail {status 200…599, retryAfter?: string|integer, body?: string, times?: integer}
//                            readOnly (fail_write: same, but readOnlyHint false / idempotentHint false).
//                            This HTTP response gets `status`, Content-Type application/json, Retry-After when
//                            given, and `body` or {"error":{"code":"fixture_failure","message":"fixture failure",
//                            "retryable":true}}. With times n: the first n calls per Idempotency-Key (shared
//                            counter for fail and fail_write; a missing key is one key) fail, later ones
//                            succeed with text "succeeded after n failures", structuredContent {attempt, failures}.
//   garbage {kind}           readOnly. "text": 200 application/json body `this is not json`.
//                            "truncated-sse": 200 text/event-stream, Content-Length body with half an event
//                            (no blank line), Connection: close. "stall-headers": sends nothing for 60 s or
//                            until the client leaves, then closes the connection. "stall-body": 200
//                            application/json, chunked, half the JSON, then stalls 60 s / until the client
//                            leaves, then drops the connection. "wrong-id": a valid result whose id is
//                            id + 1000000 (numbers) or id + "-wrong" (strings). "drop-connection": 200 SSE
//                            headers, half an event, then the TCP connection is closed mid-chunk.
//                            Stalls that end because the client left are recorded as "disconnect" cancellations.
//
// Control endpoints (no auth)
//   GET  /_fixture/log → {"requests":[{"httpMethod","method","tool","id","sessionId","protocolVersionHeader",
//        "protocolVersionMeta","idempotencyKey","expect100Continue"}…] (every /mcp request that got past auth,
//        oldest first, the last 100000), "requestsDropped", "cancelled":[request ids], "cancellations":
//        [{"id","sessionId","via":"notification"|"disconnect"}], "deletedSessions":[ids], "logLevel": string|null,
//        "openStreams": n, "activeSessions": n}
//   POST /_fixture/expire-sessions → {"ok":true}; forgets every session (old ids then get 404) and closes
//        their GET streams.
//   POST /_fixture/reset → {"ok":true}; clears the log, the idempotency counters and the extra_tool toggle
//        (sessions and open streams stay).
//
// Limits
//   * Responses that watch the connection for cancellation (slow, progress, garbage stalls, GET streams,
//     subscriptions/listen) end it: they carry Connection: close. Every other response keeps the
//     connection alive.
//   * The fixture never answers `Expect: 100-continue`; curl then waits up to 1 s before sending bodies over
//     1 KiB. Clients should send an empty `Expect:` header (the log records expect100Continue).

do {
    let command = try FixtureCommand.parse()
    try await command.run()
} catch {
    FixtureCommand.exit(withError: error)
}
