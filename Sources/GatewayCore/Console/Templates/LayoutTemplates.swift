/// The console's page frame and its small pages (sign-in, errors, confirmations). Compiled into
/// the binary, so a release binary copied anywhere serves the same pages. Every `{{value}}` is
/// HTML-escaped by Mustache; `{{{body}}}` only ever holds a page this renderer made.
enum LayoutTemplates {
    static let layout = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="referrer" content="no-referrer">
        {{#refresh}}<meta http-equiv="refresh" content="{{refresh}}">{{/refresh}}
        <title>{{title}} · Agent Gateway</title>
        <link rel="stylesheet" href="/console/assets/console.css">
        </head>
        <body>
        <header class="top">
        <a class="brand" href="/console">Agent Gateway</a>
        {{#user}}
        <nav>
        <a href="/console">My agents</a>
        <a href="/console/agents/new">Create agent</a>
        <a href="/console/approvals">Approvals</a>
        <a href="/console/tracker">Tracker</a>
        {{#isAdmin}}<a href="/console/admin">Admin</a>{{/isAdmin}}
        </nav>
        <form method="post" action="/console/sign-out" class="signout">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <span class="who">{{name}}{{#isAdmin}} (admin){{/isAdmin}}</span>
        <button type="submit">Sign out</button>
        </form>
        {{/user}}
        </header>
        <main>
        {{{body}}}
        </main>
        </body>
        </html>
        """

    static let signedOut = """
        <h1>Sign in</h1>
        <p>You are not signed in. Ask the gateway's administrator for a sign-in link
        (<code>agent-gateway user login-link YOUR-ID</code>) and open it in this browser.</p>
        """

    static let signInConfirm = """
        <h1>Sign in to Agent Gateway</h1>
        <p>This link signs you in once. Press the button to continue.</p>
        <form method="post" action="/console/sign-in">
        <input type="hidden" name="token" value="{{token}}">
        <button type="submit" class="primary" id="sign-in">Sign in</button>
        </form>
        """

    static let message = """
        <h1>{{heading}}</h1>
        <p class="notice">{{message}}</p>
        <p><a href="{{back}}">{{backLabel}}</a></p>
        """

    /// Pending approval requests (the page reloads itself every few seconds: live without
    /// JavaScript), each with approve and deny forms that take a reason; then recent decisions.
    static let approvals = """
        <h1>Approvals</h1>
        <p>Calls of high and critical tools wait here for a decision. This page reloads every {{refresh}} seconds.
        A session-wide approval also lets that session's later calls of the tool on the project run.</p>
        {{#breakGlass}}<p class="notice">Break-glass grant {{id}} in force until {{until}}: you may approve critical requests.</p>{{/breakGlass}}
        <h2>Pending</h2>
        {{^pending}}<p id="no-pending">Nothing waits for a decision.</p>{{/pending}}
        {{#pending}}
        <section class="approval" id="request-{{id}}">
        <h3>{{summary}}</h3>
        <p><strong>{{tierLabel}}</strong> · agent {{agentName}} ({{agentID}}) of {{ownerID}} · tool {{tool}}{{#project}} on {{project}}{{/project}} ·
        {{scopeLabel}} · asked {{asked}} · open until {{expires}}</p>
        <p class="meta">request {{id}} · session {{sessionID}} · device {{deviceID}}</p>
        <form method="post" action="/console/approvals/{{id}}/approve" class="inline">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label>Reason <input type="text" name="reason" maxlength="500" {{#critical}}required{{/critical}}></label>
        <button type="submit" class="primary" id="approve-{{id}}">Approve</button>
        </form>
        <form method="post" action="/console/approvals/{{id}}/deny" class="inline">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label>Reason <input type="text" name="reason" maxlength="500" required id="deny-reason-{{id}}"></label>
        <button type="submit" class="danger" id="deny-{{id}}">Deny</button>
        </form>
        </section>
        {{/pending}}
        <h2>Recent decisions</h2>
        {{^hasDecided}}<p>None yet.</p>{{/hasDecided}}
        {{#hasDecided}}<table><thead><tr><th>Request</th><th>Status</th><th>What</th><th>By</th><th>When</th><th>Reason</th></tr></thead><tbody>{{/hasDecided}}
        {{#decided}}<tr><td>{{id}}</td><td>{{status}}</td><td>{{summary}}</td><td>{{decidedBy}}</td><td>{{decidedAt}}</td><td>{{reason}}</td></tr>{{/decided}}
        {{#hasDecided}}</tbody></table>{{/hasDecided}}
        """

    static let confirm = """
        <h1>{{heading}}</h1>
        <p>{{explanation}}</p>
        <form method="post" action="{{action}}" class="confirm">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit" class="danger" id="confirm">{{button}}</button>
        <a href="{{cancel}}">Cancel</a>
        </form>
        """
}
