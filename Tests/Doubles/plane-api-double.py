#!/usr/bin/env python3
"""TEST DOUBLE of Plane's public REST API (/api/v1) -- not Plane.

Written from makeplane/plane apps/api (see Tests/Doubles/README.md for the commit and what is
covered) and corrected against a live Plane where /work/notes/plane-live.md recorded it.
Python 3 standard library only.

  python3 plane-api-double.py --port 0 --api-key-file F [--rate-limit N] [--seed F.json]

Prints one line "listening on http://127.0.0.1:PORT", logs "METHOD path status" to stderr, exits
on SIGTERM/SIGINT. Test controls live under /_double/ (a path Plane does not have).
"""
import argparse, hmac, json, math, re, signal, socket, sys, threading, time, uuid
from datetime import datetime, timezone
from html import escape as _esc
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 5 * 1024 * 1024  # Plane: DATA_UPLOAD_MAX_MEMORY_SIZE = FILE_SIZE_LIMIT, default 5242880
MAX_CALLS, MAX_CONNECTIONS, MAX_FAULTS = 20000, 64, 1000
ERR_404 = {"error": "The requested resource does not exist."}
ERR_500 = {"error": "Something went wrong please try again later"}
NO_PERMISSION = {"detail": "You do not have permission to perform this action."}
DEFAULT_STATES = [("Backlog", "#60646C", 15000, "backlog", True), ("Todo", "#60646C", 25000, "unstarted", False),
                  ("In Progress", "#F59E0B", 35000, "started", False), ("Done", "#46A758", 45000, "completed", False),
                  ("Cancelled", "#9AA4BC", 55000, "cancelled", False)]
PRIORITIES = ("urgent", "high", "medium", "low", "none")
DEFAULT_SEED = {
    "workspace": {"slug": "acme", "name": "Acme"},
    "users": [{"key": "alice", "email": "alice@acme.test", "first_name": "Alice", "last_name": "Anders", "role": 20},
              {"key": "bot", "email": "bot@acme.test", "first_name": "agent-gateway", "last_name": "bot",
               "display_name": "agent-gateway bot", "is_bot": True, "role": 20},
              {"key": "bob", "email": "bob@acme.test", "first_name": "Bob", "last_name": "Berg", "role": 15}],
    "api_key_user": "bot",
    "projects": [{"identifier": "WEB", "name": "Website", "members": {"bot": 20, "alice": 15}},
                 {"identifier": "OPS", "name": "Operations", "members": {"bot": 20, "bob": 15}},
                 {"identifier": "SEC", "name": "Security", "network": 0, "members": {"alice": 20}, "labels": []}],
    "labels": [["bug", "#e5484d"], ["feature", "#3e63dd"], ["docs", "#8e8c99"]],
}


def now_iso():  # DRF DateTimeField: isoformat() with "+00:00" written as "Z"
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def new_id():
    return str(uuid.uuid4())


# ---------------------------------------------------------------- description_html, as Plane stores it
# Plane (IssueSerializer.validate): lxml.html.fromstring + tostring, then nh3.clean with the tags and
# attributes of plane/utils/content_validator.py. This is a stdlib approximation of both, checked
# against outputs of lxml 6.1.0 / libxml2 2.14.6 / nh3 0.2.18 (plane-contract-check.py HTML cases).
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
LXML_BLOCK = {"address", "blockquote", "caption", "center", "col", "colgroup", "dd", "del", "dir", "div", "dl", "dt",
              "fieldset", "form", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "ins", "isindex", "legend", "li", "menu",
              "noscript", "ol", "optgroup", "option", "p", "pre", "table", "tbody", "td", "tfoot", "th", "thead",
              "tr", "ul"}
CLOSES_P = {"address", "article", "aside", "blockquote", "div", "dl", "fieldset", "footer", "form", "h1", "h2", "h3",
            "h4", "h5", "h6", "header", "hr", "menu", "nav", "ol", "p", "pre", "section", "table", "ul"}
NH3_TAGS = set("a abbr acronym area article aside b bdi bdo blockquote br caption center cite code col colgroup data "
               "dd del details dfn div dl dt em figcaption figure footer h1 h2 h3 h4 h5 h6 header hgroup hr i img ins "
               "kbd li map mark nav ol p pre q rp rt rtc ruby s samp small span strike strong sub summary sup table "
               "tbody td th thead time tr tt u ul var wbr mention-component label input image-component".split())
NH3_ANY_ATTR = set("class id title role aria-label aria-hidden style start type xmlns data-tight data-node-type "
                   "data-type data-checked data-background-color data-text-color data-name data-id data-icon-name "
                   "data-icon-color data-background data-emoji-unicode data-emoji-url data-logo-in-use "
                   "data-block-type".split())
NH3_ATTR = {"a": {"href", "target"}, "image-component": {"id", "width", "height", "aspectratio", "src", "alignment",
                                                         "status"},
            "img": {"width", "height", "aspectratio", "alignment", "src", "alt", "title"},
            "mention-component": {"id", "entity_identifier", "entity_name"},
            "th": {"colspan", "rowspan", "colwidth", "background", "style"},
            "td": {"colspan", "rowspan", "colwidth", "background", "textcolor", "style"},
            "tr": {"background", "textcolor", "style"}, "pre": {"language"}, "code": {"language", "spellcheck"},
            "input": {"type", "checked"}}
HEAD_TAGS = {"base", "link", "meta", "script", "style", "title"}
URL_ATTRS, SAFE_SCHEMES = {"href", "src"}, {"http", "https", "mailto", "tel"}


class _Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = ["#root", [], []]
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        if tag in CLOSES_P and any(n[0] == "p" for n in self.stack):
            while self.stack[-1][0] != "p":
                self.stack.pop()
            self.stack.pop()
        if tag == "li" and self.stack[-1][0] == "li":
            self.stack.pop()
        seen, kept = set(), []
        for k, v in attrs:
            if k not in seen:
                seen.add(k)
                kept.append((k, v or ""))
        node = [tag, kept, []]
        if tag == "tr" and self.stack[-1][0] == "table":  # libxml2 adds the implied <tbody>
            body = [["tbody", [], []]]
            self.stack[-1][2].append(body[0])
            self.stack.append(body[0])
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


