#!/usr/bin/env python3
"""TEST DOUBLE of Plane's public REST API (/api/v1). Not Plane.

Written from makeplane/plane apps/api at 4ca6d6c7 and checked against a live Plane of that commit
(Tests/Doubles/README.md says what it covers and what it leaves out). Standard library only:

  python3 plane-api-double.py --port 0 --api-key-file F [--rate-limit N] [--seed F.json]

Prints one line "listening on http://127.0.0.1:PORT", logs "METHOD path status" to stderr (never
headers or bodies), exits on SIGTERM/SIGINT. Test controls live under /_double/, a path Plane lacks.
"""
import argparse, hmac, json, math, re, signal, socket, sys, threading, time, uuid
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 5 * 1024 * 1024  # Plane's DATA_UPLOAD_MAX_MEMORY_SIZE (FILE_SIZE_LIMIT), answered 413 by its middleware
MAX_CALLS, MAX_CONNECTIONS, MAX_FAULTS = 20000, 64, 1000
NOT_FOUND = {"error": "The requested resource does not exist."}
SERVER_ERROR = {"error": "Something went wrong please try again later"}
THROTTLED = {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}
STATES = [("Backlog", "#60646C", "backlog", True), ("Todo", "#60646C", "unstarted", False),  # DEFAULT_STATES but
          ("In Progress", "#F59E0B", "started", False), ("Done", "#46A758", "completed", False),  # triage, which the
          ("Cancelled", "#9AA4BC", "cancelled", False)]  # API never shows
PRIORITIES = ("urgent", "high", "medium", "low", "none")
DEFAULT_SEED = {  # what the seeding of the live Plane it was compared with made
    "workspace": {"slug": "acme", "name": "Acme"},
    "users": [{"key": "alice", "email": "alice@acme.test", "first_name": "Alice", "last_name": "Anders", "role": 20},
              {"key": "bot", "email": "bot@acme.test", "first_name": "agent-gateway", "last_name": "bot",
               "display_name": "agent-gateway bot", "is_bot": True, "role": 20},
              {"key": "bob", "email": "bob@acme.test", "first_name": "Bob", "last_name": "Berg", "role": 15}],
    "api_key_user": "bot",
    "projects": [{"identifier": "WEB", "name": "Website", "members": {"bot": 20, "alice": 15}},
                 {"identifier": "OPS", "name": "Operations", "members": {"bot": 20, "bob": 15}},
                 {"identifier": "SEC", "name": "Security", "network": 0, "members": {"alice": 20}, "labels": []}],
    "labels": [["bug", "#e5484d"], ["feature", "#3e63dd"], ["docs", "#30a46c"]],
}


def now():  # DRF DateTimeField: isoformat(), "+00:00" written "Z" (microseconds always, so the text sorts)
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_id():
    return str(uuid.uuid4())


# ---- description_html as Plane stores it: IssueSerializer.validate runs lxml.html.fromstring/tostring, then nh3.clean
# with plane/utils/content_validator.py's tags and attributes. A stdlib approximation, equal to Plane's own code path
# (lxml 6.1.0, libxml2 2.14.6, nh3 0.2.18) on 780 generated well-nested documents; see the README for what differs.
VOID = set("area base br col embed hr img input link meta source track wbr".split())
HEAD = set("base link meta script style title".split())
BLOCK = set("address blockquote caption center col colgroup dd del dir div dl dt fieldset form h1 h2 h3 h4 h5 h6 hr "
            "ins isindex legend li menu noscript ol optgroup option p pre table tbody td tfoot th thead tr ul".split())
CLOSES_P = set("address article aside blockquote div dl fieldset footer form h1 h2 h3 h4 h5 h6 header hr menu nav ol p "
               "pre section table ul".split())
TAGS = set("a abbr acronym area article aside b bdi bdo blockquote br caption center cite code col colgroup data dd "
           "del details dfn div dl dt em figcaption figure footer h1 h2 h3 h4 h5 h6 header hgroup hr i img ins kbd li "
           "map mark nav ol p pre q rp rt rtc ruby s samp small span strike strong sub summary sup table tbody td th "
           "thead time tr tt u ul var wbr mention-component label input image-component".split())
ANY_ATTR = set("class id title role aria-label aria-hidden style start type xmlns data-tight data-node-type data-type "
               "data-checked data-background-color data-text-color data-name data-id data-icon-name data-icon-color "
               "data-background data-emoji-unicode data-emoji-url data-logo-in-use data-block-type".split())
ATTRS = {"a": "href target", "img": "width height aspectratio alignment src alt title",
         "image-component": "id width height aspectratio src alignment status", "pre": "language",
         "mention-component": "id entity_identifier entity_name", "th": "colspan rowspan colwidth background style",
         "td": "colspan rowspan colwidth background textcolor style", "tr": "background textcolor style",
         "code": "language spellcheck", "input": "type checked"}
SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")


class _Tree(HTMLParser):  # nodes are [tag, [(name, value)], children] or str
    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.stack = [["#root", [], []]]
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag in CLOSES_P and any(n[0] == "p" for n in self.stack):
            while self.stack.pop()[0] != "p":
                pass
        if tag == "li" and self.stack[-1][0] == "li":
            self.stack.pop()
        if tag == "tr" and self.stack[-1][0] == "table":  # libxml2 adds the implied <tbody>
            self.stack[-1][2].append(["tbody", [], []])
            self.stack.append(self.stack[-1][2][-1])
        node = [tag, [(k, v or "") for i, (k, v) in enumerate(attrs) if k not in [a[0] for a in attrs[:i]]], []]
        self.stack[-1][2].append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        if any(n[0] == tag for n in self.stack[1:]):
            while self.stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        self.stack[-1][2].append(data)


