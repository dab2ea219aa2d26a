/// The console's agent pages: My agents, Create agent, the pairing panel, agent detail.
enum AgentTemplates {
    static let agents = """
        <h1>My agents</h1>
        {{#hasAgents}}
        <table class="agents">
        <thead><tr><th>Agent</th>{{#showOwner}}<th>Owner</th>{{/showOwner}}<th>State</th><th>Last activity</th><th>Devices</th><th>Projects</th></tr></thead>
        <tbody>
        {{#agents}}
        <tr>
        <td data-label="Agent"><a href="/console/agents/{{id}}">{{name}}</a></td>
        {{#showOwner}}<td data-label="Owner">{{owner}}</td>{{/showOwner}}
        <td data-label="State"><span class="state state-{{state}}">{{state}}</span></td>
        <td data-label="Last activity">{{lastActivity}}</td>
        <td data-label="Devices">{{devices}}</td>
        <td data-label="Projects">{{projects}}</td>
        </tr>
        {{/agents}}
        </tbody>
        </table>
        {{/hasAgents}}
        {{^hasAgents}}<p>No agents yet. <a href="/console/agents/new">Create your first agent</a>.</p>{{/hasAgents}}
        <p class="legend"><b>connected</b>: a session is open · <b>idle</b>: no open session · <b>stale</b>: a work session is open but no call came for {{staleMinutes}} minutes · <b>stopped</b>: the owner is blocked or has no agent entitlement · <b>revoked</b>: stopped for good</p>
        """

    static let newAgent = """
        <h1>Create an agent</h1>
        {{^entitled}}<p class="notice">You have no agent entitlement; ask an admin to switch it on.</p>{{/entitled}}
        <form method="post" action="/console/agents" class="create">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <label for="name">Name</label>
        <input id="name" name="name" required maxlength="100" placeholder="e.g. codex on my laptop">
        {{#projects}}
        <fieldset>
        <legend>{{key}} · {{name}}</legend>
        {{#scopes}}
        <label class="scope"><input type="checkbox" name="grant" value="{{key}} {{scope}}"{{#checked}} checked{{/checked}}> <code>{{scope}}</code> <span>{{explanation}}</span></label>
        {{/scopes}}
        </fieldset>
        {{/projects}}
        <p>Tick no scope on a project to leave it out.</p>
        <button type="submit" class="primary" id="create-agent">Create agent and show its pairing code</button>
        </form>
        """

    static let pairing = """
        <h1>Pair {{agentName}}</h1>
        <section class="pairing">
        <p>Pairing code (shown once):</p>
        <p class="code" id="pairing-code">{{code}}</p>
        <p>It expires at <b>{{expiresAt}}</b> ({{ttlMinutes}} minutes) and works once.</p>
        <p>On the developer's machine, in the project folder, run:</p>
        <pre id="setup-command">{{command}}</pre>
        <p>When setup asks for the pairing code, type the code above. Never put the code on the command line.</p>
        </section>
        <p><a href="/console/agents/{{agentID}}" id="agent-link">Go to the agent</a></p>
        """

    static let detail = """
        <h1>{{name}} <span class="state state-{{state}}">{{state}}</span></h1>
        <dl class="facts">
        <dt>Owner</dt><dd>{{owner}}</dd>
        <dt>Agent id</dt><dd><code>{{id}}</code></dd>
        <dt>Last call</dt><dd id="last-call">{{lastCall}}</dd>
        <dt>Connected now</dt><dd>{{connected}}</dd>
        <dt>Grants</dt><dd>{{#grants}}<div><b>{{project}}</b>: {{scopes}}</div>{{/grants}}</dd>
        </dl>
        {{^revoked}}
        <div class="actions">
        <form method="post" action="/console/agents/{{id}}/pairing-code"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" id="new-code">New pairing code</button></form>
        <a class="button danger" href="/console/agents/{{id}}/revoke" id="revoke-agent">Revoke agent…</a>
        </div>
        {{/revoked}}
        <h2>Devices</h2>
        {{#hasDevices}}
        <table><thead><tr><th>Device</th><th>Paired</th><th>State</th><th></th></tr></thead><tbody>
        {{#devices}}<tr><td data-label="Device">{{name}}</td><td data-label="Paired">{{paired}}</td><td data-label="State">{{deviceState}}</td><td>{{#active}}<a href="/console/agents/{{agentID}}/devices/{{id}}/revoke">Revoke…</a>{{/active}}</td></tr>{{/devices}}
        </tbody></table>
        {{/hasDevices}}
        {{^hasDevices}}<p>No device is paired yet.</p>{{/hasDevices}}
        <h2>Sessions</h2>
        {{#hasSessions}}
        <table><thead><tr><th>Session</th><th>Started</th><th>Ends</th><th></th></tr></thead><tbody>
        {{#sessions}}<tr><td data-label="Session"><code>{{id}}</code></td><td data-label="Started">{{started}}</td><td data-label="Ends">{{ends}}</td><td>{{#open}}<form method="post" action="/console/agents/{{agentID}}/sessions/{{id}}/end"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">End</button></form>{{/open}}</td></tr>{{/sessions}}
        </tbody></table>
        {{/hasSessions}}
        {{^hasSessions}}<p>No sessions yet.</p>{{/hasSessions}}
        <h2>Audit</h2>
        <form method="get" action="/console/agents/{{id}}" class="filter">
        <label>Tool <input name="tool" value="{{filterTool}}"></label>
        <label>Outcome <select name="outcome"><option value="">any</option>{{#outcomes}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{value}}</option>{{/outcomes}}</select></label>
        <button type="submit">Filter</button>
        </form>
        {{#hasEvents}}
        <table class="audit" id="audit"><thead><tr><th>Time</th><th>Tool</th><th>Project</th><th>Outcome</th></tr></thead><tbody>
        {{#events}}<tr><td data-label="Time">{{time}}</td><td data-label="Tool"><code>{{tool}}</code></td><td data-label="Project">{{project}}</td><td data-label="Outcome"><span class="outcome outcome-{{outcome}}">{{outcome}}</span> {{errorCode}} <span class="tier">{{tier}}</span></td></tr>{{/events}}
        </tbody></table>
        {{#nextCursor}}<p><a href="/console/agents/{{id}}?cursor={{nextCursor}}&amp;tool={{filterTool}}&amp;outcome={{filterOutcome}}">Older events</a></p>{{/nextCursor}}
        {{/hasEvents}}
        {{^hasEvents}}<p>No calls yet.</p>{{/hasEvents}}
        """
}