def _clean(nodes):
    out = []
    for n in nodes:
        if isinstance(n, str):
            out.append(n)
        elif n[0] in ("script", "style"):
            continue
        elif n[0] not in NH3_TAGS:
            out.extend(_clean(n[2]))
        else:
            allowed = NH3_ANY_ATTR | NH3_ATTR.get(n[0], set())
            attrs = [(k, v) for k, v in n[1] if k in allowed and not (
                k in URL_ATTRS and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", v.strip())
                and v.strip().split(":", 1)[0].lower() not in SAFE_SCHEMES)]
            if n[0] == "a":
                attrs.append(("rel", "noopener noreferrer"))
            out.append([n[0], attrs, _clean(n[2])])
    return out


def _html(nodes):
    parts = []
    for n in nodes:
        if isinstance(n, str):
            parts.append(_esc(n, quote=False).replace("\xa0", "&nbsp;"))
            continue
        attrs = "".join(' %s="%s"' % (k, v.replace("&", "&amp;").replace('"', "&quot;").replace("\xa0", "&nbsp;"))
                        for k, v in n[1])
        parts.append("<%s%s>" % (n[0], attrs) if n[0] in VOID else "<%s%s>%s</%s>" % (n[0], attrs, _html(n[2]), n[0]))
    return "".join(parts)


def plane_description_html(text):
    """Returns what Plane stores for description_html, or None where Plane answers 'Invalid HTML passed'."""
    text = text.lstrip()
    if not text:
        return None  # lxml: "Document is empty"
    p = _Tree()
    p.feed(text)
    p.close()
    top = p.root[2]
    elements = [n for n in top if not isinstance(n, str)]
    if not elements and not any(isinstance(n, str) and n.strip(" \t\n\r\f") for n in top):
        return None  # libxml2 skips ASCII whitespace only; lxml's checks below use str.strip()
    loose = [n for n in top if isinstance(n, str) and n.strip()]
    if elements and top.index(elements[0]) <= 1 and elements[0][0] in HEAD_TAGS and not (top[0] != elements[0]
                                                                                         and top[0].strip(" \t\n\r\f")):
        node, tail = top, ""  # lxml returns the whole document (it has a <head>); nh3 unwraps html/head/body
    elif len(elements) == 1 and not loose:
        i = top.index(elements[0])
        node, tail = [elements[0]], "".join(n for n in top[i + 1:])
    else:
        def blocky(ns):
            return any(not isinstance(n, str) and (n[0] in LXML_BLOCK or blocky(n[2])) for n in ns)
        node, tail = [["div" if blocky(top) else "span", [], top]], ""
    return _html(_clean(node) + [tail])


# ---------------------------------------------------------------- DRF-style field validation
class Invalid(Exception):
    def __init__(self, body):
        self.body = body


def v_char(value, max_len=None, blank=True, null=False):
    if value is None:
        if null:
            return None
        raise Invalid(["This field may not be null."])
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(["Not a valid string."])
    value = str(value).strip()
    if not value and not blank:
        raise Invalid(["This field may not be blank."])
    if max_len and len(value) > max_len:
        raise Invalid(["Ensure this field has no more than %d characters." % max_len])
    return value


def v_choice(value, choices, null=False):
    if value is None and null:
        return None
    if value is None:
        raise Invalid(["This field may not be null."])
    for c in choices:
        if str(c) == str(value):
            return c
    raise Invalid(['"%s" is not a valid choice.' % value])


def v_pk(value, table, null=True):
    if value is None:
        if null:
            return None
        raise Invalid(["This field may not be null."])
    if isinstance(value, bool):
        raise Invalid(["Incorrect type. Expected pk value, received bool."])
    try:
        key = str(uuid.UUID(str(value)))
    except ValueError:
        raise Invalid(["\u201c%s\u201d is not a valid UUID." % value])
    if key not in table:
        raise Invalid(['Invalid pk "%s" - object does not exist.' % key])
    return key


def v_pk_list(value, table):
    if value is None:
        raise Invalid(["This field may not be null."])
    if isinstance(value, (str, dict)) or not isinstance(value, list):
        raise Invalid(['Expected a list of items but got type "%s".' % type(value).__name__])
    out, errors = [], {}
    for i, item in enumerate(value):
        try:
            out.append(v_pk(item, table, null=False))
        except Invalid as e:
            errors[str(i)] = e.body
    if errors:
        raise Invalid(errors)
    return out


def v_date(value):
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise Invalid(["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."])


def v_int(value, lo, hi):
    if value is None:
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        value = int(str(value).strip()) if not isinstance(value, float) else int(value)
    except ValueError:
        raise Invalid(["A valid integer is required."])
    if value > hi:
        raise Invalid(["Ensure this value is less than or equal to %d." % hi])
    if value < lo:
        raise Invalid(["Ensure this value is greater than or equal to %d." % lo])
    return value


def run_fields(data, spec, partial, required=()):
    """spec: field -> validator(value). Returns the validated dict or raises Invalid({field: [msg]})."""
    if not isinstance(data, dict):
        raise Invalid({"non_field_errors": ["Invalid data. Expected a dictionary, but got %s." % type(data).__name__]})
    out, errors = {}, {}
    for field, check in spec.items():
        if field not in data:
            if field in required and not partial:
                errors[field] = ["This field is required."]
            continue
        try:
            out[field] = check(data[field])
        except Invalid as e:
            errors[field] = e.body
    if errors:
        raise Invalid(errors)
    return out


