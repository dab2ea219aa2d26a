#!/usr/bin/env python3
"""The smoke run's steps with the gateway in front of Plane: a paired sidecar, driven as Codex would.

Usage:
  Tests/Smoke/plane_smoke.py --bin-dir .build/debug --plane-double
      starts the TEST DOUBLE of Plane's API (Tests/Doubles/plane-api-double.py) on loopback: CI's run.
  Tests/Smoke/plane_smoke.py --bin-dir .build/debug --plane-url http://127.0.0.1:58000 \\
      --plane-workspace acme --plane-api-key-file FILE
      runs against a real Plane (the bot user's API key in FILE, mode 600), as docs/plane.md records.

The steps are those of Tests/Smoke/driver.py; the tracker's state is read back from Plane's API
instead of the gateway's database (work sessions and the audit stay in the gateway's database).
The Plane workspace needs a project WEB in which the API key's user is an admin, with the labels
bug and feature, a member whose display name is alice, and a project OPS the agent is not granted.
Everything it writes in Plane carries the run's id; it deletes nothing.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402
from driver import StepFailed, expect, unmarked  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Plane:
    """Plane's API as a person reads it, with the bot's key (never printed)."""

    def __init__(self, url, workspace, key):
        self.base = f"{url.rstrip('/')}/api/v1/workspaces/{workspace}/"
        self.key = key
        self.project_ids = {}

    def get(self, path):
        request = urllib.request.Request(self.base + path, headers={"X-API-Key": self.key, "Accept": "application/json"})
        for attempt in range(4):
            try:
                with urllib.request.urlopen(request, timeout=15) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                if error.code == 429 and attempt < 3:
                    time.sleep(min(int(error.headers.get("Retry-After") or 2), 20))
                    continue
                raise StepFailed(f"Plane answered GET {path} with {error.code}")
        raise StepFailed(f"Plane kept answering GET {path} with 429")

    def all(self, path):
        items, cursor = [], None
        for _ in range(50):
            separator = "&" if "?" in path else "?"
            page = self.get(f"{path}{separator}per_page=100" + (f"&cursor={cursor}" if cursor else ""))
            if isinstance(page, list):
                return page
            items += page["results"]
            if not page.get("next_page_results"):
                return items
            cursor = page["next_cursor"]
        return items

    def project_id(self, identifier):
        if identifier not in self.project_ids:
            found = [p["id"] for p in self.all("projects/") if p["identifier"] == identifier]
            expect(found, f"Plane has no project {identifier}")
            self.project_ids[identifier] = found[0]
        return self.project_ids[identifier]

    def items(self, identifier):
        return self.all(f"projects/{self.project_id(identifier)}/issues/")

    def item(self, key):
        return self.get(f"issues/{key}/")

    def comments(self, key):
        item = self.item(key)
        return self.all(f"projects/{item['project']}/issues/{item['id']}/comments/")

    def names(self, identifier, kind):
        return {entry["id"]: entry["name"] for entry in self.all(f"projects/{self.project_id(identifier)}/{kind}/")}


class PlaneSmoke(driver.Smoke):
    def __init__(self, options):
        super().__init__(options)
        self.plane_key_file = options.plane_api_key_file
        self.plane = None

    def start_double(self):
        key_file = os.path.join(self.work, "plane-api-key")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write("plane_api_double_" + os.urandom(12).hex())
        self.plane_key_file = key_file
        log = open(os.path.join(self.work, "plane-double.log"), "wb")
        double = self.processes.start(
            [sys.executable, os.path.join(ROOT, "Tests", "Doubles", "plane-api-double.py"), "--port", "0", "--api-key-file", key_file,
             "--rate-limit", "6000"], stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = double.stdout.readline().decode().strip()
        expect(line.startswith("listening on "), f"the Plane double did not start: {line!r}")
        return line[len("listening on "):]

    def start_gateway(self):
        url = self.start_double() if self.options.plane_double else self.options.plane_url
        with open(self.plane_key_file) as handle:
            self.plane = Plane(url, self.options.plane_workspace, handle.read().strip())
        log = open(self.gateway_log_path, "wb")
        self.gateway = self.processes.start(
            [self.gateway_bin, "serve", "--db", self.db, "--port", "0", "--write-rate", str(driver.WRITE_RATE), "--tracker", "plane",
             "--plane-url", url, "--plane-workspace", self.options.plane_workspace, "--plane-api-key-file", self.plane_key_file],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        line = self.gateway.stdout.readline()
        expect(line, f"the gateway exited ({self.gateway.poll()}) before listening; see {self.gateway_log_path}")
        self.gateway_url = json.loads(line)["url"]
        # Over Plane the demo adds only the people who own agents: the projects are Plane's.
        self.admin("seed-demo")
        rows = self.query("SELECT count(*) AS n FROM project")
        expect(rows[0]["n"] == 0, f"the gateway's database holds {rows[0]['n']} projects of its own")
        return f"{self.gateway_url} in front of Plane at {url} (workspace {self.options.plane_workspace}); demo people seeded"

    def item_named(self, title):
        return [item for item in self.plane.items("WEB") if item["name"] == title]

    def step_projects(self):
        projects = self.call_ok("list_projects", {})["structuredContent"]["projects"]
        expect([project["key"] for project in projects] == ["WEB"], f"list_projects gave {projects}")
        context = self.call_ok("get_project_context", {"project": "WEB"})["structuredContent"]
        states = [unmarked(state["name"]) for state in context["states"]]
        labels = {unmarked(label["name"]) for label in context["labels"]}
        members = {unmarked(member["name"]) for member in context["members"]}
        expect(states[:4] == ["Backlog", "Todo", "In Progress", "Done"], f"states {states}")
        expect({"bug", "feature"} <= labels, f"labels {labels}")
        expect("alice" in members, f"members {members}")
        expect(sorted(states) == sorted(self.plane.names("WEB", "states").values()), "the states differ from Plane's")
        return f"only WEB; states {', '.join(states)} (Plane's); members {', '.join(sorted(members))}"

    def step_idempotent_create(self):
        title, first = self.create_and_replay()
        items = self.item_named(title)
        expect(len(items) == 1 and items[0]["id"] == first["id"], f"Plane holds {len(items)} work items titled {title!r}")
        item = items[0]
        expect(item.get("external_source") == "agent-gateway" and item.get("external_id", "").startswith(self.agent_id + ":"),
               f"the work item's external id is {item.get('external_source')}/{item.get('external_id')}")
        return f"{first['key']} once in Plane (external id {item['external_id'][:20]}…), replay marked replayed"

    def step_update_blocks(self):
        blocks = [{"name": "Acceptance criteria", "text": "The button lines up at 320 px."}, {"name": "Plan", "text": "Fix the flex gap."}]
        self.call_ok("update_issue_blocks", {"issue": self.issue_key, "blocks": blocks})
        html = self.plane.item(self.issue_key)["description_html"]
        for block in blocks:
            expect(f"<h3>{block['name']}</h3>" in html and block["text"] in html, f"Plane's description lacks {block['name']}: {html[:300]}")
        expect("Found by the smoke run." in html, "the description text was lost")
        return "2 blocks as sections of the description in Plane"

    def step_move(self):
        self.call_ok("move_issue", {"issue": self.issue_key, "state": "in progress"})
        state = self.plane.names("WEB", "states").get(self.plane.item(self.issue_key)["state"])
        expect(state == "In Progress", f"Plane's state is {state}")
        return "state In Progress in Plane (given by name, any case)"

    def step_comment(self):
        body = f"Reproduced on mobile Safari ({self.run_id})."
        comment = self.call_ok("comment_issue", {"issue": self.issue_key, "body": body})["structuredContent"]["comment"]
        found = [c for c in self.plane.comments(self.issue_key) if c["id"] == comment["id"]]
        expect(found and body in found[0]["comment_html"], f"Plane has no such comment: {found}")
        expect(f"({self.agent_id}) for Alice" in found[0]["comment_html"], f"the comment does not name the agent: {found[0]['comment_html']}")
        notes = [c for c in self.plane.comments(self.issue_key) if "Moved to In Progress." in c["comment_html"]]
        expect(notes, "the move left no note naming the agent in Plane")
        return f"comment {comment['id']} in Plane, ending with the agent's name and its owner's"

    def step_labels(self):
        self.call_ok("set_issue_labels", {"issue": self.issue_key, "labels": ["Feature", "bug"]})
        names = self.plane.names("WEB", "labels")
        stored = sorted(names[label] for label in self.plane.item(self.issue_key)["labels"])
        expect(stored == ["bug", "feature"], f"Plane's labels {stored}")
        return "labels bug, feature in Plane"

    def step_assign(self):
        self.call_ok("assign_issue", {"issue": self.issue_key, "assignees": ["alice"]})
        members = {m["id"]: m.get("display_name") for m in self.plane.all(f"projects/{self.plane.project_id('WEB')}/members/")}
        stored = [members.get(user) for user in self.plane.item(self.issue_key)["assignees"]]
        expect(stored == ["alice"], f"Plane's assignees {stored}")
        return "assignee alice in Plane (given by display name)"

    def step_scope_escape(self):
        before = len(self.plane.items("OPS")) if self.options.plane_double else None
        self.call_refused("get_project_context", {"project": "OPS"}, "project_not_granted")
        self.call_refused("get_issue", {"issue": "OPS-1"}, "project_not_granted")
        self.call_refused("create_issue", {"project": "OPS", "title": "should never exist"}, "project_not_granted")
        self.call_refused("get_project_context", {"project": "NOPE"}, "project_not_granted")
        if before is not None:
            expect(len(self.plane.items("OPS")) == before, "a work item appeared in OPS")
        return "OPS, OPS-1, a write to OPS and an unknown project: project_not_granted, before any call to Plane"

    def step_unknown_tool(self):
        for name in ("delete_issue", "archive_issue"):
            response = self.call(name, {"issue": self.issue_key})
            expect("error" in response or response.get("result", {}).get("isError"), f"{name} was not refused")
        expect(self.plane.item(self.issue_key)["id"] == self.issue_id, "the work item is gone")
        return "delete_issue and archive_issue refused; the work item is still in Plane"

    def step_rate_limit(self):
        prefix = f"burst {self.run_id} #"
        arguments = [{"issue": self.issue_key, "body": f"{prefix}{index}", "idempotencyKey": f"smoke-burst-{self.run_id}-{index}"}
                     for index in range(driver.BURST)]
        ids = [self.client.start_request("tools/call", {"name": "comment_issue", "arguments": item}) for item in arguments]
        responses = self.client.wait(ids, timeout=120)
        for item, response in zip(arguments, responses):
            self.calls.add("comment_issue", item, response)
        codes = [driver.error_code(response) for response in responses]
        accepted = [item["body"] for item, code in zip(arguments, codes) if code is None]
        # The gateway's own limit answers rate_limited; Plane's (60 a minute per key by default)
        # answers tracker_rate_limited once the gateway's back-off gave up. Both lose nothing.
        limited = [code for code in codes if code in ("rate_limited", "tracker_rate_limited")]
        others = [code for code in codes if code not in (None, "rate_limited", "tracker_rate_limited")]
        expect(not others, f"unexpected answers in the burst: {others}")
        expect(limited and accepted, f"{len(accepted)} accepted, {len(limited)} limited at {driver.WRITE_RATE}/min")
        stored = [c["comment_html"] for c in self.plane.comments(self.issue_key) if prefix in c["comment_html"]]
        expect(len(stored) == len(accepted), f"{len(accepted)} writes answered ok, {len(stored)} comments in Plane")
        plane_limited = codes.count("tracker_rate_limited")
        return (f"{len(accepted)} of {driver.BURST} concurrent writes in Plane, {len(limited) - plane_limited} refused by the gateway's limit, "
                f"{plane_limited} by Plane's")

    def step_no_secrets(self):
        summary = super().step_no_secrets()
        with open(self.gateway_log_path, "rb") as handle:
            log = handle.read()
        expect(self.plane.key.encode() not in log, "the Plane API key is in the gateway's log")
        expect(self.plane.key.encode() not in b"".join(self.client.raw_lines), "the Plane API key reached the agent")
        audit = self.admin("audit", "--agent", self.agent_id, "--json")
        expect(self.plane.key not in audit, "the Plane API key is in the audit")
        return summary + "; the Plane API key is in no log, audit or MCP message"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", default=".build/release")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--pid-file")
    parser.add_argument("--plane-double", action="store_true", help="start the test double of Plane's API")
    parser.add_argument("--plane-url")
    parser.add_argument("--plane-workspace", default="acme")
    parser.add_argument("--plane-api-key-file")
    options = parser.parse_args()
    if not options.plane_double and not (options.plane_url and options.plane_api_key_file):
        parser.error("give --plane-double, or --plane-url and --plane-api-key-file")
    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    driver.run_and_report(PlaneSmoke(options), "plane smoke")


if __name__ == "__main__":
    main()
