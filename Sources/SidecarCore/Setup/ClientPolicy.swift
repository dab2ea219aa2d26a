/// Which tool calls the MCP client asks the user about before running them (`setup --approve`).
///
/// The default is ``writes``: reads change nothing and only show the agent what its grants
/// already allow, so asking for each one would teach people to click "yes" without reading;
/// a write changes what the whole team sees, under the owner's name, and the client's prompt is
/// the one moment a person sees it before it happens. Grants, audit and the absence of any delete
/// tool hold whatever is chosen here.
public enum ToolApproval: String, Sendable, CaseIterable {
    /// Reads run without asking; each write asks first (the default).
    case writes
    /// Every call asks first.
    case all
    /// No call asks.
    case none

    /// One line for the config comment and `--print`.
    public var summary: String {
        switch self {
        case .writes: return "reads run without asking, each write asks first"
        case .all: return "every call asks first"
        case .none: return "no call asks first"
        }
    }

    /// Codex's `default_tools_approval_mode` for the server: `prompt` always asks, `approve`
    /// never asks. For ``writes`` the default is `prompt` and each read tool gets
    /// `approval_mode = "approve"`, rather than Codex's own `writes` mode: that value is recent,
    /// and an older Codex refuses the whole `config.toml` over an enum value it does not know,
    /// while a tool the gateway adds later asks first until setup runs again.
    public var codexDefaultMode: String { self == .none ? "approve" : "prompt" }

    /// The tools that get `approval_mode = "approve"` in Codex (the read tools, for ``writes``).
    public func codexPreapprovedTools(_ tools: [AgentsMarkdown.Tool]) -> [String] {
        self == .writes ? tools.filter(\.readOnly).map(\.name) : []
    }
}

/// Environment variables an MCP client must pass on for the sidecar to reach its gateway.
///
/// Codex starts a stdio server with only a few variables of its own environment
/// (``codexPassesByDefault``) plus what the entry's `env` sets and `env_vars` names. A sidecar behind
/// a proxy, or trusting a private CA, would lose them; setup names the ones present when it runs
/// in `env_vars`, so Codex copies their values from its own environment at start. Only names are
/// written: values can hold credentials (`https://user:password@proxy`).
public enum ForwardedEnvironment {
    /// What Codex 0.147 passes to a stdio MCP server without being asked (on Linux; macOS adds
    /// `__CF_USER_TEXT_ENCODING`).
    public static let codexPassesByDefault = ["HOME", "LOGNAME", "PATH", "SHELL", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "TZ"]

    /// The variables the sidecar reads to reach the gateway: libcurl's proxy variables (curl
    /// honours lower-case `http_proxy` only, and both cases of the others), the CA bundle
    /// locations, and the sidecar's own non-secret settings.
    public static let candidates = [
        "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
        CredentialStore.keyFileVariable, "AGENT_SIDECAR_LOG_LEVEL",
    ]

    /// The candidates set (and not empty) in `environment`, in ``candidates`` order.
    public static func present(in environment: [String: String]) -> [String] {
        candidates.filter { environment[$0].map { !$0.isEmpty } ?? false }
    }
}