# ---------------------------------------------------------------- the store
class Store:
    def __init__(self, seed):
        self.lock = threading.RLock()
        self.users, self.ws_members, self.projects, self.members = {}, {}, {}, {}
        self.states, self.labels, self.issues, self.comments, self.sequence = {}, {}, {}, {}, {}
        ws = seed["workspace"]
        self.ws = {"id": new_id(), "slug": ws["slug"], "name": ws.get("name", ws["slug"])}
        keys = {}
        for u in seed["users"]:
            uid = new_id()
            keys[u["key"]] = uid
            email = u.get("email", u["key"] + "@example.test")
            self.users[uid] = {"id": uid, "first_name": u.get("first_name", ""), "last_name": u.get("last_name", ""),
                               "email": email, "avatar": "", "avatar_url": None,
                               "display_name": u.get("display_name", email.split("@")[0])}
            self.ws_members[uid] = {"role": u.get("role", 15), "is_active": True, "is_bot": u.get("is_bot", False)}
        self.key_user = keys[seed["api_key_user"]]
        for p in seed["projects"]:
            pid = self.add_project(p["identifier"], p.get("name", p["identifier"]), self.key_user)
            self.projects[pid]["network"] = p.get("network", 2)
            for key, role in p.get("members", {}).items():
                self.add_member(pid, keys[key], role)
            for name, color in p.get("labels", seed.get("labels", [])):
                self.add_label(pid, name, color, self.key_user)

    def add_project(self, identifier, name, creator):
        pid, t = new_id(), now_iso()
        self.projects[pid] = {
            "id": pid, "created_at": t, "updated_at": t, "deleted_at": None, "name": name, "description": "",
            "description_text": None, "description_html": None, "network": 2, "identifier": identifier,
            "emoji": None, "icon_prop": None, "module_view": False, "cycle_view": False, "issue_views_view": False,
            "page_view": True, "intake_view": False, "is_time_tracking_enabled": False,
            "is_issue_type_enabled": False, "guest_view_all_features": False, "cover_image": None, "archive_in": 0,
            "close_in": 0, "logo_props": {"in_use": "icon", "icon": {"name": "rocket", "color": "#5e6ad2"}},
            "archived_at": None, "timezone": "UTC", "external_source": None, "external_id": None,
            "created_by": creator, "updated_by": None, "workspace": self.ws["id"], "default_assignee": None,
            "project_lead": None, "cover_image_asset": None, "estimate": None, "default_state": None}
        self.sequence[pid] = 0
        for name_, color, seq, group, default in DEFAULT_STATES:
            sid = new_id()
            self.states[sid] = {
                "id": sid, "created_at": t, "updated_at": t, "deleted_at": None, "name": name_, "description": "",
                "color": color, "slug": "", "sequence": float(seq),  # bulk_create: save() never slugifies
                "group": group, "is_triage": False, "default": default, "external_source": None,
                "external_id": None, "created_by": creator, "updated_by": None, "project": pid,
                "workspace": self.ws["id"]}
        return pid

    def add_member(self, pid, uid, role):
        mid = new_id()
        self.members[mid] = {"id": mid, "project": pid, "member": uid, "role": role, "is_active": True,
                             "sort_order": 65535.0, "created_at": now_iso()}
        return mid

    def add_label(self, pid, name, color, creator):
        lid, t = new_id(), now_iso()
        orders = [lb["sort_order"] for lb in self.labels.values() if lb["project"] == pid]
        self.labels[lid] = {
            "id": lid, "created_at": t, "updated_at": t, "deleted_at": None, "name": name, "description": "",
            "color": color, "sort_order": max(orders) + 10000 if orders else 65535.0, "external_source": None,
            "external_id": None, "created_by": creator, "updated_by": None, "workspace": self.ws["id"],
            "project": pid, "parent": None}
        return lid

    # membership, as plane/app/permissions reads it
    def ws_role(self, slug, uid):
        m = self.ws_members.get(uid) if slug == self.ws["slug"] else None
        return m["role"] if m and m["is_active"] else None

    def p_role(self, slug, pid, uid):
        if slug != self.ws["slug"]:
            return None
        roles = [m["role"] for m in self.members.values() if m["project"] == pid and m["member"] == uid
                 and m["is_active"]]
        return roles[0] if roles else None

    def allowed(self, perm, method, slug, uid, kw):
        safe, pid = method == "GET", kw.get("project_id") or kw.get("pk")
        ws_role = self.ws_role(slug, uid)
        if perm == "auth":
            return True
        if perm == "ws_admin":  # WorkSpaceAdminPermission
            return ws_role in (20, 15)
        if perm == "project_base":  # ProjectBasePermission
            if safe or method == "POST":
                return ws_role is not None if safe else ws_role in (20, 15)
            role = self.p_role(slug, pid, uid)
            return role == 20 or (role is not None and ws_role == 20)
        if perm == "entity":  # ProjectEntityPermission
            if kw.get("project_identifier") and safe:
                return any(self.p_role(slug, p["id"], uid) is not None for p in self.projects.values()
                           if p["identifier"] == kw["project_identifier"])
            role = self.p_role(slug, pid, uid)
            return role is not None if safe else role in (20, 15)
        if perm == "member":  # ProjectMemberPermission (labels, GET members)
            if safe:
                return any(self.p_role(slug, p, uid) is not None for p in self.projects)
            return ws_role in (20, 15) if method == "POST" else self.p_role(slug, pid, uid) in (20, 15)
        if perm == "admin":  # ProjectAdminPermission
            return self.p_role(slug, pid, uid) == 20
        if perm == "lite":  # ProjectLitePermission (comments)
            return self.p_role(slug, pid, uid) is not None
        return False

    def dump(self):
        return {k: getattr(self, k) for k in ("ws", "users", "ws_members", "projects", "members", "states",
                                               "labels", "issues", "comments", "sequence")}


# ---------------------------------------------------------------- serializers and pagination
def pick(obj, fields):  # BaseSerializer(fields=...): keep only the listed fields
    return {k: v for k, v in obj.items() if k in fields} if fields else obj


def paginate(query, rows, serialize, total=None):
    """plane/utils/paginator.py BasePaginator.paginate with OffsetPaginator (default and max per_page 1000)."""
    try:
        per_page = int(query.get("per_page", "1000"))
    except ValueError:
        return 400, {"detail": "Invalid per_page parameter."}
    if per_page > 1000:
        return 400, {"detail": "Invalid per_page value. Cannot exceed 1000."}
    if per_page <= 0:
        return 500, ERR_500  # Plane: ZeroDivisionError / negative slicing
    bits = query.get("cursor", "%d:0:0" % per_page).split(":")
    try:
        if len(bits) != 3:
            raise ValueError
        value, page, is_prev = (float(bits[0]) if "." in bits[0] else int(bits[0])), int(bits[1]), bool(int(bits[2]))
    except ValueError:
        return 400, {"detail": "Invalid cursor parameter."}
    if page < 0:
        return 400, {"detail": "Error in parsing"}
    if is_prev and value != per_page:
        return 500, ERR_500  # Plane: negative indexing of a queryset
    window = rows[page * per_page: page * per_page + per_page + 1]
    total = len(rows) if total is None else total
    results = [serialize(r) for r in window[:per_page]]
    return 200, {"grouped_by": None, "sub_grouped_by": None, "total_count": total,
                 "next_cursor": "%d:%d:0" % (per_page, page + 1), "prev_cursor": "%d:%d:1" % (per_page, page - 1),
                 "next_page_results": len(window) > per_page, "prev_page_results": page > 0,
                 "count": len(results), "total_pages": math.ceil(total / per_page), "total_results": total,
                 "extra_stats": None, "results": results}


