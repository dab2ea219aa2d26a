#!/usr/bin/env python3
"""Contract check of Plane's public API (/api/v1): the shapes the agent-gateway Plane adapter relies on.

  python3 plane-contract-check.py --base-url URL --workspace acme --api-key-file F [--project IDENT]

Runs against the test double (Tests/Doubles/plane-api-double.py) or a real Plane. It only creates data
(work items and comments, tagged with an external_source unique to the run), never deletes, waits out 429s
within --deadline seconds, prints one line per check (PASS/FAIL/SKIP) and exits 1 when a check fails.
Python 3 standard library only; the key is read from the file and never printed.
"""
import argparse, http.client, json, re, sys, time, uuid
from urllib.parse import urlencode, urlsplit

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
CURSOR = re.compile(r"^\d+:-?\d+:[01]$")
ENVELOPE = {"grouped_by", "sub_grouped_by", "total_count", "next_cursor", "prev_cursor", "next_page_results",
            "prev_page_results", "count", "total_pages", "total_results", "extra_stats", "results"}
USER_LITE = {"id", "first_name", "last_name", "email", "avatar", "avatar_url", "display_name"}
# The exact keys of Plane's serializers (plane/api/serializers at 4ca6d6c7), as the adapter will decode them.
ISSUE_KEYS = set("id type_id created_at updated_at deleted_at point name description_html description_binary priority "
                 "start_date target_date sequence_id sort_order completed_at archived_at is_draft external_source "
                 "external_id created_by updated_by project workspace parent state estimate_point type assignees "
                 "labels".split())
COMMENT_KEYS = set("id created_at updated_at deleted_at comment_html attachments access external_source external_id "
                   "edited_at created_by updated_by project workspace description issue actor parent".split())
STATE_KEYS = set("id created_at updated_at deleted_at name description color slug sequence group is_triage default "
                 "external_source external_id created_by updated_by project workspace".split())
LABEL_KEYS = set("id created_at updated_at deleted_at name description color sort_order external_source external_id "
                 "created_by updated_by workspace project parent".split())
PROJECT_KEYS = set("id total_members total_cycles total_modules is_member member_role is_deployed cover_image_url "
                   "created_at updated_at deleted_at name description description_text description_html network "
                   "identifier emoji icon_prop module_view cycle_view issue_views_view page_view intake_view "
                   "is_time_tracking_enabled is_issue_type_enabled guest_view_all_features cover_image archive_in "
                   "close_in logo_props archived_at timezone external_source external_id created_by updated_by "
                   "workspace default_assignee project_lead cover_image_asset estimate default_state".split())


def keys_problem(objs, expected):
    """'' when every object has exactly the expected keys; else the first difference."""
    for o in objs:
        if set(o) != expected:
            return "extra %s missing %s" % (sorted(set(o) - expected), sorted(expected - set(o)))
    return ""
# description_html in -> what Plane stores: outputs of Plane's own code path (lxml 6.1.0 / libxml2 2.14.6 /
# nh3 0.2.18 with plane/utils/content_validator.py settings), inputs already trimmed as DRF trims them.
HTML_CASES = [
    ("<p>Hello <strong>world</strong> &amp; <em>friends</em></p>",
     "<p>Hello <strong>world</strong> &amp; <em>friends</em></p>"),
    ("plain text line", "<span>plain text line</span>"),
    ("<h2>Title</h2>\n<p>one<br>two</p>", "<div><h2>Title</h2>\n<p>one<br>two</p></div>"),
    ('<p onclick="steal()">hi<script>alert(1)</script></p>', "<p>hi</p>"),
    ('<p><a href="javascript:alert(1)">x</a> <a href="https://example.com/?a=1&b=2">y</a></p>',
     '<p><a rel="noopener noreferrer">x</a> <a href="https://example.com/?a=1&amp;b=2" rel="noopener noreferrer">y</a>'
     '</p>'),
    ("<ul><li>one<li>two</ul>", "<ul><li>one</li><li>two</li></ul>"),
    ('<pre><code class="language-swift">let a = b < c</code></pre>',
     '<pre><code class="language-swift">let a = b &lt; c</code></pre>'),
    ("<table><tr><td>1</td></tr></table>", "<table><tbody><tr><td>1</td></tr></tbody></table>"),
    ("<p>caf\u00e9 \u00a0 \"quoted\" 'single'</p>", "<p>caf\u00e9 &nbsp; \"quoted\" 'single'</p>"),
    ("<style>p{}</style><p>styled</p>", "<p>styled</p>"),
]