def _clean(nodes):  # nh3: drop script/style with content, unwrap other tags, filter attributes and URL schemes
    out = []
    for n in nodes:
        if isinstance(n, str) or n[0] in ("script", "style"):
            out += [n] if isinstance(n, str) else []
        elif n[0] not in TAGS:
            out += _clean(n[2])
        else:
            ok = ANY_ATTR | set(ATTRS.get(n[0], "").split())
            attrs = [(k, v) for k, v in n[1] if k in ok and not (
                k in ("href", "src") and SCHEME.match(v) and SCHEME.match(v).group(1).lower() not in (
                    "http", "https", "mailto", "tel"))]
            out.append([n[0], attrs + ([("rel", "noopener noreferrer")] if n[0] == "a" else []), _clean(n[2])])
    return out


def _html(nodes):  # html5ever serialisation, as nh3 writes it
    def text(s, attr=False):
        s = s.replace("&", "&amp;").replace("\xa0", "&nbsp;")
        return s.replace('"', "&quot;") if attr else s.replace("<", "&lt;").replace(">", "&gt;")
    out = []
    for n in nodes:
        if isinstance(n, str):
            out.append(text(n))
        else:
            attrs = "".join(' %s="%s"' % (k, text(v, True)) for k, v in n[1])
            out.append("<%s%s>" % (n[0], attrs) + ("" if n[0] in VOID else _html(n[2]) + "</%s>" % n[0]))
    return "".join(out)


def plane_description_html(text):
    """What Plane stores for description_html (already trimmed as DRF trims), or None for 'Invalid HTML passed'."""
    top = _Tree(text).stack[0][2]
    elements = [n for n in top if not isinstance(n, str)]
    if not elements and not any(n.strip(" \t\n\r\f") for n in top):
        return None  # libxml2: "Document is empty" (it skips ASCII whitespace only; lxml below uses str.strip)
    if elements and elements[0][0] in HEAD and not any(n.strip(" \t\n\r\f") for n in top[:top.index(elements[0])]):
        return _html(_clean(top))  # lxml returns the whole document (it has a <head>); nh3 unwraps html/head/body
    if len(elements) == 1 and not any(isinstance(n, str) and n.strip() for n in top):
        return _html(_clean(top[top.index(elements[0]):]))  # the single element, with its tail

    def blocky(ns):
        return any(not isinstance(n, str) and (n[0] in BLOCK or blocky(n[2])) for n in ns)
    return _html(_clean([["div" if blocky(top) else "span", [], top]]))


# ---- DRF field validation, with DRF's messages
class Invalid(Exception):
    def __init__(self, body, status=400):
        self.body, self.status = body, status


def v_char(v, max_len=None, blank=True, null=False):
    if v is None and null:
        return None
    if v is None or isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise Invalid(["This field may not be null." if v is None else "Not a valid string."])
    v = str(v).strip()
    if not v and not blank:
        raise Invalid(["This field may not be blank."])
    if max_len and len(v) > max_len:
        raise Invalid(["Ensure this field has no more than %d characters." % max_len])
    return v


def v_choice(v, choices):
    for c in choices:
        if v is not None and str(c) == str(v):
            return c
    raise Invalid(["This field may not be null." if v is None else '"%s" is not a valid choice.' % v])


def v_pk(v, table, null=True):
    if v is None:
        if null:
            return None
        raise Invalid(["This field may not be null."])
    try:
        key = str(uuid.UUID(str(v)))
    except ValueError:
        raise Invalid(["\u201c%s\u201d is not a valid UUID." % v])
    if key not in table or table[key].get("deleted_at"):
        raise Invalid(['Invalid pk "%s" - object does not exist.' % key])
    return key


def v_pks(v, table):
    if not isinstance(v, list):
        raise Invalid(["This field may not be null." if v is None else
                       'Expected a list of items but got type "%s".' % type(v).__name__])
    out, errors = [], {}
    for i, item in enumerate(v):
        try:
            out.append(v_pk(item, table, null=False))
        except Invalid as e:
            errors[str(i)] = e.body
    if errors:
        raise Invalid(errors)
    return out


def v_date(v):
    try:
        return None if v is None else date.fromisoformat(str(v)).isoformat()
    except ValueError:
        raise Invalid(["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."])


def validate(data, spec, partial, required=()):
    if not isinstance(data, dict):
        raise Invalid({"non_field_errors": ["Invalid data. Expected a dictionary, but got %s." % type(data).__name__]})
    out, errors = {}, {}
    for field, check in spec.items():
        try:
            if field in data:
                out[field] = check(data[field])
            elif field in required and not partial:
                errors[field] = ["This field is required."]
        except Invalid as e:
            errors[field] = e.body
    if errors:
        raise Invalid(errors)
    return out