def newest_first(rows):
    return sorted(rows, key=lambda r: r["created_at"], reverse=True)


ISSUE_ORDER = {"priority": lambda i: PRIORITIES.index(i["priority"]), "-priority": lambda i: -PRIORITIES.index(
    i["priority"])}


class Api:
    """One method per Plane view; each returns (status, body) or (status, body, headers)."""

    def __init__(self, store):
        self.s = store

    # --- representation
    def user_lite(self, uid):
        return dict(self.s.users[uid]) if uid in self.s.users else None

    def expand(self, out, keys):
        for k in keys or ():
            v = out.get(k)
            if v is None:
                continue
            if k in ("created_by", "updated_by", "actor", "default_assignee", "project_lead"):
                out[k] = self.user_lite(v)
            elif k == "state" and v in self.s.states:
                out[k] = {f: self.s.states[v][f] for f in ("id", "name", "color", "group")}
            elif k == "project" and v in self.s.projects:
                p = self.s.projects[v]
                out[k] = {"id": p["id"], "identifier": p["identifier"], "name": p["name"],
                          "cover_image": p["cover_image"], "icon_prop": p["icon_prop"], "emoji": p["emoji"],
                          "description": p["description"], "cover_image_url": None}
            elif k == "workspace":
                out[k] = {"name": self.s.ws["name"], "slug": self.s.ws["slug"], "id": self.s.ws["id"]}
            elif k == "assignees":
                out[k] = [self.user_lite(u) for u in v]
            elif k == "labels":
                out[k] = [dict(self.s.labels[lb]) for lb in v if lb in self.s.labels]
        return out

    def project_out(self, p, uid, q, with_sort_order):
        mine = [m for m in self.s.members.values() if m["project"] == p["id"] and m["member"] == uid and m["is_active"]]
        out = {"id": p["id"], "total_members": sum(1 for m in self.s.members.values() if m["project"] == p["id"]
                                                     and m["is_active"] and not self.s.ws_members[m["member"]]["is_bot"]),
               "total_cycles": 0, "total_modules": 0, "is_member": bool(mine),
               "sort_order": mine[0]["sort_order"] if mine else None, "member_role": mine[0]["role"] if mine else None,
               "is_deployed": False, "cover_image_url": p["cover_image"]}
        if not with_sort_order:
            del out["sort_order"]
        out.update((k, v) for k, v in p.items() if k != "id")
        return self.expand(pick(out, q.fields), q.expand)

    def issue_out(self, i, q=None):
        out = {k: v for k, v in i.items() if not k.startswith("_")}
        return self.expand(pick(out, q and q.fields), q and q.expand)

    def comment_out(self, c, q=None, is_member=None):
        out = {"id": c["id"]}
        if is_member is not None:
            out["is_member"] = is_member
        out.update((k, v) for k, v in c.items() if k != "id")
        return self.expand(pick(out, q and q.fields), q and q.expand)

    # --- lookups
    def project(self, slug, pid, archived_ok=True):
        p = self.s.projects.get(pid)
        ok = p and slug == self.s.ws["slug"] and p["deleted_at"] is None and (archived_ok or not p["archived_at"])
        return p if ok else None

    def live_issues(self, pid):  # Issue.issue_objects
        p = self.s.projects.get(pid)
        return [i for i in self.s.issues.values() if i["project"] == pid and i["deleted_at"] is None
                and not i["archived_at"] and not i["is_draft"] and p and not p["archived_at"]]

    def issue_any(self, slug, pid, iid):  # Issue.objects
        i = self.s.issues.get(iid)
        return i if i and i["project"] == pid and i["deleted_at"] is None and slug == self.s.ws["slug"] else None

    # --- users and members
    def get_me(self, r):
        return 200, self.user_lite(r.user)

    def get_ws_members(self, r):
        return 200, [dict(self.user_lite(uid), role=m["role"]) for uid, m in reversed(list(self.s.ws_members.items()))]

    def get_members(self, r):
        ids = {m["member"] for m in self.s.members.values() if m["project"] == r.kw["project_id"]}
        return 200, [self.user_lite(uid) for uid in reversed(list(self.s.users)) if uid in ids]

    def post_members(self, r):
        spec = {"member": lambda v: v_pk(v, self.s.users, null=False), "role": lambda v: v_choice(v, (20, 15, 5))}
        data = run_fields(r.data(), spec, False, required=("member",))
        if data["member"] not in self.s.ws_members:
            raise Invalid({"member": ["Member not found in workspace"]})
        pid = r.kw["project_id"]
        if any(m["project"] == pid and m["member"] == data["member"] for m in self.s.members.values()):
            return 400, {"error": "The payload is not valid"}  # IntegrityError (unique project+member)
        mid = self.s.add_member(pid, data["member"], data.get("role", 5))
        return 201, {"id": mid, "member": data["member"], "role": data.get("role", 5)}

    def member_row(self, r):
        m = self.s.members.get(r.kw["pk"])
        return m if m and m["project"] == r.kw["project_id"] else None

    def get_member(self, r):
        m = self.member_row(r)
        return (200, self.user_lite(m["member"])) if m else (404, ERR_404)

    def delete_member(self, r):
        m = self.member_row(r)
        if not m:
            return 404, ERR_404
        m["is_active"] = False
        return 204, None

    # --- projects
    def get_projects(self, r):
        def visible(p):
            return p["deleted_at"] is None and (p["network"] == 2 or self.s.p_role(r.slug, p["id"], r.user))
        rows = [self.project_out(p, r.user, r.q, True) for p in self.s.projects.values() if visible(p)]
        rows.sort(key=lambda p: (p["sort_order"] is None, p["sort_order"] or 0))
        return paginate(r.q, rows, lambda p: p)

    def get_project(self, r):
        p = self.project(r.slug, r.kw["pk"])
        if not p or not (p["network"] == 2 or self.s.p_role(r.slug, p["id"], r.user)):
            return 404, ERR_404
        return 200, self.project_out(p, r.user, r.q, False)

    def delete_project(self, r):
        p = self.project(r.slug, r.kw["pk"])
        if not p:
            return 404, ERR_404
        p["deleted_at"] = now_iso()
        return 204, None

    def archive_project(self, r):
        p = self.project(r.slug, r.kw["project_id"])
        if not p:
            return 404, ERR_404
        p["archived_at"] = now_iso() if r.method == "POST" else None
        return 204, None

    # --- states and labels
    def states_of(self, r):
        p = self.project(r.slug, r.kw["project_id"], archived_ok=False)
        return sorted((s for s in self.s.states.values() if p and s["project"] == p["id"] and s["deleted_at"] is None),
                      key=lambda s: s["sequence"])

    def get_states(self, r):
        return paginate(r.q, self.states_of(r), lambda s: pick(dict(s), r.q.fields))

    def get_state(self, r):
        match = [s for s in self.states_of(r) if s["id"] == r.kw["state_id"]]
        return (200, pick(dict(match[0]), r.q.fields)) if match else (404, ERR_404)

    def delete_state(self, r):
        s = self.s.states.get(r.kw["state_id"])
        if not s or s["project"] != r.kw["project_id"] or s["deleted_at"]:
            return 404, ERR_404
        if s["default"]:
            return 400, {"error": "Default state cannot be deleted"}
        if any(i["state"] == s["id"] for i in self.s.issues.values()):
            return 400, {"error": "The state is not empty, only empty states can be deleted"}
        s["deleted_at"] = now_iso()
        return 204, None

    def labels_of(self, r):
        p = self.project(r.slug, r.kw["project_id"], archived_ok=False)
        member = p and self.s.p_role(r.slug, p["id"], r.user) is not None
        return newest_first(lb for lb in self.s.labels.values()
                            if member and lb["project"] == p["id"] and lb["deleted_at"] is None)

    def get_labels(self, r):
        return paginate(r.q, self.labels_of(r), lambda lb: pick(dict(lb), r.q.fields))

    def get_label(self, r):
        match = [lb for lb in self.labels_of(r) if lb["id"] == r.kw["pk"]]
        return (200, dict(match[0])) if match else (404, ERR_404)

    def delete_label(self, r):
        match = [lb for lb in self.labels_of(r) if lb["id"] == r.kw["pk"]]
        if not match:
            return 404, ERR_404
        match[0]["deleted_at"] = now_iso()
        return 204, None

    # --- work items (IssueSerializer)
    def validate_issue(self, r, partial):
        s, pid = self.s, r.kw["project_id"]
        spec = {"name": lambda v: v_char(v, 255, blank=False), "description_html": v_char,
                "priority": lambda v: v_choice(v, PRIORITIES), "state": lambda v: v_pk(v, s.states),
                "parent": lambda v: v_pk(v, s.issues), "labels": lambda v: v_pk_list(v, s.labels),
                "assignees": lambda v: v_pk_list(v, s.users), "start_date": v_date, "target_date": v_date,
                "point": lambda v: v_int(v, 0, 12), "external_source": lambda v: v_char(v, 255, null=True),
                "external_id": lambda v: v_char(v, 255, null=True), "estimate_point": lambda v: v_pk(v, {}),
                "type_id": lambda v: v_pk(v, {})}
        data = run_fields(r.data(), spec, partial, required=("name",))
        if data.get("start_date") and data.get("target_date") and data["start_date"] > data["target_date"]:
            raise Invalid({"non_field_errors": ["Start date cannot exceed target date"]})
        if data.get("description_html") is not None:
            data["description_html"] = plane_description_html(data["description_html"])
            if data["description_html"] is None:
                raise Invalid({"non_field_errors": ["Invalid HTML passed"]})
        if data.get("assignees"):  # silently keeps only active project members with role >= 15
            data["assignees"] = [m["member"] for m in newest_first(s.members.values()) if m["project"] == pid
                                 and m["is_active"] and m["role"] >= 15 and m["member"] in data["assignees"]]
        if data.get("labels"):  # silently keeps only labels of this project
            data["labels"] = [lb["id"] for lb in newest_first(s.labels.values())
                              if lb["project"] == pid and lb["id"] in data["labels"]]
        if data.get("state") and s.states[data["state"]]["project"] != pid:
            raise Invalid({"non_field_errors": ["State is not valid please pass a valid state_id"]})
        if data.get("parent") and s.issues[data["parent"]]["project"] != pid:
            raise Invalid({"non_field_errors": ["Parent is not valid issue_id please pass a valid issue_id"]})
        return data

    def duplicate(self, rows, pid, data):
        src, ext = data.get("external_source"), data.get("external_id")
        if not (src and ext):
            return None
        found = [x for x in rows if x["project"] == pid and x["deleted_at"] is None
                 and x["external_source"] == src and x["external_id"] == ext]
        return found[0] if found else None

    def post_issue(self, r):
        pid, raw = r.kw["project_id"], r.data()
        data = self.validate_issue(r, partial=False)
        dup = self.duplicate(self.s.issues.values(), pid, raw)
        if dup:
            return 409, {"error": "Issue with the same external id and external source already exists", "id": dup["id"]}
        p, t = self.s.projects[pid], now_iso()
        states = [st for st in self.s.states.values() if st["project"] == pid and st["deleted_at"] is None]
        state = data.get("state") or next((st["id"] for st in states if st["default"]), states[0]["id"])
        same_state = [i["sort_order"] for i in self.s.issues.values() if i["project"] == pid and i["state"] == state]
        self.s.sequence[pid] += 1
        iid = new_id()
        assignees = data.get("assignees") or (
            [p["default_assignee"]] if p["default_assignee"] and self.s.p_role(r.slug, pid, p["default_assignee"])
            in (20, 15) else [])
        self.s.issues[iid] = {
            "id": iid, "type_id": None, "created_at": t, "updated_at": t, "deleted_at": None,
            "point": data.get("point"), "name": data["name"],
            "description_html": data.get("description_html", "<p></p>"), "description_binary": None,
            "priority": data.get("priority", "none"), "start_date": data.get("start_date"),
            "target_date": data.get("target_date"), "sequence_id": self.s.sequence[pid],
            "sort_order": max(same_state) + 10000 if same_state else 65535.0,
            "completed_at": t if self.s.states[state]["group"] == "completed" else None, "archived_at": None,
            "is_draft": False, "external_source": data.get("external_source"), "external_id": data.get("external_id"),
            "created_by": r.user, "updated_by": None, "project": pid, "workspace": self.s.ws["id"],
            "parent": data.get("parent"), "state": state, "estimate_point": None, "type": None,
            "assignees": assignees, "labels": data.get("labels", [])}
        return 201, self.issue_out(self.s.issues[iid])

    def patch_issue(self, r):
        i, raw = self.issue_any(r.slug, r.kw["project_id"], r.kw["pk"]), r.data()
        if not i:
            return 404, ERR_404
        data = self.validate_issue(r, partial=True)
        if isinstance(raw, dict) and raw.get("external_id") and i["external_id"] != str(raw["external_id"]):
            probe = {"external_source": raw.get("external_source", i["external_source"]), "external_id": raw["external_id"]}
            if self.duplicate(self.s.issues.values(), i["project"], dict(probe, external_source=probe["external_source"]
                                                                          or None)) or (
                    not probe["external_source"] and any(
                        x["external_id"] == raw["external_id"] and x["external_source"] is None
                        for x in self.s.issues.values() if x["project"] == i["project"] and not x["deleted_at"])):
                return 409, {"error": "Issue with the same external id and external source already exists",
                             "id": i["id"]}
        if "state" in data and not data["state"]:  # Issue.save: _ensure_default_state
            data["state"] = next(st["id"] for st in self.s.states.values() if st["project"] == i["project"]
                                 and st["default"] and not st["deleted_at"])
        if "state" in data and data["state"] != i["state"]:
            group = self.s.states[data["state"]]["group"] if data["state"] else None
            i["completed_at"] = now_iso() if group == "completed" else None
        i.update(data)
        i["updated_by"], i["updated_at"] = r.user, now_iso()
        return 200, self.issue_out(i)

    def get_issues(self, r):
        pid = r.kw["project_id"]
        if r.q.get("external_id") and r.q.get("external_source"):
            found = self.duplicate(self.s.issues.values(), pid, r.q)
            return (200, self.issue_out(found, r.q)) if found else (404, ERR_404)
        rows, order = self.live_issues(pid), r.q.get("order_by", "-created_at")
        key = ISSUE_ORDER.get(order) or (lambda i: i[order.lstrip("-")])
        if order not in ISSUE_ORDER and (not rows or order.lstrip("-") not in rows[0]):
            return (500, ERR_500) if rows else paginate(r.q, [], None)
        rows.sort(key=lambda i: (i[order.lstrip("-")] is None, i[order.lstrip("-")] or 0)
                  if order not in ISSUE_ORDER else key(i), reverse=order.startswith("-") and order not in ISSUE_ORDER)
        return paginate(r.q, rows, lambda i: self.issue_out(i, r.q))

    def get_issue(self, r):
        match = [i for i in self.live_issues(r.kw["project_id"]) if i["id"] == r.kw["pk"]]
        return (200, self.issue_out(match[0], r.q)) if match else (404, ERR_404)

    def get_issue_by_identifier(self, r):
        try:
            seq = int(r.kw["issue_identifier"])
        except ValueError:
            return 500, ERR_500  # Plane: "Field 'sequence_id' expected a number"
        for p in self.s.projects.values():
            if p["identifier"] == r.kw["project_identifier"] and p["deleted_at"] is None:
                match = [i for i in self.live_issues(p["id"]) if i["sequence_id"] == seq]
                if match:
                    return 200, self.issue_out(match[0], r.q)
        return 404, ERR_404

    def delete_issue(self, r):
        i = self.issue_any(r.slug, r.kw["project_id"], r.kw["pk"])
        if not i:
            return 404, ERR_404
        if i["created_by"] != r.user and self.s.p_role(r.slug, i["project"], r.user) != 20:
            return 403, {"error": "Only admin or creator can delete the work item"}
        i["deleted_at"] = now_iso()
        return 204, None

    # --- comments (IssueCommentCreateSerializer in, IssueCommentSerializer out)
    def comments_of(self, r):
        p = self.project(r.slug, r.kw["project_id"], archived_ok=False)
        return newest_first(c for c in self.s.comments.values() if p and c["project"] == p["id"]
                            and c["issue"] == r.kw["issue_id"] and c["deleted_at"] is None)

    def get_comments(self, r):
        return paginate(r.q, self.comments_of(r), lambda c: self.comment_out(c, r.q, True))

    def get_comment(self, r):
        match = [c for c in self.comments_of(r) if c["id"] == r.kw["pk"]]
        return (200, self.comment_out(match[0], r.q, True)) if match else (404, ERR_404)

    def post_comment(self, r):
        pid, raw = r.kw["project_id"], r.data()
        dup = self.duplicate(self.s.comments.values(), pid, raw) if isinstance(raw, dict) else None
        if dup:  # checked before validation, across the whole project
            return 409, {"error": "Work item comment with the same external id and external source already exists",
                         "id": dup["id"]}
        spec = {"comment_html": v_char, "comment_json": lambda v: v,
                "access": lambda v: v_choice(v, ("INTERNAL", "EXTERNAL")),
                "external_source": lambda v: v_char(v, 255, null=True),
                "external_id": lambda v: v_char(v, 255, null=True)}
        data = run_fields(raw, spec, False)
        if r.kw["issue_id"] not in self.s.issues:
            return 400, {"error": "The payload is not valid"}  # IntegrityError on the issue foreign key
        cid, t = new_id(), now_iso()
        self.s.comments[cid] = {
            "id": cid, "created_at": t, "updated_at": t, "deleted_at": None,
            "comment_html": data.get("comment_html", "<p></p>"), "attachments": [],
            "access": data.get("access", "INTERNAL"), "external_source": data.get("external_source"),
            "external_id": data.get("external_id"), "edited_at": None, "created_by": r.user, "updated_by": None,
            "project": pid, "workspace": self.s.ws["id"], "description": new_id(), "issue": r.kw["issue_id"],
            "actor": r.user, "parent": None}
        return 201, self.comment_out(dict(self.s.comments[cid], updated_by=r.user))

    def delete_comment(self, r):
        c = self.s.comments.get(r.kw["pk"])
        if not c or c["issue"] != r.kw["issue_id"] or c["project"] != r.kw["project_id"] or c["deleted_at"]:
            return 404, ERR_404
        c["deleted_at"] = now_iso()
        return 204, None


