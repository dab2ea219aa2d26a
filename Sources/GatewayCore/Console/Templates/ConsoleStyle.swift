/// The console's one stylesheet (served from /console/assets/console.css, so the CSP needs no
/// inline style). Readable on a laptop and on a phone: tables fold into cards on narrow screens.
enum ConsoleStyle {
    static let css = """
        :root { --ink: #1d2433; --muted: #5b6475; --line: #d9dee7; --accent: #2f5bd3; --danger: #b42318; --ok: #067647; --warn: #b54708; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f6f7f9; }
        header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .75rem 1.25rem; background: #fff; border-bottom: 1px solid var(--line); }
        .brand { font-weight: 700; color: var(--ink); text-decoration: none; }
        nav { display: flex; flex-wrap: wrap; gap: 1rem; flex: 1; }
        nav a { color: var(--accent); text-decoration: none; }
        .signout { display: flex; gap: .5rem; align-items: center; margin: 0; }
        .who { color: var(--muted); }
        main { max-width: 1100px; margin: 0 auto; padding: 1.25rem; }
        h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
        h2 { font-size: 1.2rem; margin: 1.75rem 0 .5rem; }
        table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
        th, td { text-align: left; padding: .5rem .75rem; border-bottom: 1px solid var(--line); vertical-align: top; overflow-wrap: anywhere; }
        th { font-size: .85rem; color: var(--muted); font-weight: 600; }
        code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
        pre { background: #10172a; color: #e8edf7; padding: .75rem 1rem; border-radius: 6px; overflow-x: auto; user-select: all; }
        .state, .outcome { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; background: #eef1f6; }
        .state-connected, .outcome-ok, .outcome-replayed { background: #dcfae6; color: var(--ok); }
        .state-stale, .outcome-denied, .outcome-rejected { background: #fef0c7; color: var(--warn); }
        .state-revoked, .state-stopped, .outcome-refused, .outcome-failed { background: #fee4e2; color: var(--danger); }
        .state-idle { background: #eef1f6; color: var(--muted); }
        .legend, .notice { color: var(--muted); font-size: .9rem; }
        .notice { background: #fff; border-left: 4px solid var(--warn); padding: .5rem .75rem; }
        button, .button { font: inherit; padding: .4rem .9rem; border-radius: 6px; border: 1px solid var(--line); background: #fff; color: var(--ink); cursor: pointer; text-decoration: none; display: inline-block; }
        .primary { background: var(--accent); border-color: var(--accent); color: #fff; }
        .danger { border-color: var(--danger); color: var(--danger); }
        button.danger { background: var(--danger); color: #fff; }
        .actions { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
        .actions form, td form { margin: 0; display: inline; }
        form.create { display: grid; gap: .75rem; max-width: 760px; }
        form.create input[name=name] { font: inherit; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; }
        fieldset { border: 1px solid var(--line); border-radius: 8px; background: #fff; }
        label.scope { display: block; padding: .2rem 0; }
        label.scope span { color: var(--muted); }
        .pairing { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.25rem; }
        .code { font: 700 2.2rem/1.2 ui-monospace, Menlo, monospace; letter-spacing: .15em; margin: .25rem 0 .75rem; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; }
        .filter { display: flex; flex-wrap: wrap; gap: .75rem; align-items: end; margin-bottom: .75rem; }
        .text { white-space: pre-wrap; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
        ol.history { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .75rem 2rem; }
        .time, .meta { color: var(--muted); font-size: .85rem; }
        .comment { margin-bottom: .75rem; }
        ul.projects { list-style: none; padding: 0; display: grid; gap: .75rem; }
        ul.projects li { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; }
        @media (max-width: 640px) {
          table, thead, tbody, tr, td { display: block; }
          thead { display: none; }
          tr { border-bottom: 1px solid var(--line); padding: .5rem 0; }
          td { border: 0; padding: .2rem .75rem; }
          td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font-size: .85rem; }
          .code { font-size: 1.8rem; }
        }
        """
}