# ---- the store; permissions as plane/app/permissions reads memberships
class Store:
    def __init__(self, seed):
        self.lock = threading.RLock()
        self.users, self.ws_members, self.projects, self.members = {}, {}, {}, {}
        self.states, self.labels, self.issues, self.comments, self.sequence = {}, {}, {}, {}, {}
        self.ws = {"id": new_id(), "slug": seed["workspace"]["slug"], "name": seed["workspace"].get("name", "")}
        ids = {}
        for u in seed["users"]:
            ids[u["key"]] = uid = new_id()
            email = u.get("email", u["key"] + "@example.test")
            self.users[uid] = {"id": uid, "first_name": u.get("first_name", ""), "last_name": u.get("last_name", ""),
                               "email": email, "avatar": "", "avatar_url": None,
                               "display_name": u.get("display_name", email.split("@")[0])}
            self.ws_members[uid] = {"role": u.get("role", 15), "is_active": True, "is_bot": u.get("is_bot", False)}
        self.key_user = ids[seed["api_key_user"]]
        for p in seed["projects"]:
            pid = self.add_project(p, self.key_user)
            for key, role in p.get("members", {}).items():
                self.add_member(pid, ids[key], role)
            for name, color in p.get("labels", seed.get("labels", [])):
                self.add_label(pid, name, color)

    def add_project(self, p, creator):
        pid, t, ws = new_id(), now(), self.ws["id"]
        self.projects[pid] = {
            "id": pid, "created_at": t, "updated_at": t, "deleted_at": None, "name": p.get("name", p["identifier"]),
            "description": "", "description_text": None, "description_html": None, "network": p.get("network", 2),
            "identifier": p["identifier"], "emoji": None, "icon_prop": None, "module_view": False, "cycle_view": False,
            "issue_views_view": False, "page_view": True, "intake_view": False, "is_time_tracking_enabled": False,
            "is_issue_type_enabled": False, "guest_view_all_features": False, "cover_image": None, "archive_in": 0,
            "close_in": 0, "logo_props": {"icon": {"name": "mood", "color": "#6d7b8a"}, "in_use": "icon"},
            "archived_at": None, "timezone": "UTC", "external_source": None, "external_id": None,
            "created_by": creator, "updated_by": None, "workspace": ws, "default_assignee": None,
            "project_lead": None, "cover_image_asset": None, "estimate": None, "default_state": None}
        self.sequence[pid] = 0
        for i, (name, color, group, default) in enumerate(STATES):
            sid = new_id()
            self.states[sid] = {  # slug "": Plane bulk_creates these, so State.save never slugifies
                "id": sid, "created_at": t, "updated_at": t, "deleted_at": None, "name": name, "description": "",
                "color": color, "slug": "", "sequence": 15000.0 + 10000 * i, "group": group, "is_triage": False,
                "default": default, "external_source": None, "external_id": None, "created_by": creator,
                "updated_by": None, "project": pid, "workspace": ws}
        return pid

    def add_member(self, pid, uid, role):
        mid = new_id()
        self.members[mid] = {"id": mid, "project": pid, "member": uid, "role": role, "is_active": True,
                             "sort_order": 65535.0, "deleted_at": None}
        return mid

    def add_label(self, pid, name, color):
        lid, t = new_id(), now()
        orders = [lb["sort_order"] for lb in self.labels.values() if lb["project"] == pid]
        self.labels[lid] = {
            "id": lid, "created_at": t, "updated_at": t, "deleted_at": None, "name": name, "description": "",
            "color": color, "sort_order": max(orders) + 10000 if orders else 65535.0, "external_source": None,
            "external_id": None, "created_by": self.key_user, "updated_by": None, "workspace": self.ws["id"],
            "project": pid, "parent": None}

    def ws_role(self, slug, uid):
        m = self.ws_members.get(uid) if slug == self.ws["slug"] else None
        return m["role"] if m and m["is_active"] else None

    def p_role(self, slug, pid, uid):
        return next((m["role"] for m in self.members.values() if m["project"] == pid and m["member"] == uid
                     and m["is_active"] and slug == self.ws["slug"]), None)

    def allowed(self, perm, method, slug, uid, kw):
        safe, pid = method in ("GET", "HEAD", "OPTIONS"), kw.get("project_id") or kw.get("pk")  # DRF SAFE_METHODS
        ws_role, role = self.ws_role(slug, uid), self.p_role(slug, pid, uid)
        if perm == "project_base":  # ProjectBasePermission
            if safe or method == "POST":
                return ws_role is not None if safe else ws_role in (20, 15)
            return role == 20 or (role is not None and ws_role == 20)
        if perm == "entity" and kw.get("project_identifier") and safe:  # ProjectEntityPermission, by identifier
            return any(self.p_role(slug, p["id"], uid) for p in self.projects.values()
                       if p["identifier"] == kw["project_identifier"])
        return {"auth": True, "ws_admin": ws_role in (20, 15),  # WorkSpaceAdminPermission
                "entity": role is not None if safe else role in (20, 15),  # ProjectEntityPermission
                "member": any(self.p_role(slug, p, uid) for p in self.projects) if safe else (  # ProjectMember-
                    ws_role in (20, 15) if method == "POST" else role in (20, 15)),  # Permission
                "admin": role == 20, "lite": role is not None}[perm]  # ProjectAdmin-, ProjectLitePermission

    def dump(self):
        return {k: v for k, v in vars(self).items() if k != "lock"}


def paginate(q, rows, serialize, total=None):
    """plane/utils/paginator.py: BasePaginator.paginate over OffsetPaginator (per_page default and maximum 1000)."""
    try:
        per_page = int(q.get("per_page", "1000"))
    except ValueError:
        raise Invalid({"detail": "Invalid per_page parameter."})
    if per_page > 1000:
        raise Invalid({"detail": "Invalid per_page value. Cannot exceed 1000."})
    bits = q.get("cursor", "%d:0:0" % per_page).split(":")
    try:
        value, page, is_prev = float(bits[0]) if "." in bits[0] else int(bits[0]), int(bits[1]), int(bits[2])
        assert len(bits) == 3
    except (ValueError, IndexError, AssertionError):
        raise Invalid({"detail": "Invalid cursor parameter."})
    if per_page <= 0 or (is_prev and value != per_page):
        raise Invalid(SERVER_ERROR, 500)  # Plane: ZeroDivisionError, negative queryset slicing
    if page < 0:
        raise Invalid({"detail": "Error in parsing"})
    window = rows[page * per_page: (page + 1) * per_page + 1]
    total = len(rows) if total is None else total
    results = [serialize(r) for r in window[:per_page]]
    return 200, {"grouped_by": None, "sub_grouped_by": None, "total_count": total,
                 "next_cursor": "%d:%d:0" % (per_page, page + 1), "prev_cursor": "%d:%d:1" % (per_page, page - 1),
                 "next_page_results": len(window) > per_page, "prev_page_results": page > 0, "count": len(results),
                 "total_pages": math.ceil(total / per_page), "total_results": total, "extra_stats": None,
                 "results": results}


def newest_first(rows):
    return sorted(rows, key=lambda r: r["created_at"], reverse=True)