# ---------------------------------------------------------------- routes (apps/api/plane/api/urls/*.py)
UUID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # Django's <uuid:> converter


def _route(template):
    rx = re.sub(r"<(str|uuid):(\w+)>", lambda m: "(?P<%s>%s)" % (m.group(2), "[^/]+" if m.group(1) == "str"
                                                                  else UUID_RE), template)
    return re.compile("^/api/v1/" + rx + "$")


P = "workspaces/<str:slug>/projects/<uuid:project_id>/"
ROUTES = [  # (template, permission, {method: handler}); handler None = a Plane route the double does not implement
    ("users/me/", "auth", {"GET": "get_me"}),
    ("workspaces/<str:slug>/members/", "ws_admin", {"GET": "get_ws_members"}),
    ("workspaces/<str:slug>/projects/", "project_base", {"GET": "get_projects", "POST": None}),
    ("workspaces/<str:slug>/projects/<uuid:pk>/", "project_base",
     {"GET": "get_project", "PATCH": None, "DELETE": "delete_project"}),
    (P + "archive/", "project_base", {"POST": "archive_project", "DELETE": "archive_project"}),
    (P + "states/", "entity", {"GET": "get_states", "POST": None}),
    (P + "states/<uuid:state_id>/", "entity", {"GET": "get_state", "PATCH": None, "DELETE": "delete_state"}),
    (P + "labels/", "member", {"GET": "get_labels", "POST": None}),
    (P + "labels/<uuid:pk>/", "member", {"GET": "get_label", "PATCH": None, "DELETE": "delete_label"}),
]
for members in ("members", "project-members"):
    ROUTES += [(P + members + "/", "member|admin", {"GET": "get_members", "POST": "post_members"}),
               (P + members + "/<uuid:pk>/", "member|admin",
                {"GET": "get_member", "PATCH": None, "DELETE": "delete_member"})]
