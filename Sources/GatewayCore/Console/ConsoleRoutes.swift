import AgentWire
import HTTPTypes
import Hummingbird
import NIOCore

/// The web console under `/console`: server-rendered HTML, no JavaScript. Every page needs a
/// signed-in person; every POST needs the session's CSRF token in the form field `csrf`.
extension GatewayHTTPServer {
    static let csrfPage = "This form is out of date or did not come from this console. Go back, reload the page and try again."

    /// Runs a console handler for the signed-in person. `changes` reads the form and checks its
    /// CSRF token first (403 without it). Errors become a page with the matching status.
    func consolePage(
        _ request: Request, _ context: GatewayRequestContext, changes: Bool = false,
        _ body: @escaping (ConsolePages, [String: [String]]) async throws -> Response
    ) async -> Response {
        var signedIn: SignedInUser?
        let response: Response
        do {
            signedIn = try await signedInUser(request, context)
            if let signedIn {
                let form = changes ? try await ConsoleHTTP.readForm(request) : [:]
                if changes, !gateway.csrfMatches(form["csrf"]?.first, for: signedIn) {
                    response = messagePage("Refused", Self.csrfPage, status: .forbidden, signedIn: signedIn)
                } else {
                    let pages = ConsolePages(
                        service: try gateway.ownerService(for: signedIn.user), signedIn: signedIn,
                        staleMinutes: gateway.configuration.staleAfterSeconds / 60, tracker: gateway.tracker)
                    response = try await body(pages, form)
                }
            } else {
                response = Self.html(
                    ConsoleRenderer.page("signedOut", title: "Sign in", context: [:], signedIn: nil), status: changes ? .forbidden : .unauthorized)
            }
        } catch let error as AdminError {
            response = messagePage("Not done", error.message, status: ConsoleHTTP.status(for: error), signedIn: signedIn)
        } catch {
            let error = Gateway.asGatewayError(error)
            response = messagePage("Not done", error.message, status: error.status, signedIn: signedIn)
        }
        return finish(response, signedIn: signedIn)
    }

    func messagePage(_ heading: String, _ message: String, status: HTTPResponse.Status, signedIn: SignedInUser?) -> Response {
        Self.html(
            ConsoleRenderer.page(
                "message", title: heading, context: ["heading": heading, "message": message, "back": "/console", "backLabel": "Back to my agents"],
                signedIn: signedIn), status: status)
    }

    func render(_ template: String, _ title: String, _ context: [String: Any], _ pages: ConsolePages) -> Response {
        Self.html(ConsoleRenderer.page(template, title: title, context: context, signedIn: pages.signedIn))
    }

    func confirmPage(_ pages: ConsolePages, heading: String, explanation: String, action: String, button: String, cancel: String) -> Response {
        render(
            "confirm", heading,
            ["heading": heading, "explanation": explanation, "action": action, "button": button, "cancel": cancel, "csrf": pages.csrf], pages)
    }

    func pairingPanel(_ pages: ConsolePages, agentID: String) async throws -> Response {
        let ttl = gateway.configuration.pairingCodeTTLSeconds
        let (code, expiresAt) = try await pages.service.pairingCode(agentID: agentID, ttlSeconds: ttl)
        let agent = try await pages.service.agent(agentID)
        return render(
            "pairing", "Pair \(agent.agent.name)",
            pages.pairing(agent: agent, code: code, expiresAt: expiresAt, ttlSeconds: ttl, command: setupCommand),
            pages)
    }