class Api:
    """Plane's views; each method takes a Request and returns (status, body)."""

    def __init__(self, store):
        self.s = store

    def user(self, uid):
        return dict(self.s.users[uid]) if uid in self.s.users else None

    def out(self, obj, q=None, first=None):  # BaseSerializer(fields=..., expand=...)
        obj = {"id": obj["id"], **(first or {}), **obj}  # id, then annotations, then the model's fields
        fields, expand = (q.fields, q.expand) if q else (None, None)
        obj = {k: v for k, v in obj.items() if not fields or k in fields}
        for k in [k for k in expand or () if obj.get(k)]:
            v = obj[k]
            if k in ("created_by", "updated_by", "actor", "default_assignee", "project_lead"):
                obj[k] = self.user(v)
            elif k == "state":
                obj[k] = {f: self.s.states[v][f] for f in ("id", "name", "color", "group")}
            elif k == "assignees":
                obj[k] = [self.user(u) for u in v]
            elif k == "labels":
                obj[k] = [dict(self.s.labels[lb]) for lb in v]
            elif k == "workspace":
                obj[k] = {"name": self.s.ws["name"], "slug": self.s.ws["slug"], "id": self.s.ws["id"]}
        return obj

    def active(self, r):  # the list querysets' filter project__archived_at__isnull=True
        p = self.s.projects.get(r.kw["project_id"])
        return p["id"] if p and not p["deleted_at"] and not p["archived_at"] else None

    def found(self, rows, key):
        match = [x for x in rows if x["id"] == key]
        if not match:
            raise Invalid(NOT_FOUND, 404)
        return match[0]

    # users and members
    def get_me(self, r):
        return 200, self.user(r.user)

    def get_ws_members(self, r):
        return 200, [dict(self.user(uid), role=m["role"]) for uid, m in reversed(list(self.s.ws_members.items()))]

    def get_members(self, r):
        ids = {m["member"] for m in self.s.members.values() if m["project"] == r.kw["project_id"]}
        return 200, [self.user(uid) for uid in reversed(list(self.s.users)) if uid in ids]

    def get_member(self, r):
        m = self.s.members.get(r.kw["pk"])
        return (200, self.user(m["member"])) if m and m["project"] == r.kw["project_id"] else (404, NOT_FOUND)

    def post_members(self, r):
        data = validate(r.data(), {"member": lambda v: v_pk(v, self.s.users, null=False),
                                   "role": lambda v: v_choice(v, (20, 15, 5))}, False, required=("member",))
        if data["member"] not in self.s.ws_members:
            raise Invalid({"member": ["Member not found in workspace"]})
        if any(m["project"] == r.kw["project_id"] and m["member"] == data["member"] for m in self.s.members.values()):
            return 400, {"error": "The payload is not valid"}  # IntegrityError: unique (project, member)
        role = data.get("role", 5)
        return 201, {"id": self.s.add_member(r.kw["project_id"], data["member"], role), "member": data["member"],
                     "role": role}

    # projects, states, labels
    def mine(self, p, r):  # the key user's active membership of project p
        return [m for m in self.s.members.values()
                if m["project"] == p["id"] and m["member"] == r.user and m["is_active"]]

    def project_out(self, p, r, list_view):
        mine = self.mine(p, r)
        extra = {"total_members": sum(1 for m in self.s.members.values() if m["project"] == p["id"] and m["is_active"]
                                      and not self.s.ws_members[m["member"]]["is_bot"]),
                 "total_cycles": 0, "total_modules": 0, "is_member": bool(mine),
                 "sort_order": mine[0]["sort_order"] if mine else None,
                 "member_role": mine[0]["role"] if mine else None,
                 "is_deployed": False, "cover_image_url": p["cover_image"]}
        if not list_view:
            del extra["sort_order"]  # the detail queryset does not annotate it, so DRF skips the field
        return self.out(p, r.q, extra)

    def get_projects(self, r):
        rows = [p for p in self.s.projects.values() if not p["deleted_at"] and (
            p["network"] == 2 or self.s.p_role(r.slug, p["id"], r.user))]
        rows.sort(key=lambda p: [(False, m["sort_order"]) for m in self.mine(p, r)] or [(True, 0)])  # NULLS LAST
        return paginate(r.q, rows, lambda p: self.project_out(p, r, True))

    def get_project(self, r):
        p = self.s.projects.get(r.kw["pk"])
        if not p or p["deleted_at"] or (p["network"] != 2 and self.s.p_role(r.slug, p["id"], r.user) is None):
            return 404, NOT_FOUND
        return 200, self.project_out(p, r, False)

    def states_of(self, r):
        pid = self.active(r)
        return sorted((s for s in self.s.states.values() if s["project"] == pid and not s["deleted_at"]),
                      key=lambda s: s["sequence"])

    def get_states(self, r):
        return paginate(r.q, self.states_of(r), lambda s: self.out(s, r.q))

    def get_state(self, r):
        return 200, self.out(self.found(self.states_of(r), r.kw["state_id"]), r.q)

    def labels_of(self, r):
        pid = self.active(r)
        mine = self.s.p_role(r.slug, pid, r.user) is not None
        return newest_first(x for x in self.s.labels.values() if mine and x["project"] == pid and not x["deleted_at"])

    def get_labels(self, r):
        return paginate(r.q, self.labels_of(r), lambda x: self.out(x, r.q))

    def get_label(self, r):
        return 200, self.out(self.found(self.labels_of(r), r.kw["pk"]))

    # work items (IssueSerializer)
    def live_issues(self, pid):  # Issue.issue_objects
        return [i for i in self.s.issues.values() if i["project"] == pid and not i["deleted_at"]
                and not i["archived_at"] and not i["is_draft"] and not self.s.projects[pid]["archived_at"]]

    def same_external(self, rows, pid, src, ext):
        return next((x for x in rows if x["project"] == pid and not x["deleted_at"] and x["external_source"] == (
            None if src is None else str(src)) and x["external_id"] == str(ext)), None)

    def validate_issue(self, r, partial):
        s, pid = self.s, r.kw["project_id"]
        data = validate(r.data(), {
            "name": lambda v: v_char(v, 255, blank=False), "description_html": v_char,
            "priority": lambda v: v_choice(v, PRIORITIES), "state": lambda v: v_pk(v, s.states),
            "parent": lambda v: v_pk(v, s.issues), "labels": lambda v: v_pks(v, s.labels),
            "assignees": lambda v: v_pks(v, s.users), "start_date": v_date, "target_date": v_date,
            "external_source": lambda v: v_char(v, 255, null=True), "external_id": lambda v: v_char(v, 255, null=True),
            "estimate_point": lambda v: v_pk(v, {}), "type_id": lambda v: v_pk(v, {})}, partial, required=("name",))
        if data.get("start_date") and data.get("target_date") and data["start_date"] > data["target_date"]:
            raise Invalid({"non_field_errors": ["Start date cannot exceed target date"]})
        if data.get("description_html") is not None:
            data["description_html"] = plane_description_html(data["description_html"])
            if data["description_html"] is None:
                raise Invalid({"non_field_errors": ["Invalid HTML passed"]})
        if data.get("assignees"):  # silently keeps only active project members with role >= 15
            data["assignees"] = [m["member"] for m in reversed(list(s.members.values())) if m["project"] == pid
                                 and m["is_active"] and m["role"] >= 15 and m["member"] in data["assignees"]]
        if data.get("labels"):  # silently keeps only this project's labels
            data["labels"] = [x["id"] for x in newest_first(s.labels.values()) if x["project"] == pid
                              and x["id"] in data["labels"]]
        if data.get("state") and s.states[data["state"]]["project"] != pid:
            raise Invalid({"non_field_errors": ["State is not valid please pass a valid state_id"]})
        if data.get("parent") and s.issues[data["parent"]]["project"] != pid:
            raise Invalid({"non_field_errors": ["Parent is not valid issue_id please pass a valid issue_id"]})
        if "state" in data and not data["state"]:  # Issue.save: _ensure_default_state
            data["state"] = next(x["id"] for x in s.states.values() if x["project"] == pid and x["default"])
        return data

    def get_issues(self, r):
        pid, q = r.kw["project_id"], r.q
        if q.get("external_id") and q.get("external_source"):
            found = self.same_external(self.s.issues.values(), pid, q["external_source"], q["external_id"])
            return (200, self.out(found, q)) if found else (404, NOT_FOUND)
        order, rows = q.get("order_by", "-created_at"), self.live_issues(pid)
        field = order.lstrip("-")
        if field == "priority":  # Plane orders by a Case() over urgent..none, reversed for -priority
            rows.sort(key=lambda i: PRIORITIES.index(i["priority"]), reverse=order.startswith("-"))
        elif field in ("id", "created_at", "updated_at", "sequence_id", "sort_order", "name", "state",
                       "start_date", "target_date", "completed_at"):
            rows.sort(key=lambda i: (i[field] is None, i[field] or ""), reverse=order.startswith("-"))
        elif rows:
            return 500, SERVER_ERROR  # FieldError on an unknown field
        return paginate(q, rows, lambda i: self.out(i, q))

    def get_issue(self, r):
        return 200, self.out(self.found(self.live_issues(r.kw["project_id"]), r.kw["pk"]), r.q)

    def get_issue_by_identifier(self, r):
        try:
            seq = int(r.kw["issue_identifier"])
        except ValueError:
            return 500, SERVER_ERROR  # Plane: "Field 'sequence_id' expected a number"
        for p in self.s.projects.values():
            match = [i for i in self.live_issues(p["id"]) if p["identifier"] == r.kw["project_identifier"]
                     and i["sequence_id"] == seq]
            if match and not p["deleted_at"]:
                return 200, self.out(match[0], r.q)
        return 404, NOT_FOUND

    def post_issue(self, r):
        pid, raw, s = r.kw["project_id"], r.data(), self.s
        data = self.validate_issue(r, partial=False)
        dup = raw.get("external_id") and raw.get("external_source") and self.same_external(
            s.issues.values(), pid, raw["external_source"], raw["external_id"])
        if dup:  # checked after validation
            return 409, {"error": "Issue with the same external id and external source already exists", "id": dup["id"]}
        p, t, iid = s.projects[pid], now(), new_id()
        state = data.get("state") or next(x["id"] for x in s.states.values() if x["project"] == pid and x["default"])
        orders = [i["sort_order"] for i in s.issues.values() if i["project"] == pid and i["state"] == state]
        s.sequence[pid] += 1
        default = [p["default_assignee"]] if s.p_role(r.slug, pid, p["default_assignee"]) in (20, 15) else []
        s.issues[iid] = {
            "id": iid, "type_id": None, "created_at": t, "updated_at": t, "deleted_at": None, "point": None,
            "name": data["name"], "description_html": data.get("description_html", "<p></p>"),
            "description_binary": None, "priority": data.get("priority", "none"), "start_date": data.get("start_date"),
            "target_date": data.get("target_date"), "sequence_id": s.sequence[pid],
            "sort_order": max(orders) + 10000 if orders else 65535.0,
            "completed_at": t if s.states[state]["group"] == "completed" else None, "archived_at": None,
            "is_draft": False, "external_source": data.get("external_source"), "external_id": data.get("external_id"),
            "created_by": r.user, "updated_by": None, "project": pid, "workspace": s.ws["id"],
            "parent": data.get("parent"), "state": state, "estimate_point": None, "type": None,
            "assignees": data.get("assignees") or default, "labels": data.get("labels", [])}
        return 201, self.out(s.issues[iid])

    def patch_issue(self, r):
        i = self.found([x for x in self.s.issues.values() if x["project"] == r.kw["project_id"]
                        and not x["deleted_at"]], r.kw["pk"])  # Issue.objects: archived ones too
        raw, data = r.data(), self.validate_issue(r, partial=True)
        if raw.get("external_id") and i["external_id"] != str(raw["external_id"]) and self.same_external(
                self.s.issues.values(), i["project"], raw.get("external_source", i["external_source"]),
                raw["external_id"]):
            return 409, {"error": "Issue with the same external id and external source already exists", "id": i["id"]}
        if "state" in data and data["state"] != i["state"]:
            i["completed_at"] = now() if self.s.states[data["state"]]["group"] == "completed" else None
        i.update(data, updated_by=r.user, updated_at=now())
        return 200, self.out(i)  # PATCH ignores ?fields and ?expand

    # comments: IssueCommentCreateSerializer in (no HTML processing at all), IssueCommentSerializer out
    def comments_of(self, r):
        pid = self.active(r)
        return newest_first(c for c in self.s.comments.values() if c["project"] == pid
                            and c["issue"] == r.kw["issue_id"] and not c["deleted_at"])

    def get_comments(self, r):
        return paginate(r.q, self.comments_of(r), lambda c: self.out(c, r.q, {"is_member": True}))

    def get_comment(self, r):
        return 200, self.out(self.found(self.comments_of(r), r.kw["pk"]), r.q, {"is_member": True})

    def post_comment(self, r):
        pid, raw = r.kw["project_id"], r.data()
        dup = isinstance(raw, dict) and raw.get("external_id") and raw.get("external_source") and self.same_external(
            self.s.comments.values(), pid, raw["external_source"], raw["external_id"])
        if dup:  # checked before validation, across the whole project
            return 409, {"error": "Work item comment with the same external id and external source already exists",
                         "id": dup["id"]}
        data = validate(raw, {"comment_html": v_char, "comment_json": lambda v: v,
                              "access": lambda v: v_choice(v, ("INTERNAL", "EXTERNAL")),
                              "external_source": lambda v: v_char(v, 255, null=True),
                              "external_id": lambda v: v_char(v, 255, null=True)}, False)
        if r.kw["issue_id"] not in self.s.issues:
            return 400, {"error": "The payload is not valid"}  # IntegrityError on the issue foreign key
        cid, t = new_id(), now()
        self.s.comments[cid] = c = {
            "id": cid, "created_at": t, "updated_at": t, "deleted_at": None,
            "comment_html": data.get("comment_html", "<p></p>"), "attachments": [],
            "access": data.get("access", "INTERNAL"), "external_source": data.get("external_source"),
            "external_id": data.get("external_id"), "edited_at": None, "created_by": r.user, "updated_by": None,
            "project": pid, "workspace": self.s.ws["id"], "description": new_id(), "issue": r.kw["issue_id"],
            "actor": r.user, "parent": None}
        return 201, self.out(dict(c, updated_by=r.user))  # the in-memory object after its second save

    # deletion and archiving: answered as Plane does (soft delete), and listed by GET /_double/calls
    def destroy(self, r):
        table, key = self.target(r)
        obj, pid = table.get(r.kw[key]), r.kw.get("project_id")
        if not obj or obj.get("deleted_at") or (table is not self.s.projects and obj["project"] != pid) or (
                "issue_id" in r.kw and obj["issue"] != r.kw["issue_id"]):
            return 404, NOT_FOUND
        if table is self.s.states and obj["default"]:
            return 400, {"error": "Default state cannot be deleted"}
        if table is self.s.states and any(i["state"] == obj["id"] for i in self.s.issues.values()):
            return 400, {"error": "The state is not empty, only empty states can be deleted"}
        if table is self.s.issues and obj["created_by"] != r.user and self.s.p_role(r.slug, obj["project"],
                                                                                    r.user) != 20:
            return 403, {"error": "Only admin or creator can delete the work item"}
        if r.path.endswith("/archive/"):
            obj["archived_at"] = now() if r.method == "POST" else None
        elif table is self.s.members:
            obj["is_active"] = False
        else:
            obj["deleted_at"] = now()
        return 204, None

    def target(self, r):
        for part, table, key in (("/archive/", self.s.projects, "project_id"), ("/comments/", self.s.comments, "pk"),
                                 ("/states/", self.s.states, "state_id"), ("/labels/", self.s.labels, "pk"),
                                 ("members/", self.s.members, "pk"), ("/issues/", self.s.issues, "pk"),
                                 ("/work-items/", self.s.issues, "pk")):
            if part in r.path:
                return table, key
        return self.s.projects, "pk"