for items in ("issues", "work-items"):
    ROUTES += [("workspaces/<str:slug>/%s/search/" % items, "auth", {"GET": None}),
               ("workspaces/<str:slug>/%s/<str:project_identifier>-<str:issue_identifier>/" % items, "entity",
                {"GET": "get_issue_by_identifier"}),
               (P + items + "/", "entity", {"GET": "get_issues", "POST": "post_issue"}),
               (P + items + "/<uuid:pk>/", "entity", {"GET": "get_issue", "PATCH": "patch_issue",
                                                      "DELETE": "delete_issue"}),
               (P + items + "/<uuid:issue_id>/comments/", "lite", {"GET": "get_comments", "POST": "post_comment"}),
               (P + items + "/<uuid:issue_id>/comments/<uuid:pk>/", "lite",
                {"GET": "get_comment", "PATCH": None, "DELETE": "delete_comment"})]
    for sub in ("links", "activities", "issue-attachments" if items == "issues" else "attachments", "relations"):
        ROUTES += [(P + items + "/<uuid:issue_id>/%s/" % sub, "auth", {"GET": None, "POST": None}),
                   (P + items + "/<uuid:issue_id>/%s/<uuid:pk>/" % sub, "auth",
                    {"GET": None, "PATCH": None, "DELETE": None})]
