import AgentWire
import Foundation
import GatewayCore
import Testing

/// The console's and the owner API's defences over plain HTTP: sign-in links, sessions, CSRF,
/// the trusted proxy header, escaping, cookie flags and security headers, secrets.
@Suite("Owner console security")
struct OwnerConsoleSecurityTests {
    @Test("a used or expired sign-in link is refused, and sets no cookie")
    func usedOrExpiredLinkIsRefused() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock)
        defer { gateway.stop() }
        let token = try await gateway.admin.createLoginLink(userID: "alice", ttlSeconds: 300)
        let first = try await ConsoleBrowser.redeem(gateway.url, token: token)
        #expect(first.status == 303)
        #expect(ConsoleBrowser.sessionCookie(first) != nil)
        let again = try await ConsoleBrowser.redeem(gateway.url, token: token)
        #expect(again.status == 401)
        #expect(again.header("Set-Cookie") == nil)

        let expiring = try await gateway.admin.createLoginLink(userID: "alice", ttlSeconds: 300)
        clock.advance(seconds: 301)
        let expired = try await ConsoleBrowser.redeem(gateway.url, token: expiring)
        #expect(expired.status == 401)
        #expect(expired.header("Set-Cookie") == nil)
        let made = try await ConsoleBrowser.redeem(gateway.url, token: "agl_" + String(repeating: "A", count: 43))
        #expect(made.status == 401)

        // Login CSRF: a form on another site posting a valid link is refused, and the link survives.
        let fresh = try await gateway.admin.createLoginLink(userID: "bob")
        let crossSite = try await ConsoleHTTPClient.send(
            "POST", gateway.url + "/console/sign-in", body: ConsoleHTTPClient.formEncode([("token", fresh)]),
            headers: ["Sec-Fetch-Site": "cross-site"])
        #expect(crossSite.status == 403)
        #expect(crossSite.header("Set-Cookie") == nil)
        #expect(try await ConsoleBrowser.redeem(gateway.url, token: fresh).status == 303)
    }

    @Test("a session ends when idle, at its absolute expiry, and at sign-out")
    func sessionExpiryAndSignOut() async throws {
        let clock = ManualClock()
        let gateway = try await InProcessGateway(clock: clock) {
            $0.consoleIdleSeconds = 1800
            $0.consoleAbsoluteSeconds = 3600
        }
        defer { gateway.stop() }
        let idle = try await ConsoleBrowser.signIn(gateway, as: "alice")
        clock.advance(seconds: 1801)
        #expect(try await idle.api("GET", "/me").status == 401)

        let busy = try await ConsoleBrowser.signIn(gateway, as: "alice")
        clock.advance(seconds: 1700)
        #expect(try await busy.api("GET", "/me").status == 200)
        clock.advance(seconds: 1700)
        #expect(try await busy.api("GET", "/me").status == 200)
        clock.advance(seconds: 1700)
        #expect(try await busy.api("GET", "/me").status == 401, "past the absolute expiry however busy")

        let leaving = try await ConsoleBrowser.signIn(gateway, as: "alice")
        #expect(try await leaving.api("POST", "/sign-out").status == 204)
        #expect(try await leaving.api("GET", "/me").status == 401, "sign-out ends the session on the server")
        #expect(try await leaving.get("/console").status == 401)
    }

    @Test("a state change without the CSRF token is 403, on the console and the API")
    func stateChangeWithoutCSRFIs403() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        let alice = try await ConsoleBrowser.signIn(gateway, as: "alice")
        let grant = ("grant", "WEB project:read")
        #expect(try await alice.post("/console/agents", [("name", "no token"), grant], csrf: false).status == 403)
        #expect(
            try await alice.post(
                "/console/agents", [("csrf", (alice.csrf.hasPrefix("0") ? "1" : "0") + alice.csrf.dropFirst()), ("name", "wrong"), grant], csrf: false
            ).status == 403)
        #expect(try await alice.post("/console/sign-out", csrf: false).status == 403)
        let body: JSONValue = ["name": "api", "grants": [["project": "WEB", "scopes": ["project:read"]]]]
        let refused = try await alice.api("POST", "/agents", json: body, csrf: false)
        #expect(refused.status == 403)
        #expect(refused.errorCode == "csrf_failed")
        #expect(try await gateway.admin.agentSummaries(ownerID: "alice").isEmpty, "nothing was created without the token")
        #expect(try await alice.api("POST", "/agents", json: body).status == 201)
        #expect(try await alice.post("/console/agents", [("name", "with token"), grant]).status == 200)
        #expect(try await gateway.admin.agentSummaries(ownerID: "alice").count == 2)
    }

    @Test("the proxy user header is ignored unless it comes from a configured proxy address")
    func proxyHeaderFromUntrustedAddressIsIgnored() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock()) {
            $0.proxyUserHeader = "X-Forwarded-User"
            $0.trustedProxyAddresses = ["127.0.0.2"]
        }
        defer { gateway.stop() }
        let untrusted = try await ConsoleHTTPClient.send("GET", gateway.url + "/api/owner/v1/me", headers: ["X-Forwarded-User": "ada"])
        #expect(untrusted.status == 401, "a header from 127.0.0.1 (not the proxy) signs nobody in")
        #expect(untrusted.header("Set-Cookie") == nil)

        let port = Int(gateway.url.split(separator: ":").last!)!
        func viaRaw(_ source: String) async throws -> (Int?, String) {
            let request = Array(
                "GET /api/owner/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-User: ada\r\nConnection: close\r\n\r\n".utf8)
            let connection = try LoopbackConnections(port: port, sources: [source], payload: request, timeoutSeconds: 15)
            _ = await connection.wait(seconds: 15) { $0.closed.contains(0) }
            return (connection.status(0), connection.body(0))
        }
        let (fromProxy, body) = try await viaRaw("127.0.0.2")
        #expect(fromProxy == 200)
        #expect(body.contains("\"id\":\"ada\""))
        let (fromOther, _) = try await viaRaw("127.0.0.3")
        #expect(fromOther == 401)
    }

    @Test("cookie flags and security headers are set")
    func cookieFlagsAndSecurityHeaders() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        let answer = try await ConsoleBrowser.redeem(gateway.url, token: try await gateway.admin.createLoginLink(userID: "alice"))
        let cookie = try #require(answer.header("Set-Cookie"))
        #expect(cookie.contains("HttpOnly"))
        #expect(cookie.contains("SameSite=Strict"))
        #expect(cookie.contains("Path=/"))
        #expect(!cookie.contains("Secure"), "plain http on loopback: no Secure flag")
        let alice = try #require(ConsoleBrowser.sessionCookie(answer))
        let page = try await ConsoleHTTPClient.send("GET", gateway.url + "/console", headers: ["Cookie": "agw_console=\(alice)"])
        #expect(page.status == 200)
        for answer in [answer, page] {
            let csp = try #require(answer.header("Content-Security-Policy"))
            #expect(csp.contains("default-src 'none'"))
            #expect(csp.contains("frame-ancestors 'none'"))
            #expect(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "no script allowed at all")
            #expect(answer.header("X-Content-Type-Options") == "nosniff")
            #expect(answer.header("X-Frame-Options") == "DENY")
            #expect(answer.header("Referrer-Policy") == "no-referrer")
            #expect(answer.header("Cache-Control") == "no-store")
        }
        #expect(!String(decoding: page.body, as: UTF8.self).contains("<script"))

        let secure = try await InProcessGateway(clock: ManualClock()) { $0.publicOrigins = ["https://gateway.example.com"] }
        defer { secure.stop() }
        let overHTTPS = try await ConsoleBrowser.redeem(secure.url, token: try await secure.admin.createLoginLink(userID: "alice"))
        #expect(overHTTPS.header("Set-Cookie")?.contains("; Secure") == true)
        #expect(overHTTPS.header("Strict-Transport-Security") != nil)
    }

    @Test("no sign-in link, pairing code or session cookie reaches the audit or the owner-action log")
    func secretsStayOutOfTheAudit() async throws {
        let gateway = try await InProcessGateway(clock: ManualClock())
        defer { gateway.stop() }
        let token = try await gateway.admin.createLoginLink(userID: "alice")
        let answer = try await ConsoleBrowser.redeem(gateway.url, token: token)
        let cookie = try #require(ConsoleBrowser.sessionCookie(answer))
        let browser = ConsoleBrowser(
            baseURL: gateway.url, cookie: cookie,
            csrf: try #require(
                try await ConsoleHTTPClient.send("GET", gateway.url + "/api/owner/v1/me", headers: ["Cookie": "agw_console=\(cookie)"]).json[
                    "csrfToken"]?.stringValue))
        let created = try await browser.api("POST", "/agents", json: ["name": "scan", "grants": [["project": "WEB", "scopes": ["project:read"]]]])
        let agentID = try #require(created.json["agent"]?["id"]?.stringValue)
        let code = try #require(try await browser.api("POST", "/agents/\(agentID)/pairing-codes").json["code"]?.stringValue)
        let client = try await AgentClient.pair(baseURL: gateway.url, code: code)
        _ = try await client.call("list_projects")
        #expect(try await browser.api("POST", "/agents/\(agentID)/revoke").status == 200)
        let (audit, actions) = try await gateway.store.read { store in
            (try store.auditEvents(matching: AuditQuery(limit: 1000)), try store.ownerActions(userID: nil, limit: 1000))
        }
        #expect(!actions.isEmpty && !audit.isEmpty)
        let text = audit.map { "\($0)" }.joined() + actions.map { "\($0)" }.joined()
        for secret in [token, code, cookie, browser.csrf, client.token] {
            #expect(!text.contains(secret), "a secret reached the audit or the owner actions")
        }
        #expect(actions.contains { $0.action == "create_pairing_code" && $0.actorUserID == "alice" })
        #expect(actions.contains { $0.action == "sign_in" && $0.detail == "by sign-in link" })
    }
}