# ---- routes: apps/api/plane/api/urls/*.py; (path, permission, {method: view}), view None = not in this double
P = "workspaces/<str:slug>/projects/<uuid:project_id>/"
ROUTES = [("users/me/", "auth", {"GET": "get_me"}),
          ("workspaces/<str:slug>/members/", "ws_admin", {"GET": "get_ws_members"}),
          ("workspaces/<str:slug>/projects/", "project_base", {"GET": "get_projects", "POST": None}),
          ("workspaces/<str:slug>/projects/<uuid:pk>/", "project_base",
           {"GET": "get_project", "PATCH": None, "DELETE": "destroy"}),
          (P + "archive/", "project_base", {"POST": "destroy", "DELETE": "destroy"}),
          (P + "summary/", "ws_admin", {"GET": None}),
          (P + "states/", "entity", {"GET": "get_states", "POST": None}),
          (P + "states/<uuid:state_id>/", "entity", {"GET": "get_state", "PATCH": None, "DELETE": "destroy"}),
          (P + "labels/", "member", {"GET": "get_labels", "POST": None}),
          (P + "labels/<uuid:pk>/", "member", {"GET": "get_label", "PATCH": None, "DELETE": "destroy"})]
for _m in ("members", "project-members"):  # GET: ProjectMemberPermission, other methods: ProjectAdminPermission
    ROUTES += [(P + _m + "/", "member|admin", {"GET": "get_members", "POST": "post_members"}),
               (P + _m + "/<uuid:pk>/", "member|admin", {"PATCH": None, "DELETE": "destroy", "GET": "get_member"})]