for other in ("summary", "cycles", "archived-cycles", "modules", "archived-modules", "estimates", "intake-issues"):
    ROUTES.append((P + other + "/", "auth", {"GET": None, "POST": None}))
    ROUTES.append((P + other + "/<str:rest>/", "auth", {"GET": None, "POST": None, "PATCH": None, "DELETE": None}))
ROUTES = [(_route(t), perm, methods) for t, perm, methods in ROUTES]


class Query(dict):
    @property
    def fields(self):  # ?fields=a,b and ?expand=a,b as BaseAPIView reads them
        return [f for f in self.get("fields", "").split(",") if f] or None

    @property
    def expand(self):
        return [f for f in self.get("expand", "").split(",") if f] or None


class Request:
    def __init__(self, method, kw, query, body, user):
        self.method, self.kw, self.slug, self.user, self._body = method, kw, kw.get("slug"), user, body
        self.q = Query((k, v[-1]) for k, v in parse_qs(query).items())  # QueryDict.get: the last value

    def data(self):  # DRF parses the body only when the view reads request.data
        return self._body()


class ParseError(Exception):
    def __init__(self, status, body):
        self.status, self.body = status, body


class App:
    def __init__(self, store, api_key, rate_limit):
        self.store, self.api, self.key, self.rate = store, Api(store), api_key, rate_limit
        self.history, self.faults, self.calls, self.destructive, self.dropped = [], [], [], [], 0

    def handle(self, method, path, query, headers, read_json):
        """The Plane pipeline: URL resolution, authentication, permission, throttle, method, view."""
        for rx, perm, methods in ROUTES:
            m = rx.match(path)
            if m:
                break
        else:
            if not path.endswith("/") and any(rx.match(path + "/") for rx, _, _ in ROUTES):
                return 301, None, {"Location": path + "/" + ("?" + query if query else "")}  # APPEND_SLASH
            return 404, {"error": "Page not found."}, {}
        out = self.view(method, path, query, headers, read_json, m.groupdict(), perm, methods)
        return out[0], out[1], dict(out[2], Allow=", ".join(methods))  # DRF: every APIView response

    def view(self, method, path, query, headers, read_json, kw, perm, methods):
        given = headers.get("X-Api-Key")
        if not given:
            return 401, {"detail": "Authentication credentials were not provided."}, {}
        if not hmac.compare_digest(given.encode(), self.key.encode()):
            return 403, {"detail": "Given API token is not valid"}, {}
        s, user = self.store, self.store.key_user
        perm = perm.split("|")[0 if method == "GET" else -1]
        if not s.allowed(perm, method, kw.get("slug"), user, kw):
            return 403, NO_PERMISSION, {}
        now = time.time()
        self.history = [t for t in self.history if t > now - 60]
        if len(self.history) >= self.rate:
            wait = math.ceil(60 - (now - self.history[-1])) if self.history else 60
            return 429, {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}, {"Retry-After": str(wait)}
        self.history.insert(0, now)
        limits = {"X-RateLimit-Remaining": str(max(0, self.rate - len(self.history))),
                  "X-RateLimit-Reset": str(int(now + 60))}
        if method not in methods:
            return 405, {"detail": 'Method "%s" not allowed.' % method}, limits
        if methods[method] is None:
            return 501, {"error": "This Plane route is not implemented by the Plane API test double.",
                         "method": method, "path": path}, limits
        try:
            out = getattr(self.api, methods[method])(Request(method, kw, query, read_json, user))
        except Invalid as e:
            out = (400, e.body)
        except ParseError as e:
            out = (e.status, e.body)
        return out[0], out[1], limits


