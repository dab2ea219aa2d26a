/// The console's Admin page and the read-only tracker.
enum AdminTemplates {
    static let admin = """
        <h1>Admin</h1>
        <h2>People</h2>
        <table class="users"><thead><tr><th>Person</th><th>Role</th><th>Agents</th><th>Access</th></tr></thead><tbody>
        {{#users}}
        <tr>
        <td data-label="Person">{{name}} <code>{{id}}</code></td>
        <td data-label="Role">{{role}}</td>
        <td data-label="Agents">
        <form method="post" action="/console/admin/users/{{id}}/entitlement"><input type="hidden" name="csrf" value="{{csrf}}">
        {{#entitled}}<input type="hidden" name="enabled" value="off"><span class="state state-connected">on</span> <button type="submit">Switch off</button>{{/entitled}}
        {{^entitled}}<input type="hidden" name="enabled" value="on"><span class="state state-revoked">off</span> <button type="submit">Switch on</button>{{/entitled}}
        </form>
        </td>
        <td data-label="Access">
        {{#isSelf}}you{{/isSelf}}
        {{^isSelf}}
        <form method="post" action="/console/admin/users/{{id}}/block"><input type="hidden" name="csrf" value="{{csrf}}">
        {{#blocked}}<input type="hidden" name="blocked" value="no"><span class="state state-revoked">blocked</span> <button type="submit">Unblock</button>{{/blocked}}
        {{^blocked}}<input type="hidden" name="blocked" value="yes"><span class="state state-idle">active</span> <button type="submit" class="danger">Block</button>{{/blocked}}
        </form>
        {{/isSelf}}
        </td>
        </tr>
        {{/users}}
        </tbody></table>
        <p class="legend">Switching agents off, or blocking a person, stops every agent of theirs at its next call and ends its sessions.</p>
        <h2>Recent owner and admin actions</h2>
        <table><thead><tr><th>Time</th><th>Who</th><th>What</th><th>On</th><th>Detail</th></tr></thead><tbody>
        {{#actions}}<tr><td data-label="Time">{{time}}</td><td data-label="Who">{{actor}}</td><td data-label="What">{{action}}</td><td data-label="On"><code>{{subject}}</code></td><td data-label="Detail">{{detail}}</td></tr>{{/actions}}
        </tbody></table>
        """

    static let projects = """
        <h1>Tracker</h1>
        <p>Read-only, from {{trackerName}}. Agents change the tracker through their tools; every change names its actor.</p>
        <ul class="projects">
        {{#projects}}<li><a href="/console/tracker/{{key}}"><b>{{key}}</b> {{name}}</a><br><span>{{description}}</span></li>{{/projects}}
        </ul>
        """

    static let issues = """
        <h1>{{key}} · {{name}}</h1>
        <table class="issues"><thead><tr><th>Issue</th><th>Title</th><th>State</th><th>Priority</th></tr></thead><tbody>
        {{#issues}}<tr><td data-label="Issue"><a href="{{href}}"{{#external}} rel="noopener noreferrer" class="plane-link"{{/external}}>{{projectKey}}-{{number}}</a>{{#external}} <span>(in Plane)</span>{{/external}}</td><td data-label="Title">{{title}}</td><td data-label="State">{{state}}</td><td data-label="Priority">{{priority}}</td></tr>{{/issues}}
        </tbody></table>
        {{#nextAfter}}<p><a href="/console/tracker/{{key}}?after={{nextAfter}}">More issues</a></p>{{/nextAfter}}
        """

    static let issue = """
        <h1>{{key}}: {{title}}</h1>
        <dl class="facts">
        <dt>State</dt><dd>{{state}}</dd>
        <dt>Priority</dt><dd>{{priority}}</dd>
        <dt>Created by</dt><dd>{{createdBy}}</dd>
        </dl>
        <div class="text">{{description}}</div>
        {{#blocks}}<h3>{{name}}</h3><div class="text">{{text}}</div>{{/blocks}}
        <h2>History</h2>
        <ol class="history" id="history">
        {{#history}}<li><span class="time">{{time}}</span> <b>{{actor}}</b> {{summary}}</li>{{/history}}
        </ol>
        <h2>Comments</h2>
        {{#comments}}<article class="comment"><p class="meta"><b>{{author}}</b> · {{time}}</p><div class="text">{{body}}</div></article>{{/comments}}
        {{^comments}}<p>No comments.</p>{{/comments}}
        """
}