for _w in ("issues", "work-items"):
    ROUTES += [("workspaces/<str:slug>/%s/search/" % _w, "entity", {"GET": None}),
               ("workspaces/<str:slug>/%s/<str:project_identifier>-<str:issue_identifier>/" % _w, "entity",
                {"GET": "get_issue_by_identifier"}),
               (P + _w + "/", "entity", {"GET": "get_issues", "POST": "post_issue"}),
               (P + _w + "/<uuid:pk>/", "entity", {"GET": "get_issue", "PATCH": "patch_issue", "DELETE": "destroy"}),
               (P + _w + "/<uuid:issue_id>/comments/", "lite", {"GET": "get_comments", "POST": "post_comment"}),
               (P + _w + "/<uuid:issue_id>/comments/<uuid:pk>/", "lite",
                {"GET": "get_comment", "PATCH": None, "DELETE": "destroy"})]
    for _sub in ("links", "activities", "issue-attachments" if _w == "issues" else "attachments", "relations"):
        ROUTES += [(P + _w + "/<uuid:issue_id>/%s/" % _sub, "entity", {"GET": None, "POST": None}),
                   (P + _w + "/<uuid:issue_id>/%s/<uuid:pk>/" % _sub, "entity",
                    {"GET": None, "PATCH": None, "DELETE": None})]