# ---------------------------------------------------------------- HTTP
class Handler(BaseHTTPRequestHandler):
    protocol_version, server_version, sys_version, timeout = "HTTP/1.1", "plane-api-double", "", 30

    def log_message(self, *args):
        pass

    def version_string(self):
        return self.server_version

    def do_GET(self):
        app, url = self.server.app, urlsplit(self.path)
        status = None
        try:
            raw = self.read_body()
            if raw is None:
                return
            if url.path.startswith("/_double/"):
                status = self.reply(*app.control(self.command, url.path, raw))
                return
            fault = app.take_fault(self.command, url.path)
            if fault and fault.get("delay_ms"):
                time.sleep(fault["delay_ms"] / 1000)
            if fault and fault.get("drop"):
                status = "dropped"
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault and fault.get("status"):
                status = self.reply(*fault_response(fault))
                return
            with app.store.lock:
                out = app.handle(self.command, url.path, url.query, self.headers, lambda: parse_body(self.headers, raw))
            status = self.reply(*out)
        finally:
            if status is not None and not url.path.startswith("/_double/"):
                app.record(self.command, url.path, url.query, status)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def read_body(self):
        if self.headers.get("Transfer-Encoding"):
            self.reply(411, {"detail": "Send a Content-Length; the double does not read chunked bodies."}, {})
            self.close_connection = True
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:  # plane.middleware.request_body_size
            self.reply(413, {"error": "REQUEST_BODY_TOO_LARGE",
                             "detail": "The size of the request body exceeds the maximum allowed size."}, {})
            self.close_connection = True
            return None
        return self.rfile.read(length) if length else b""

    def reply(self, status, body, headers):
        data = b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if isinstance(body, str):
            data = body.encode()
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


def parse_body(headers, raw):
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if not raw:
        return {}
    if ctype == "application/json":
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise ParseError(400, {"detail": "JSON parse error - %s" % e})
    if ctype == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    raise ParseError(415, {"detail": 'Unsupported media type "%s" in request.' % ctype})


def fault_response(fault):
    st = fault["status"]
    if st == 429:  # Plane's auth_exception_handler for Throttled; DRF adds Retry-After
        return 429, {"error_code": 5900, "error_message": "RATE_LIMIT_EXCEEDED"}, {
            "Retry-After": str(fault.get("retry_after", 60))}
    if st == 500:
        return 500, ERR_500, {}
    return st, "<html><body><h1>%d</h1>the proxy in front of Plane answered %d</body></html>" % (st, st), {}


# ---------------------------------------------------------------- test controls (/_double/...), not Plane
def _record(self, method, path, query, status):
    with self.store.lock:
        call = {"method": method, "path": path, "query": query, "status": status}
        self.calls.append(call)
        if len(self.calls) > MAX_CALLS:
            self.calls.pop(0)
            self.dropped += 1
        if method == "DELETE" or path.endswith("/archive/") or "/archived-" in path:
            self.destructive.append(call)
            del self.destructive[:-MAX_CALLS]


def _take_fault(self, method, path):
    with self.store.lock:
        for f in self.faults:
            if f.get("method", method) == method and f.get("path_contains", "") in path:
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                return f
    return None


def _control(self, method, path, raw):
    with self.store.lock:
        if path == "/_double/calls" and method == "GET":
            return 200, {"calls": self.calls, "dropped": self.dropped, "destructive": self.destructive}, {}
        if path == "/_double/calls" and method == "DELETE":
            self.calls, self.destructive, self.dropped = [], [], 0
            return 204, None, {}
        if path == "/_double/state" and method == "GET":
            return 200, self.store.dump(), {}
        if path == "/_double/faults" and method == "GET":
            return 200, {"faults": self.faults}, {}
        if path == "/_double/faults" and method == "DELETE":
            self.faults = []
            return 204, None, {}
        if path == "/_double/faults" and method == "POST":
            try:
                f = json.loads(raw or b"{}")
                assert isinstance(f, dict) and set(f) <= {"count", "status", "delay_ms", "drop", "retry_after",
                                                          "method", "path_contains"}
                f["count"] = int(f.get("count", 1))
                assert 1 <= f["count"] <= 100000 and f.get("status") in (None, 429, 500, 502, 503, 504)
                assert 0 <= int(f.get("delay_ms", 0)) <= 60000 and 0 <= int(f.get("retry_after", 0)) <= 3600
                assert len(self.faults) < MAX_FAULTS and (f.get("status") or f.get("delay_ms") or f.get("drop"))
            except (ValueError, AssertionError, TypeError):
                return 400, {"error": "fault: JSON object with count 1..100000 and one or more of status "
                                      "(429|500|502|503|504), delay_ms (<=60000), drop; optional retry_after, "
                                      "method, path_contains"}, {}
            self.faults.append(f)
            return 201, {"faults": self.faults}, {}
    return 404, {"error": "unknown control; see GET/DELETE /_double/calls, GET /_double/state, "
                          "GET/POST/DELETE /_double/faults"}, {}


App.record, App.take_fault, App.control = _record, _take_fault, _control


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, app):
        super().__init__(address, Handler)
        self.app, self.slots = app, threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):  # bound the threads: refuse the connection
            self.shutdown_request(request)
            return
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
    ap.add_argument("--rate-limit", type=int, default=60, help="requests per key per minute (Plane: 60)")
    ap.add_argument("--seed", help="JSON seed file; default: workspace acme, users bot/alice/bob, projects WEB/OPS")
    ap.add_argument("--exit-on-stdin-eof", action="store_true", help="also exit when stdin reaches end of file")
    args = ap.parse_args()
    try:
        with open(args.api_key_file, "rb") as f:
            key = f.read(4097).decode("utf-8").strip()
        if not key or len(key) > 4096:
            raise ValueError("holds no key (or one over 4096 bytes)")
        seed = DEFAULT_SEED
        if args.seed:
            with open(args.seed, "rb") as f:
                seed = json.loads(f.read(1 << 20))
        store = Store(seed)
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit("plane-api-double: cannot start (%s: %s); check --api-key-file and --seed" % (type(e).__name__, e))
    server = Server(("127.0.0.1", args.port), App(store, key, args.rate_limit))
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