    func addConsole(to router: Router<GatewayRequestContext>) {
        let secure = gateway.configuration.secureCookies
        router.get("console/assets/console.css") { _, _ in
            var response = Response(
                status: .ok, headers: [.contentType: "text/css; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(ConsoleStyle.css.utf8))))
            ConsoleHTTP.securityHeaders(&response.headers, secure: secure)
            response.headers[.cacheControl] = "max-age=300"
            return response
        }
        // Opening a link only shows a button: a link preview that fetches it does not use it up.
        router.get("console/sign-in") { request, _ in
            let token = request.uri.queryParameters.get("token") ?? ""
            var response = Self.html(ConsoleRenderer.page("signInConfirm", title: "Sign in", context: ["token": token], signedIn: nil))
            ConsoleHTTP.securityHeaders(&response.headers, secure: secure)
            return response
        }
        router.post("console/sign-in") { request, _ in
            var response: Response
            // Login CSRF: another site must not sign this browser in with the attacker's own link.
            if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site == "cross-site" || site == "same-site" {
                response = self.messagePage("Sign-in refused", SignInRefused.crossSite, status: .forbidden, signedIn: nil)
                ConsoleHTTP.securityHeaders(&response.headers, secure: secure)
                return response
            }
            do {
                let form = try await ConsoleHTTP.readForm(request)
                let cookie = try await self.gateway.redeemLoginLink(form["token"]?.first ?? "")
                response = Self.redirect("/console")
                response.headers[.setCookie] = ConsoleHTTP.sessionCookie(
                    cookie, secure: secure, maxAgeSeconds: self.gateway.configuration.consoleAbsoluteSeconds)
            } catch {
                response = self.messagePage("Sign-in refused", SignInRefused.message, status: .unauthorized, signedIn: nil)
            }
            ConsoleHTTP.securityHeaders(&response.headers, secure: secure)
            return response
        }
        router.post("console/sign-out") { request, context in
            await self.consolePage(request, context, changes: true) { pages, _ in
                try await self.gateway.signOut(pages.signedIn)
                var response = Self.redirect("/console")
                response.headers[.setCookie] = ConsoleHTTP.sessionCookie("", secure: secure, maxAgeSeconds: 0)
                return response
            }
        }
        router.get("console") { request, context in
            await self.consolePage(request, context) { pages, _ in self.render("agents", "My agents", try await pages.agents(), pages) }
        }
        router.get("console/agents/new") { request, context in
            await self.consolePage(request, context) { pages, _ in self.render("newAgent", "Create an agent", try await pages.newAgent(), pages) }
        }
        router.post("console/agents") { request, context in
            await self.consolePage(request, context, changes: true) { pages, form in
                let id = try await pages.service.createAgent(name: form["name"]?.first ?? "", grants: ConsolePages.grants(from: form))
                return try await self.pairingPanel(pages, agentID: id)
            }
        }
        router.get("console/agents/:agent") { request, context in
            await self.consolePage(request, context) { pages, _ in
                let id = try context.parameters.require("agent")
                var query = try Self.auditQuery(request.uri.queryParameters)
                query.agentID = id
                if query.tool == "" { query.tool = nil }
                if query.outcome == "" { query.outcome = nil }
                let detail = try await pages.detail(agentID: id, query: query)
                return self.render("detail", detail["name"] as? String ?? "Agent", detail, pages)
            }
        }
        router.post("console/agents/:agent/pairing-code") { request, context in
            await self.consolePage(request, context, changes: true) { pages, _ in
                try await self.pairingPanel(pages, agentID: try context.parameters.require("agent"))
            }
        }
        router.get("console/agents/:agent/revoke") { request, context in
            await self.consolePage(request, context) { pages, _ in
                let agent = try await pages.service.agent(try context.parameters.require("agent"))
                return self.confirmPage(
                    pages, heading: "Revoke \(agent.agent.name)?",
                    explanation: "Its next call is refused, on every device, and it cannot be undone. Create a new agent to start again.",
                    action: "/console/agents/\(agent.agent.id)/revoke", button: "Yes, revoke the agent", cancel: "/console/agents/\(agent.agent.id)")
            }
        }
        router.post("console/agents/:agent/revoke") { request, context in
            await self.consolePage(request, context, changes: true) { pages, _ in
                let id = try context.parameters.require("agent")
                try await pages.service.revokeAgent(id)
                return Self.redirect("/console/agents/\(id)")
            }
        }
        router.get("console/agents/:agent/devices/:device/revoke") { request, context in
            await self.consolePage(request, context) { pages, _ in
                let agentID = try context.parameters.require("agent")
                let deviceID = try context.parameters.require("device")
                guard let device = try await pages.service.devices(agentID: agentID).first(where: { $0.id == deviceID }) else {
                    throw OwnerService.notFound("device \(deviceID)")
                }
                return self.confirmPage(
                    pages, heading: "Revoke the device \(device.name)?",
                    explanation: "Its sessions end now and its next call is refused. The agent's other devices keep working.",
                    action: "/console/agents/\(agentID)/devices/\(deviceID)/revoke", button: "Yes, revoke the device",
                    cancel: "/console/agents/\(agentID)")
            }
        }
        router.post("console/agents/:agent/devices/:device/revoke") { request, context in
            await self.consolePage(request, context, changes: true) { pages, _ in
                let agentID = try context.parameters.require("agent")
                try await pages.service.revokeDevice(agentID: agentID, deviceID: try context.parameters.require("device"))
                return Self.redirect("/console/agents/\(agentID)")
            }
        }
        router.post("console/agents/:agent/sessions/:session/end") { request, context in
            await self.consolePage(request, context, changes: true) { pages, _ in
                let agentID = try context.parameters.require("agent")
                try await pages.service.endSession(agentID: agentID, sessionID: try context.parameters.require("session"))
                return Self.redirect("/console/agents/\(agentID)")
            }
        }
        router.get("console/approvals") { request, context in
            await self.consolePage(request, context) { pages, _ in
                self.render("approvals", "Approvals", try await pages.approvals(refreshSeconds: 5), pages)
            }
        }
        for verdict in ["approve", "deny"] {
            router.post(RouterPath("console/approvals/:request/\(verdict)")) { request, context in
                await self.consolePage(request, context, changes: true) { pages, form in
                    let id = try context.parameters.require("request")
                    _ = try await pages.service.decide(requestID: id, approve: verdict == "approve", reason: form["reason"]?.first)
                    self.gateway.shared.announceDecision(id)
                    return Self.redirect("/console/approvals")
                }
            }
        }
        router.get("console/admin") { request, context in
            await self.consolePage(request, context) { pages, _ in self.render("admin", "Admin", try await pages.admin(), pages) }
        }
        router.post("console/admin/users/:user/entitlement") { request, context in
            await self.consolePage(request, context, changes: true) { pages, form in
                try await pages.service.setEntitlement(userID: try context.parameters.require("user"), entitled: form["enabled"]?.first == "on")
                return Self.redirect("/console/admin")
            }
        }
        router.post("console/admin/users/:user/block") { request, context in
            await self.consolePage(request, context, changes: true) { pages, form in
                try await pages.service.setBlocked(userID: try context.parameters.require("user"), blocked: form["blocked"]?.first == "yes")
                return Self.redirect("/console/admin")
            }
        }
        let tracker = TrackerPages(store: gateway.store, tracker: gateway.tracker)
        router.get("console/tracker") { request, context in
            await self.consolePage(request, context) { pages, _ in self.render("projects", "Tracker", try await tracker.projects(), pages) }
        }
        router.get("console/tracker/:project") { request, context in
            await self.consolePage(request, context) { pages, _ in
                let after = Int(request.uri.queryParameters.get("after") ?? "0") ?? 0
                let page = try await tracker.issues(projectKey: try context.parameters.require("project"), after: max(0, after))
                return self.render("issues", page["key"] as? String ?? "Issues", page, pages)
            }
        }
        router.get("console/tracker/:project/:number") { request, context in
            await self.consolePage(request, context) { pages, _ in
                guard let number = Int(try context.parameters.require("number")) else { throw OwnerService.notFound("such issue") }
                let projectKey = try context.parameters.require("project").uppercased()
                // Over Plane an issue's page is Plane's own.
                if TrackerBinding.isProjectKey(projectKey), let link = self.gateway.trackerIssueLink(projectKey: projectKey, number: number) {
                    return Self.redirect(link)
                }
                let page = try await tracker.issue(projectKey: try context.parameters.require("project"), number: number)
                return self.render("issue", page["key"] as? String ?? "Issue", page, pages)
            }
        }
    }
}