for _o in ("cycles", "archived-cycles", "modules", "archived-modules", "estimates", "intake-issues"):
    ROUTES += [(P + _o + "/", "entity", {"GET": None, "POST": None}),
               (P + _o + "/<str:rest>/", "entity", {"GET": None, "PATCH": None, "DELETE": None})]
UUID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # Django's <uuid:>: lower case only
ROUTES = [(re.compile("^/api/v1/" + re.sub(r"<(str|uuid):(\w+)>", lambda m: "(?P<%s>%s)" % (
    m.group(2), "[^/]+" if m.group(1) == "str" else UUID_RE), path) + "$"), perm, views)
          for path, perm, views in ROUTES]


def resolve(path):
    return next(((m, perm, views) for rx, perm, views in ROUTES for m in [rx.match(path)] if m), None)


class Query(dict):
    fields = property(lambda self: [f for f in self.get("fields", "").split(",") if f] or None)
    expand = property(lambda self: [f for f in self.get("expand", "").split(",") if f] or None)


class Request:
    def __init__(self, method, path, kw, query, body, user):
        self.method, self.path, self.kw, self.slug, self.user, self.data = method, path, kw, kw.get("slug"), user, body
        self.q = Query((k, v[-1]) for k, v in parse_qs(query).items())  # QueryDict.get gives the last value


class App:
    """Plane's request pipeline, the rate limit, the call log and the fault queue."""

    def __init__(self, store, api_key, rate_limit):
        self.store, self.api, self.key, self.rate = store, Api(store), api_key, rate_limit
        self.history, self.faults, self.calls, self.destructive, self.dropped = [], [], [], [], 0

    def handle(self, method, path, query, headers, body):
        found = resolve(path)
        if not found:
            if not path.endswith("/") and resolve(path + "/"):  # CommonMiddleware APPEND_SLASH, any method
                return 301, None, {"Location": path + "/" + ("?" + query if query else "")}
            return 404, {"error": "Page not found."}, {}  # plane.app.views.error_404
        m, perm, views = found
        status, out, headers = self.view(method, path, query, headers, body, m.groupdict(), perm, views)
        return status, out, dict(headers, Allow=", ".join(views))  # DRF sets Allow on every APIView response

    def view(self, method, path, query, headers, body, kw, perm, views):
        given = headers.get("X-Api-Key")  # APIKeyAuthentication; 401 comes from plane's auth_exception_handler
        if not given:
            return 401, {"detail": "Authentication credentials were not provided."}, {}
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            return 403, {"detail": "Given API token is not valid"}, {}
        perm = perm.split("|")[0 if method == "GET" else -1]
        if not self.store.allowed(perm, method, kw.get("slug"), self.store.key_user, kw):
            return 403, {"detail": "You do not have permission to perform this action."}, {}
        t = time.time()  # ApiKeyRateThrottle: DRF SimpleRateThrottle, 60 s sliding window, per key
        self.history = [h for h in self.history if h > t - 60]
        if len(self.history) >= self.rate:
            return 429, THROTTLED, {"Retry-After": str(math.ceil(60 - (t - self.history[-1])) if self.history else 60)}
        self.history.insert(0, t)
        limits = {"X-RateLimit-Remaining": str(max(0, self.rate - len(self.history))),
                  "X-RateLimit-Reset": str(int(t + 60))}
        if method not in views:
            return 405, {"detail": 'Method "%s" not allowed.' % method}, limits
        if views[method] is None:
            return 501, {"error": "The Plane API test double does not implement this Plane route.",
                         "method": method, "path": path}, limits
        try:
            status, out = getattr(self.api, views[method])(Request(method, path, kw, query, body, self.store.key_user))
        except Invalid as e:
            status, out = e.status, e.body
        except Exception as e:  # BaseAPIView.handle_exception answers 500 to anything unexpected
            sys.stderr.write("plane-api-double: %s failed with %s (a bug of the double)\n" % (views[method],
                                                                                             type(e).__name__))
            status, out = 500, SERVER_ERROR
        return status, out, limits

    def record(self, method, path, query, status):
        with self.store.lock:
            call = {"method": method, "path": path, "query": query, "status": status}
            self.calls.append(call)
            if len(self.calls) > MAX_CALLS:
                del self.calls[0]
                self.dropped += 1
            if method == "DELETE" or "/archive" in path or "/archived-" in path or "unarchive" in path:
                self.destructive = (self.destructive + [call])[-MAX_CALLS:]

    def take_fault(self, method, path):
        with self.store.lock:
            for f in self.faults:
                if f.get("method", method) == method and f.get("path_contains", "") in path:
                    f["count"] -= 1
                    if f["count"] <= 0:
                        self.faults.remove(f)
                    return dict(f)
        return None

    def control(self, method, path, raw):  # test controls, not Plane
        with self.store.lock:
            if (method, path) == ("GET", "/_double/calls"):
                return 200, {"calls": self.calls, "dropped": self.dropped, "destructive": self.destructive}, {}
            if (method, path) == ("DELETE", "/_double/calls"):
                self.calls, self.destructive, self.dropped = [], [], 0
                return 204, None, {}
            if (method, path) == ("GET", "/_double/state"):
                return 200, self.store.dump(), {}
            if path == "/_double/faults" and method in ("GET", "DELETE"):
                self.faults = self.faults if method == "GET" else []
                return 200, {"faults": self.faults}, {}
            if (method, path) == ("POST", "/_double/faults"):
                try:
                    f = json.loads(raw or b"{}")
                    assert set(f) <= {"count", "status", "delay_ms", "delay_after_ms", "drop", "retry_after", "method",
                                      "path_contains"}
                    f["count"] = int(f.get("count", 1))
                    assert 1 <= f["count"] <= 100000 and f.get("status") in (None, 429, 500, 502, 503, 504)
                    assert 0 <= int(f.get("delay_ms", 0)) <= 60000 and 0 <= int(f.get("retry_after", 60)) <= 3600
                    assert 0 <= int(f.get("delay_after_ms", 0)) <= 60000
                    assert len(self.faults) < MAX_FAULTS and (f.get("status") or f.get("delay_ms") or f.get("drop")
                                                              or f.get("delay_after_ms"))
                except (ValueError, AssertionError, TypeError, AttributeError):
                    return 400, {"error": "a fault is a JSON object: count 1..100000 and one or more of status "
                                          "(429|500|502|503|504), delay_ms or delay_after_ms (<= 60000), drop (true); optional "
                                          "retry_after (s), method, path_contains"}, {}
                self.faults.append(f)
                return 201, {"faults": self.faults}, {}
        return 404, {"error": "unknown control: use GET|DELETE /_double/calls, GET /_double/state, "
                              "GET|POST|DELETE /_double/faults"}, {}