class Client:
    def __init__(self, base_url, key, deadline):
        u = urlsplit(base_url)
        self.host, self.port, self.key, self.deadline = u.hostname, u.port or 80, key, deadline
        self.requests = self.waited = 0
        self.throttled = []  # (Retry-After, X-RateLimit-Remaining, body) of each 429 met

    def call(self, method, path, body=None, query=None, key=None, raw_path=False):
        """Returns (status, headers, parsed JSON or text). Waits out a 429 (Retry-After) within the deadline."""
        url = path if raw_path else "/api/v1/" + path
        if query:
            url += "?" + urlencode(query)
        headers = {"X-API-Key": self.key if key is None else key} if key != "" else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for _ in range(5):
            if time.monotonic() > self.deadline:
                raise TimeoutError("deadline reached before %s %s" % (method, url.split("?")[0]))
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                text = resp.read(8 << 20).decode("utf-8", "replace")
            finally:
                conn.close()
            self.requests += 1
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if resp.status == 429 and "error_code" in text:
                self.throttled.append((hdrs.get("retry-after"), hdrs.get("x-ratelimit-remaining"), text))
                wait = min(int(hdrs.get("retry-after", "5") or 5), 65, max(0, int(self.deadline - time.monotonic())))
                self.waited += wait
                time.sleep(wait)
                continue
            try:
                return resp.status, hdrs, json.loads(text) if text else None
            except ValueError:
                return resp.status, hdrs, text
        raise TimeoutError("still throttled (429) after 5 waits on %s %s" % (method, url.split("?")[0]))


class Checker:
    def __init__(self):
        self.failed = self.passed = self.skipped = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % name)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, detail))
        sys.stdout.flush()
        return ok

    def skip(self, name, why):
        self.skipped += 1
        print("SKIP %s: %s" % (name, why))


def shape(obj, fields):
    """Missing or wrongly typed fields, as text ('' when all present). fields: name -> predicate."""
    if not isinstance(obj, dict):
        return "not an object: %r" % (obj,)[:200]
    bad = [f for f, ok in fields.items() if f not in obj or not ok(obj[f])]
    return ", ".join("%s=%r" % (f, obj.get(f, "<missing>")) for f in bad)


is_uuid = lambda v: isinstance(v, str) and bool(UUID.match(v))
is_str = lambda v: isinstance(v, str)
is_opt_str = lambda v: v is None or isinstance(v, str)
is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
is_bool = lambda v: isinstance(v, bool)
is_iso = lambda v: isinstance(v, str) and bool(ISO.match(v))
is_uuid_list = lambda v: isinstance(v, list) and all(is_uuid(x) for x in v)


def envelope_problem(body, per_page=None):
    if not isinstance(body, dict) or set(body) != ENVELOPE:
        return "envelope keys %r" % (sorted(body) if isinstance(body, dict) else body)
    if not (CURSOR.match(str(body["next_cursor"])) and CURSOR.match(str(body["prev_cursor"]))):
        return "cursors %r %r" % (body["next_cursor"], body["prev_cursor"])
    if body["count"] != len(body["results"]) or (per_page and body["count"] > per_page):
        return "count %r for %d results" % (body["count"], len(body["results"]))
    if not all(is_int(body[k]) for k in ("total_count", "total_pages", "total_results")):
        return "totals not integers"
    return ""


def walk(c, path, per_page, query=None):
    """Follows next_cursor from the first page; returns (pages, problem)."""
    pages, cursor = [], None
    for _ in range(200):
        q = dict(query or {}, per_page=per_page)
        if cursor:
            q["cursor"] = cursor
        st, _, body = c.call("GET", path, query=q)
        if st != 200 or envelope_problem(body, per_page):
            return pages, "page %d: status %s %s" % (len(pages), st, envelope_problem(body, per_page) if st == 200
                                                       else body)
        pages.append(body)
        if body["prev_page_results"] != (len(pages) > 1):
            return pages, "prev_page_results %r on page %d" % (body["prev_page_results"], len(pages))
        if not body["next_page_results"]:
            return pages, ""
        cursor = body["next_cursor"]
    return pages, "more than 200 pages"