/// The real `agent-gateway serve`, its stderr kept: no sign-in link, pairing code, cookie or token
/// reaches its log, the tool-call audit or the owner-action log.
@Suite("Owner console secrets, real gateway process")
struct OwnerConsoleLogScanTests {
    @Test("no sign-in link, pairing code or session cookie reaches the gateway's log or the audit")
    func secretsStayOutOfTheLog() async throws {
        let directory = temporaryDirectory()
        let log = directory + "/gateway.log"
        let server = try await GatewayProcess.start(extraArguments: ["--hash-key-file", directory + "/hash.key"], shell: "exec 2>\(log)")
        defer { server.stop() }
        let link = try runGatewayCommand([
            "user", "login-link", "alice", "--db", server.database, "--hash-key-file", directory + "/hash.key", "--url", server.url,
        ])
        let token = String(try #require(link.split(separator: "=").last))
        let signIn = try await ConsoleBrowser.redeem(server.url, token: token)
        let cookie = try #require(ConsoleBrowser.sessionCookie(signIn))
        let me = try await ConsoleHTTPClient.send("GET", server.url + "/api/owner/v1/me", headers: ["Cookie": "agw_console=\(cookie)"])
        let browser = ConsoleBrowser(baseURL: server.url, cookie: cookie, csrf: try #require(me.json["csrfToken"]?.stringValue))
        let created = try await browser.api("POST", "/agents", json: ["name": "scan", "grants": [["project": "WEB", "scopes": ["project:read"]]]])
        let agentID = try #require(created.json["agent"]?["id"]?.stringValue)
        let code = try #require(try await browser.api("POST", "/agents/\(agentID)/pairing-codes").json["code"]?.stringValue)
        let client = try await AgentClient.pair(baseURL: server.url, code: code)
        _ = try await client.call("list_projects")
        _ = try await ConsoleBrowser.redeem(server.url, token: token)  // a refused second use is logged as nothing either
        #expect(try await browser.api("POST", "/sign-out").status == 204)
        let actions = try runGatewayCommand(["audit", "--actions", "--json", "--db", server.database])
        let audit = try runGatewayCommand(["audit", "--json", "--db", server.database])
        server.stop()
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("agent-gateway listening"), "the log was captured")
        #expect(actions.contains("create_pairing_code") && actions.contains("sign_in") && actions.contains("sign_out"))
        for secret in [token, code, cookie, browser.csrf, client.token] {
            #expect(!logText.contains(secret), "a secret reached the gateway's log")
            #expect(!actions.contains(secret) && !audit.contains(secret), "a secret reached the audit")
        }
    }
}