def fault_reply(fault, path):
    found, st = resolve(path), fault["status"]
    allow = {"Allow": ", ".join(found[2])} if found else {}
    if st == 429:  # as Plane throttles: no X-RateLimit-* headers, DRF's Retry-After
        return 429, THROTTLED, dict(allow, **{"Retry-After": str(fault.get("retry_after", 60))})
    if st == 500:
        return 500, SERVER_ERROR, allow
    return st, "<html><body><h1>%d</h1>from the proxy in front of Plane (test double)</body></html>\n" % st, {}


def parse_body(headers, raw):
    """DRF parsers: JSON, form; raises Invalid as DRF answers. Only the views that read request.data call it."""
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not raw:
        return {}
    if ctype == "application/json":
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise Invalid({"detail": "JSON parse error - %s" % e})
    if ctype == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    raise Invalid({"detail": 'Unsupported media type "%s" in request.' % ctype}, 415)


class Handler(BaseHTTPRequestHandler):
    protocol_version, server_version, timeout = "HTTP/1.1", "plane-api-double", 30

    def version_string(self):
        return self.server_version

    def log_message(self, *args):
        pass

    def do_GET(self):
        app, url, status = self.server.app, urlsplit(self.path), None
        try:
            raw = self.read_body()
            if raw is None:
                return
            if url.path.startswith("/_double/"):
                return self.reply(*app.control(self.command, url.path, raw))
            fault = app.take_fault(self.command, url.path)
            time.sleep((fault or {}).get("delay_ms", 0) / 1000)
            if fault and fault.get("drop"):
                status, self.close_connection = "dropped", True
                return self.connection.shutdown(socket.SHUT_RDWR)
            if fault and fault.get("status"):
                status = self.reply(*fault_reply(fault, url.path))
                return
            with app.store.lock:
                out = app.handle(self.command, url.path, url.query, self.headers, lambda: parse_body(self.headers, raw))
            # delay_after_ms: "Plane" has written and not yet answered (a client killed now has lost the answer).
            time.sleep((fault or {}).get("delay_after_ms", 0) / 1000)
            status = self.reply(*out)
        finally:
            if status is not None:
                app.record(self.command, url.path, url.query, status)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def read_body(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if self.headers.get("Transfer-Encoding") or not 0 <= length <= MAX_BODY:  # plane.middleware.request_body_size
            self.close_connection = True
            left = min(max(length, 0), 4 * MAX_BODY)  # drain (bounded) so the client reads the 413, not a reset
            while left > 0 and self.rfile.read(min(65536, left)):
                left -= 65536
            self.reply(413, {"error": "REQUEST_BODY_TOO_LARGE",
                             "detail": "The size of the request body exceeds the maximum allowed size."}, {})
            return None
        return self.rfile.read(length)

    def reply(self, status, body, headers):
        data = body.encode() if isinstance(body, str) else b"" if body is None else json.dumps(
            body, ensure_ascii=False, separators=(",", ":")).encode()  # DRF JSONRenderer: compact UTF-8
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        sys.stderr.write("%s %s %s\n" % (self.command, urlsplit(self.path).path, status))
        return status


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, app):
        super().__init__(address, Handler)
        self.app, self.slots = app, threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):  # at most MAX_CONNECTIONS connections; refuse the others
            return self.shutdown_request(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def main():
    ap = argparse.ArgumentParser(description="Test double of Plane's public API (/api/v1); not Plane.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key-file", required=True, help="file holding the one valid X-API-Key (the bot user's)")
    ap.add_argument("--rate-limit", type=int, default=60, help="requests per key per minute (Plane's default: 60)")
    ap.add_argument("--seed", help="JSON seed (the shape of DEFAULT_SEED); default: acme, alice/bot/bob, WEB/OPS/SEC")
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="also exit when stdin reaches its end")
    args = ap.parse_args()
    try:
        with open(args.api_key_file, "rb") as f:
            key = f.read(4097).decode("utf-8").strip()
        if not key or len(key) > 4096:
            raise ValueError("no key in the file, or one over 4096 bytes")
        seed = DEFAULT_SEED
        if args.seed:
            with open(args.seed, "rb") as f:
                seed = json.loads(f.read(1 << 20))
        app = App(Store(seed), key, args.rate_limit)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        sys.exit("plane-api-double: cannot start (%s: %s); check --api-key-file and --seed" % (type(e).__name__, e))
    server = Server(("127.0.0.1", args.port), app)
    print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.exit_on_stdin_eof:
        threading.Thread(target=lambda: (all(iter(lambda: sys.stdin.buffer.read1(65536), b"")), stop.set()),
                         daemon=True).start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