def run(c, ck, ws, want_project):
    run_tag = "contract-check-%d-%s" % (time.time(), uuid.uuid4().hex[:8])
    st, _, body = c.call("GET", "users/me/", key="")
    ck.check("auth.missing-key-401", st == 401 and isinstance(body, dict) and is_str(body.get("detail")), (st, body))
    st, _, body = c.call("GET", "users/me/", key="wrong-" + uuid.uuid4().hex)
    ck.check("auth.wrong-key-403", st == 403 and isinstance(body, dict) and is_str(body.get("detail")), (st, body))
    st, hdrs, me = c.call("GET", "users/me/")
    if not ck.check("users.me", st == 200 and not shape(me, {f: lambda v: True for f in USER_LITE}) and
                    is_uuid(me["id"]), (st, me)):
        return
    remaining, reset = hdrs.get("x-ratelimit-remaining", ""), hdrs.get("x-ratelimit-reset", "")
    ck.check("ratelimit.headers", remaining.isdigit() and reset.isdigit() and
             time.time() - 5 <= int(reset) <= time.time() + 3700, "remaining=%r reset=%r" % (remaining, reset))

    # projects
    base = "workspaces/%s/" % ws
    st, _, body = c.call("GET", base + "projects/")
    ok = st == 200 and not envelope_problem(body)
    if not ck.check("projects.list", ok, (st, envelope_problem(body) if st == 200 else body)):
        return
    projects = body["results"]
    probs = [shape(p, {"id": is_uuid, "identifier": is_str, "name": is_str, "is_member": is_bool,
                       "member_role": lambda v: v is None or is_int(v), "archived_at": is_opt_str}) for p in projects]
    ck.check("projects.fields", not any(probs), probs)
    problem = keys_problem(projects, PROJECT_KEYS | {"sort_order"})
    ck.check("projects.list-keys", not problem, problem)
    mine = [p for p in projects if p.get("is_member") and (not want_project or p["identifier"] == want_project)]
    if not mine:
        ck.check("projects.choose", False, "no project the key's user is a member of%s" % (
            " with identifier %s" % want_project if want_project else ""))
        return
    project = mine[0]
    others = [p for p in projects if p.get("is_member") and p["id"] != project["id"]]
    pid, ident = project["id"], project["identifier"]
    pbase = base + "projects/%s/" % pid
    st, _, body = c.call("GET", pbase)
    ck.check("projects.detail", st == 200 and isinstance(body, dict) and body.get("id") == pid and
             body.get("identifier") == ident, (st, body))
    problem = keys_problem([body], PROJECT_KEYS) if st == 200 else "status %s" % st
    ck.check("projects.detail-keys(no sort_order)", not problem, problem)
    st, _, body = c.call("GET", base + "projects/%s/" % uuid.uuid4())
    ck.check("projects.detail-404", st == 404 and isinstance(body, dict) and is_str(body.get("error")), (st, body))
    st, _, body = c.call("GET", base + "projects/", query={"per_page": 1001})
    ck.check("pagination.per-page-over-1000-400", st == 400 and isinstance(body, dict) and "detail" in body,
             (st, body))
    st, _, body = c.call("GET", base + "projects/", query={"cursor": "not-a-cursor"})
    ck.check("pagination.bad-cursor-400", st == 400 and isinstance(body, dict) and "detail" in body, (st, body))

    # states, labels, members
    st, _, body = c.call("GET", pbase + "states/")
    states = body.get("results", []) if isinstance(body, dict) else []
    probs = [shape(s, {"id": is_uuid, "name": is_str, "group": lambda v: v in (
        "backlog", "unstarted", "started", "completed", "cancelled"), "color": is_str, "default": is_bool,
        "sequence": lambda v: isinstance(v, (int, float)), "project": lambda v: v == pid}) for s in states]
    ck.check("states.list", st == 200 and not envelope_problem(body) and states and not any(probs) and
             sum(s["default"] for s in states) == 1, (st, probs or body))
    problem = keys_problem(states, STATE_KEYS)
    ck.check("states.keys", not problem, problem)
    by_group = {}
    for s in states:
        by_group.setdefault(s["group"], s["id"])
    st, _, body = c.call("GET", pbase + "labels/")
    labels = body.get("results", []) if isinstance(body, dict) else []
    probs = [shape(lb, {"id": is_uuid, "name": is_str, "color": is_str, "project": lambda v: v == pid,
                        "parent": is_opt_str}) for lb in labels]
    ck.check("labels.list", st == 200 and not envelope_problem(body) and not any(probs), (st, probs or body))
    problem = keys_problem(labels, LABEL_KEYS)
    ck.check("labels.keys", not problem, problem)
    st, _, body = c.call("GET", pbase + "members/")
    ok = st == 200 and isinstance(body, list) and all(not shape(u, {f: lambda v: True for f in USER_LITE})
                                                      for u in body) and me["id"] in [u["id"] for u in body]
    ck.check("members.project", ok, (st, body))
    st, _, body = c.call("GET", base + "members/")
    ok = st == 200 and isinstance(body, list) and all(isinstance(u, dict) and is_int(u.get("role")) and
                                                      USER_LITE <= set(u) for u in body)
    ck.check("members.workspace", ok and me["id"] in [u["id"] for u in body], (st, body))

    # work items
    issues = pbase + "issues/"
    label_ids = [labels[0]["id"]] if labels else []
    first = {"name": "contract check %s" % run_tag, "description_html": HTML_CASES[0][0], "priority": "high",
             "state": by_group.get("unstarted"), "labels": label_ids, "assignees": [me["id"]],
             "external_source": run_tag, "external_id": "wi-1"}
    st, _, item = c.call("POST", issues, first)
    fields = {"id": is_uuid, "sequence_id": is_int, "name": lambda v: v == first["name"],
              "description_html": lambda v: v == HTML_CASES[0][1], "priority": lambda v: v == "high",
              "state": lambda v: v == first["state"], "labels": lambda v: v == label_ids,
              "assignees": lambda v: v == [me["id"]], "external_source": lambda v: v == run_tag,
              "external_id": lambda v: v == "wi-1", "created_by": lambda v: v == me["id"], "created_at": is_iso,
              "updated_at": is_iso, "project": lambda v: v == pid, "workspace": is_uuid, "parent": is_opt_str,
              "completed_at": is_opt_str, "archived_at": is_opt_str, "start_date": is_opt_str}
    if not ck.check("work-items.create-201", st == 201 and not shape(item, fields), (st, shape(item, fields) or item)):
        return
    iid, seq = item["id"], item["sequence_id"]
    problem = keys_problem([item], ISSUE_KEYS)
    ck.check("work-items.keys", not problem, problem)
    st, _, body = c.call("POST", issues, dict(first, name="duplicate"))
    ck.check("work-items.duplicate-external-id-409", st == 409 and isinstance(body, dict) and
             body.get("id") == iid and is_str(body.get("error")), (st, body))
    for name, extra, key in (("invalid-state", {"state": str(uuid.uuid4())}, "state"),
                             ("invalid-label", {"labels": [str(uuid.uuid4())]}, "labels"),
                             ("invalid-assignee", {"assignees": [str(uuid.uuid4())]}, "assignees"),
                             ("invalid-priority", {"priority": "bogus"}, "priority"),
                             ("missing-name", {"name": None}, "name")):
        payload = dict({"name": "invalid", "external_source": run_tag, "external_id": "bad-" + name}, **extra)
        if payload["name"] is None:
            del payload["name"]
        st, _, body = c.call("POST", issues, payload)
        ck.check("work-items.%s-400" % name, st == 400 and isinstance(body, dict) and key in body, (st, body))
    if others:
        st, _, body = c.call("GET", base + "projects/%s/states/" % others[0]["id"])
        foreign = body["results"][0]["id"] if st == 200 and body.get("results") else None
        st, _, body = c.call("POST", issues, {"name": "x", "state": foreign})
        ck.check("work-items.state-of-other-project-400", st == 400 and isinstance(body, dict) and
                 "non_field_errors" in body, (st, body))
    else:
        ck.skip("work-items.state-of-other-project-400", "the key's user is a member of one project only")
    st, _, body = c.call("POST", issues, {"name": "empty description", "description_html": ""})
    ck.check("work-items.empty-description-html-400", st == 400 and isinstance(body, dict), (st, body))
    st, _, body = c.call("GET", issues + iid + "/")
    ck.check("work-items.get", st == 200 and isinstance(body, dict) and body.get("id") == iid and
             body.get("labels") == label_ids, (st, body))
    for prefix in ("issues", "work-items"):
        st, _, body = c.call("GET", base + "%s/%s-%d/" % (prefix, ident, seq))
        ck.check("work-items.by-identifier(%s)" % prefix, st == 200 and isinstance(body, dict) and
                 body.get("id") == iid, (st, body))
    st, _, body = c.call("GET", base + "issues/%s-%d/" % (ident, seq + 100000))
    ck.check("work-items.by-identifier-404", st == 404 and isinstance(body, dict) and is_str(body.get("error")),
             (st, body))
    st, _, body = c.call("GET", issues, query={"external_id": "wi-1", "external_source": run_tag})
    ck.check("work-items.by-external-id", st == 200 and isinstance(body, dict) and body.get("id") == iid, (st, body))
    patch = {"name": "patched %s" % run_tag, "state": by_group.get("completed"), "priority": "low", "labels": []}
    st, _, body = c.call("PATCH", issues + iid + "/", patch)
    ck.check("work-items.patch-200", st == 200 and isinstance(body, dict) and body.get("name") == patch["name"] and
             body.get("state") == patch["state"] and body.get("priority") == "low" and body.get("labels") == [] and
             body.get("updated_by") == me["id"] and body.get("assignees") == [me["id"]] and
             is_str(body.get("completed_at")), (st, body))
    st, _, body = c.call("PATCH", issues + str(uuid.uuid4()) + "/", {"name": "x"})
    ck.check("work-items.patch-404", st == 404 and isinstance(body, dict) and is_str(body.get("error")), (st, body))
    st, _, body = c.call("PUT", issues + iid + "/", {"name": "x"})
    ck.check("work-items.put-405", st == 405, (st, body))
    created = [iid]
    for n, (html_in, html_out) in enumerate(HTML_CASES[1:], start=2):
        st, _, body = c.call("POST", pbase + "work-items/", {"name": "html case %d" % n, "description_html": html_in,
                                                            "external_source": run_tag, "external_id": "wi-%d" % n})
        if st == 201:
            created.append(body["id"])
        ck.check("work-items.description-html-%d" % n, st == 201 and body.get("description_html") == html_out,
                 "status %s sent %r stored %r expected %r" % (st, html_in, isinstance(body, dict) and
                                                               body.get("description_html"), html_out))
    if len(created) > 1:  # PATCH onto another item's external pair: 409 carrying the PATCHED item's own id
        st, _, body = c.call("PATCH", issues + iid + "/", {"external_source": run_tag, "external_id": "wi-2"})
        ck.check("work-items.patch-duplicate-external-id-409", st == 409 and isinstance(body, dict) and
                 body.get("id") == iid and is_str(body.get("error")), (st, body))
    st, _, body = c.call("POST", issues + str(uuid.uuid4()) + "/comments/", {"comment_html": "<p>x</p>"})
    ck.check("comments.unknown-work-item-400", st == 400 and body == {"error": "The payload is not valid"}, (st, body))
    pages, problem = walk(c, issues, 2)
    seen = [i["id"] for p in pages for i in p["results"]]
    missing = set(created) - set(seen)
    ck.check("work-items.pagination-per-page-2", not problem and not missing and len(seen) == len(set(seen)) and
             len(pages) >= 3 and pages[0]["total_results"] == len(seen),
             problem or "pages=%d seen=%d missing=%d duplicates=%d total_results=%r" % (
                 len(pages), len(seen), len(missing), len(seen) - len(set(seen)), pages and pages[0]["total_results"]))
    order = [i["created_at"] for p in pages for i in p["results"]]
    ck.check("work-items.list-newest-first", order == sorted(order, reverse=True), order[:4])

    # comments
    comments = issues + iid + "/comments/"
    html = "<p>hello <b>world</b></p><script>kept()</script>"
    st, _, com = c.call("POST", comments, {"comment_html": html, "external_source": run_tag, "external_id": "c-1"})
    fields = {"id": is_uuid, "comment_html": is_str, "actor": lambda v: v == me["id"], "issue": lambda v: v == iid,
              "project": lambda v: v == pid, "external_source": lambda v: v == run_tag,
              "external_id": lambda v: v == "c-1", "created_at": is_iso, "created_by": lambda v: v == me["id"],
              "access": lambda v: v == "INTERNAL"}
    if ck.check("comments.create-201", st == 201 and not shape(com, fields), (st, shape(com, fields) or com)):
        ck.check("comments.html-stored-verbatim", com["comment_html"] == html, repr(com["comment_html"]))
        problem = keys_problem([com], COMMENT_KEYS)
        ck.check("comments.create-keys(no is_member)", not problem, problem)
        st, _, body = c.call("POST", comments, {"comment_html": "<p>again</p>", "external_source": run_tag,
                                                "external_id": "c-1"})
        ck.check("comments.duplicate-external-id-409", st == 409 and isinstance(body, dict) and
                 body.get("id") == com["id"], (st, body))
        st, _, body = c.call("POST", issues + created[1] + "/comments/", {
            "comment_html": "<p>other item</p>", "external_source": run_tag, "external_id": "c-1"})
        ck.check("comments.duplicate-is-project-wide-409", st == 409 and isinstance(body, dict) and
                 body.get("id") == com["id"], (st, body))
        ids = [com["id"]]
        for n in (2, 3):
            st, _, body = c.call("POST", pbase + "work-items/%s/comments/" % iid, {
                "comment_html": "<p>comment %d</p>" % n, "external_source": run_tag, "external_id": "c-%d" % n})
            ids += [body["id"]] if st == 201 else []
        pages, problem = walk(c, comments, 2)
        seen = [x["id"] for p in pages for x in p["results"]]
        ck.check("comments.pagination-per-page-2", not problem and len(ids) == 3 and sorted(seen) == sorted(ids) and
                 all(x.get("is_member") is True for p in pages for x in p["results"]) and
                 not keys_problem([x for p in pages for x in p["results"]], COMMENT_KEYS | {"is_member"}),
                 problem or "created %d seen %d" % (len(ids), len(seen)))
    # routing
    st, hdrs, _ = c.call("GET", "/api/v1/users/me", raw_path=True)
    ck.check("routing.missing-trailing-slash-301", st == 301 and hdrs.get("location", "").endswith("/users/me/"),
             (st, hdrs.get("location")))
    st, _, body = c.call("GET", base + "no-such-route/")
    ck.check("routing.unknown-404", st == 404, (st, body))


