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
