import AgentWire
import Mustache

/// Renders the console's pages: Mustache templates compiled into the binary, each page inside
/// the layout. Mustache escapes every `{{value}}`, so text from agents, devices or the tracker is
/// shown as text, never as markup.
enum ConsoleRenderer {
    static let templates: [String: String] = [
        "layout": LayoutTemplates.layout, "signedOut": LayoutTemplates.signedOut, "signInConfirm": LayoutTemplates.signInConfirm,
        "message": LayoutTemplates.message, "confirm": LayoutTemplates.confirm, "agents": AgentTemplates.agents,
        "newAgent": AgentTemplates.newAgent, "pairing": AgentTemplates.pairing, "detail": AgentTemplates.detail, "admin": AdminTemplates.admin,
        "projects": AdminTemplates.projects, "issues": AdminTemplates.issues, "issue": AdminTemplates.issue,
        "approvals": LayoutTemplates.approvals,
    ]

    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for (name, text) in templates {
            do { try library.register(text, named: name) } catch { fatalError("console template \(name) does not parse: \(error)") }
        }
        return library
    }()

    /// A whole page: `template` rendered with `context`, inside the layout with the header for `signedIn`.
    static func page(_ template: String, title: String, context: [String: Any], signedIn: SignedInUser?) -> String {
        let body = library.render(context, withTemplate: template) ?? ""
        var frame: [String: Any] = ["title": title, "body": body]
        if let refresh = context["refresh"] { frame["refresh"] = refresh }
        if let signedIn {
            frame["user"] = ["name": signedIn.user.name, "isAdmin": signedIn.user.isAdmin, "csrf": signedIn.csrfToken] as [String: Any]
        }
        return library.render(frame, withTemplate: "layout") ?? ""
    }

    /// "2026-11-29 01:23:45 UTC", or "never".
    static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "never" }
        return Timestamp.rfc3339(milliseconds: milliseconds, fractional: false).replacing("T", with: " ").replacing("Z", with: " UTC")
    }
}