def run_double_only(c, ck):
    st, _, _ = c.call("GET", "/_double/state", raw_path=True)
    if st != 200:
        ck.skip("double.*", "the server is not the test double (no /_double/state)")
        return
    c.call("POST", "/_double/faults", {"count": 1, "status": 429, "retry_after": 7}, raw_path=True)
    conn = http.client.HTTPConnection(c.host, c.port, timeout=30)
    conn.request("GET", "/api/v1/users/me/", headers={"X-API-Key": c.key})
    resp = conn.getresponse()
    body = json.loads(resp.read() or b"null")
    conn.close()
    ck.check("double.fault-429-as-plane", resp.status == 429 and resp.getheader("Retry-After") == "7" and
             body == {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}, (resp.status, body))
    st, _, calls = c.call("GET", "/_double/calls", raw_path=True)
    ck.check("double.no-destructive-calls", st == 200 and calls["destructive"] == [], calls.get("destructive"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--api-key-file", required=True)
    ap.add_argument("--project", help="project identifier to use (default: the first the key's user is member of)")
    ap.add_argument("--deadline", type=float, default=600, help="seconds for the whole run (default 600)")
    args = ap.parse_args()
    try:
        with open(args.api_key_file, "rb") as f:
            key = f.read(4097).decode().strip()
        assert key and len(key) <= 4096
    except (OSError, UnicodeDecodeError, AssertionError):
        sys.exit("plane-contract-check: cannot read an API key from %s; write the key into that file" %
                 args.api_key_file)
    c, ck = Client(args.base_url, key, time.monotonic() + args.deadline), Checker()
    started = time.monotonic()
    try:
        run(c, ck, args.workspace, args.project)
        run_double_only(c, ck)
        if c.throttled:
            retry, remaining, text = c.throttled[0]
            ck.check("ratelimit.429-as-plane", str(retry).isdigit() and remaining is None and json.loads(text) == {
                "error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}, c.throttled[0])
        else:
            ck.skip("ratelimit.429-as-plane", "no 429 met during the run")
    except (OSError, TimeoutError, http.client.HTTPException) as e:
        ck.check("run.completed", False, "%s: %s; is the server up at %s?" % (type(e).__name__, e, args.base_url))
    print("%d passed, %d failed, %d skipped; %d requests, %.0f s (%d s waiting out 429s)" % (
        ck.passed, ck.failed, ck.skipped, c.requests, time.monotonic() - started, c.waited))
    sys.exit(1 if ck.failed else 0)


if __name__ == "__main__":
    main()
