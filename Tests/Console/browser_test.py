#!/usr/bin/env python3
"""The owner console, end to end in a real browser (headless Chromium through Selenium).

A fresh gateway on a loopback port with a fresh SQLite database and the demo workspace. The owner
signs in by link, creates an agent, reads the pairing code off the page, pairs a real
`agent-sidecar setup` (the code typed at setup's own prompt, on a pseudo-terminal), makes a tool
call through `agent-sidecar serve`, sees the activity and the audit event on the agent's page,
revokes the agent (with the confirmation step) and sees the sidecar's next call refused. Then the
admin's page and the tracker's history are checked, and no sign-in link, pairing code or session
cookie is found in the gateway's log, the audit or the owner-action log.

Each step prints PASS or FAIL; the run ends with "N passed, N failed". Screenshots of every page go
to --artifacts; --readme-shots DIR writes the README's screenshots (pages with no code or link).
"""

import argparse
import json
import os
import pty
import queue
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tomllib

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from console_support import STEP_TIMEOUT, StdioClient, StepFailed, expect, wait_for


class ConsoleRun:
    def __init__(self, options):
        self.options = options
        self.gateway_bin = os.path.join(options.bin_dir, "agent-gateway")
        self.sidecar_bin = os.path.join(options.bin_dir, "agent-sidecar")
        self.work = tempfile.mkdtemp(prefix="console-e2e-")
        self.db = os.path.join(self.work, "gateway.sqlite")
        self.home = os.path.join(self.work, "home")
        self.project_dir = os.path.join(self.home, "src", "website")
        self.gateway_log = os.path.join(self.work, "gateway.log")
        self.artifacts = os.path.abspath(options.artifacts)
        os.makedirs(self.artifacts, exist_ok=True)
        for old in os.listdir(self.artifacts):
            if old.endswith(".png"):
                os.remove(os.path.join(self.artifacts, old))
        self.secrets = []  # every link, code and cookie seen, for the final scan
        self.processes = []
        self.passed = 0
        self.failed = 0
        self.browser = None
        self.client = None
        self.shot_number = 0

    # ----- plumbing -----

    def admin(self, *args):
        result = subprocess.run([self.gateway_bin, *args, "--db", self.db], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        expect(result.returncode == 0, f"agent-gateway {' '.join(args[:2])} exited {result.returncode}: {result.stderr.strip()[:300]}")
        return result.stdout.strip()

    def start(self, argv, **kwargs):
        process = subprocess.Popen(argv, **kwargs)
        self.processes.append(process)
        with open(self.options.pid_file, "a") as handle:
            handle.write(f"{process.pid}\n")
        return process

    def screenshot(self, name, readme_name=None):
        self.shot_number += 1
        path = os.path.join(self.artifacts, f"{self.shot_number:02d}-{name}.png")
        self.browser.save_screenshot(path)
        if readme_name and self.options.readme_shots:
            os.makedirs(self.options.readme_shots, exist_ok=True)
            shutil.copyfile(path, os.path.join(self.options.readme_shots, readme_name))
        return path

    def page_text(self):
        """The page's text; empty while a navigation replaces the page (the old body goes stale)."""
        try:
            return self.browser.find_element(By.TAG_NAME, "body").text
        except (StaleElementReferenceException, NoSuchElementException):
            return ""

    def text_of(self, selector):
        try:
            return self.browser.find_element(By.CSS_SELECTOR, selector).text
        except (StaleElementReferenceException, NoSuchElementException):
            return ""

    def open(self, path):
        self.browser.get(self.url + path)

    def login_link(self, user):
        link = self.admin("user", "login-link", user, "--url", self.url, "--ttl", "300")
        expect(re.fullmatch(r"http://127\.0\.0\.1:\d+/console/sign-in\?token=agl_[A-Za-z0-9_-]{43}", link), "the sign-in link has an unexpected form")
        self.secrets.append(link.split("token=")[1])
        return link

    def step(self, name, body):
        try:
            detail = body()
            self.passed += 1
            print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, the run goes on where it can
            self.failed += 1
            print(f"FAIL {name}: {error}", flush=True)
            if self.browser:
                try:
                    self.screenshot("failed-" + re.sub(r"[^a-z0-9]+", "-", name.lower()))
                except Exception:  # noqa: BLE001
                    pass
            return False
        return True

    # ----- the steps -----

    def start_gateway(self):
        self.admin("seed-demo")
        log = open(self.gateway_log, "wb")
        self.gateway = self.start(
            [self.gateway_bin, "serve", "--db", self.db, "--host", "127.0.0.1", "--port", "0", "--policy", "docs/policy-demo.yaml"],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.gateway.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise StepFailed(f"the gateway printed no URL within 30 s; see {self.gateway_log}")
        self.url = json.loads(line)["url"]
        expect(re.fullmatch(r"http://127\.0\.0\.1:\d+", self.url), f"unexpected URL {self.url}")
        return f"{self.url}, fresh database with the demo workspace"

    def start_browser(self):
        options = Options()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                         "--no-first-run", "--disable-extensions", "--disable-background-networking"):
            options.add_argument(argument)
        service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        self.browser = webdriver.Chrome(service=service, options=options)
        self.browser.set_page_load_timeout(STEP_TIMEOUT)
        return self.browser.capabilities.get("browserVersion", "chromium")

    def sign_in(self):
        link = self.login_link("alice")
        self.browser.get(link)
        self.screenshot("sign-in")
        self.browser.find_element(By.ID, "sign-in").click()
        wait_for(lambda: "My agents" in self.page_text(), "signing in did not lead to My agents")
        cookie = self.browser.get_cookie("agw_console")
        expect(cookie and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", f"session cookie flags: {cookie}")
        self.secrets.append(cookie["value"])
        self.screenshot("my-agents-empty")
        return "signed in as Alice; cookie HttpOnly, SameSite=Strict"

    def create_agent(self):
        self.open("/console/agents/new")
        expect("Create an agent" in self.page_text(), "no Create agent page")
        expect("Comment on issues." in self.page_text(), "scopes are not explained in plain words")
        self.browser.find_element(By.ID, "name").send_keys("Codex <laptop>")
        # project:read is ticked on every project by default; keep WEB, untick OPS, add issue:comment on WEB.
        for box in self.browser.find_elements(By.CSS_SELECTOR, "input[name=grant]"):
            value = box.get_attribute("value")
            if value == "OPS project:read" and box.is_selected():
                box.click()
            if value in ("WEB issue:comment", "WEB issue:move") and not box.is_selected():
                box.click()
        self.screenshot("create-agent", "console-create-agent.png")
        self.browser.find_element(By.ID, "create-agent").click()
        wait_for(lambda: self.text_of("#pairing-code"), "no pairing panel after creating the agent")
        self.code = self.browser.find_element(By.ID, "pairing-code").text.strip()
        expect(re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", self.code), "the pairing code on the page has an unexpected form")
        self.secrets.append(self.code)
        command = self.browser.find_element(By.ID, "setup-command").text.strip()
        expect(command == f"agent-sidecar setup --gateway {self.url}", f"the setup command is {command!r}")
        expect(self.code not in command, "the pairing code is on the command line")
        expect("expires at" in self.page_text(), "the pairing panel shows no expiry")
        self.screenshot("pairing-panel")
        self.browser.find_element(By.ID, "agent-link").click()
        wait_for(lambda: "/console/agents/agt_" in self.browser.current_url, "the agent link did not open the agent")
        self.agent_id = self.browser.current_url.rsplit("/", 1)[1].split("?")[0]
        expect("Codex <laptop>" in self.page_text(), "the agent name was not shown as text")
        return f"agent {self.agent_id}; pairing code read off the page; command {command}"

    def pair_sidecar(self):
        os.makedirs(self.project_dir, exist_ok=True)
        env = {"HOME": self.home, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TERM": "dumb"}
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(self.project_dir)
            os.execve(self.sidecar_bin, [self.sidecar_bin, "setup", "--gateway", self.url, "--device-name", "e2e-laptop"], env)
        output = b""
        typed = False
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                output += chunk
                if not typed and b"Pairing code" in output:
                    # Type only once setup has turned echo off (it flushes what came before).
                    echo_deadline = time.monotonic() + 5
                    while time.monotonic() < echo_deadline and termios.tcgetattr(fd)[3] & termios.ECHO:
                        time.sleep(0.05)
                    os.write(fd, self.code.encode() + b"\n")
                    typed = True
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
                break
        while status is None and time.monotonic() < deadline + 10:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
            else:
                time.sleep(0.1)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
        text = output.decode(errors="replace")
        expect(typed, f"setup never asked for the pairing code: {text[:300]}")
        expect(self.code not in text, "setup echoed the pairing code")
        expect(status == 0, f"setup exited {status}: {text.strip()[-400:]}")
        config_path = os.path.join(self.home, ".codex", "config.toml")
        with open(config_path, "rb") as handle:
            self.server_entry = tomllib.load(handle)["mcp_servers"]["agent-sidecar"]
        return "code typed at setup's prompt; ~/.codex/config.toml written"

    def tool_call(self):
        entry = self.server_entry
        env = {"HOME": self.home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({key: str(value) for key, value in entry.get("env", {}).items()})
        self.sidecar_stderr = open(os.path.join(self.work, "sidecar.stderr"), "wb")
        process = self.start([entry["command"], *entry.get("args", [])], cwd=self.project_dir, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.sidecar_stderr)
        self.client = StdioClient(process)
        response = self.client.request("initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "console-e2e", "version": "1"}})
        expect("result" in response, f"initialize failed: {response}")
        self.client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        response = self.client.request("tools/call", {"name": "list_projects", "arguments": {}})
        expect("result" in response and not response["result"].get("isError"), f"list_projects failed: {json.dumps(response)[:300]}")
        keys = [project["key"] for project in response["result"]["structuredContent"]["projects"]]
        expect(keys == ["WEB"], f"list_projects gave {keys}")
        response = self.client.request("tools/call", {"name": "comment_issue", "arguments": {
            "issue": "WEB-1", "body": "The footer link points to /sigup; fixing the typo fixes it.", "idempotencyKey": "console-e2e-comment-1"}})
        expect("result" in response and not response["result"].get("isError"), f"comment_issue failed: {json.dumps(response)[:300]}")
        return "list_projects (WEB) and comment_issue on WEB-1 through agent-sidecar serve"

    def approve_in_console(self):
        """The demo policy makes a move to Done high: the call waits, sends progress, and runs
        once Alice approves it on the console's Approvals page (which reloads itself)."""
        notifications = []
        request_id = self.client.start_request("tools/call", {
            "name": "move_issue", "arguments": {"issue": "WEB-2", "state": "Done", "idempotencyKey": "console-e2e-move-1"},
            "_meta": {"progressToken": "move-1"}})
        self.open("/console/approvals")
        wait_for(lambda: "move WEB-2 to “Done”" in self.page_text(), "the request did not appear on the Approvals page (it reloads every 5 s)")
        self.screenshot("approvals-pending")
        # The page reloads itself every 5 s: an element can go stale between finding and clicking.
        for attempt in range(5):
            try:
                section = self.browser.find_element(By.CSS_SELECTOR, "section.approval")
                expect("Codex <laptop>" in section.text and "move_issue" in section.text and "WEB" in section.text,
                       f"the request does not say who asks for what: {section.text}")
                section.find_element(By.CSS_SELECTOR, "form[action$='/approve'] input[name=reason]").send_keys("release day")
                section.find_element(By.CSS_SELECTOR, "form[action$='/approve'] button").click()
                break
            except StaleElementReferenceException:
                time.sleep(0.2)
        wait_for(lambda: "Nothing waits for a decision." in self.page_text(), "the request is still pending after Approve")
        expect("approved" in self.text_of("table") and "release day" in self.text_of("table"), "the decision is not listed")
        response = self.client.answer(request_id, notifications, timeout=60)
        result = response.get("result", {})
        expect(not result.get("isError"), f"the approved move failed: {json.dumps(response)[:300]}")
        expect("Done" in json.dumps(result.get("structuredContent", {})), "the move did not reach Done")
        messages = [n.get("params", {}).get("message", "") for n in notifications if n.get("method") == "notifications/progress"]
        expect(any("waiting for Alice to approve" in m for m in messages), f"no progress relayed while waiting: {messages}")
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            moves = connection.execute("SELECT outcome, tier, approvalID FROM auditEvent WHERE tool = 'move_issue'").fetchall()
        finally:
            connection.close()
        expect(len(moves) == 1 and moves[0][0] == "ok" and moves[0][1] == "high" and moves[0][2], f"move_issue audit: {moves}")
        self.screenshot("approvals-decided")
        return f"progress relayed ({len(messages)}), approved on the page, the move ran once: {moves[0][2]}"

    def see_activity(self):
        self.open(f"/console/agents/{self.agent_id}")
        wait_for(lambda: "move_issue" in self.text_of("#last-call"),
                 "the agent page does not show the last call", timeout=10)
        rows = self.browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
        for tool in ("list_projects", "comment_issue", "move_issue"):
            expect(any(tool in row.text and "ok" in row.text for row in rows), f"the audit feed has no {tool} ok row")
        expect("e2e-laptop" in self.page_text(), "the paired device is not listed")
        expect("connected" in self.browser.find_element(By.CSS_SELECTOR, "h1 .state").text, "the agent is not shown as connected")
        self.screenshot("agent-detail", "console-agent-detail.png")
        self.open("/console")
        expect("connected" in self.page_text() and "move_issue" in self.page_text(), "My agents does not show the activity")
        self.screenshot("my-agents", "console-my-agents.png")
        self.browser.set_window_size(390, 844)
        self.screenshot("my-agents-phone", "console-my-agents-phone.png")
        self.browser.set_window_size(1280, 900)
        return "last call, audit event, device and connected state shown"

    def revoke(self):
        self.open(f"/console/agents/{self.agent_id}")
        self.browser.find_element(By.ID, "revoke-agent").click()
        wait_for(lambda: self.text_of("#confirm"), "no confirmation step before revoking")
        self.screenshot("revoke-confirm")
        self.browser.find_element(By.ID, "confirm").click()
        wait_for(lambda: "revoked" in self.text_of("h1 .state"), "the agent is not shown as revoked")
        self.screenshot("agent-revoked")
        return "confirmed; state revoked"

    def refused_after_revoke(self):
        response = self.client.request("tools/call", {"name": "list_projects", "arguments": {}})
        text = json.dumps(response)
        result = response.get("result", {})
        refused = "agent_revoked" in text or (result.get("isError") and "revoked" in text)
        expect(refused, f"the next call was not refused as revoked: {text[:300]}")
        return "the sidecar's next call: refused, the agent was revoked"

    def admin_and_tracker(self):
        self.browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
        wait_for(lambda: "Sign in" in self.page_text(), "signing out did not end the session")
        self.browser.get(self.login_link("ada"))
        self.browser.find_element(By.ID, "sign-in").click()
        wait_for(lambda: "My agents" in self.page_text(), "the admin could not sign in")
        self.secrets.append(self.browser.get_cookie("agw_console")["value"])
        expect("Alice" in self.page_text(), "the admin does not see Alice's agent")
        self.open("/console/admin")
        text = self.page_text()
        expect("People" in text and "alice" in text and "bob" in text, "the Admin page does not list the people")
        expect("revoke_agent" in text and "create_agent" in text, "the Admin page does not show the owner actions")
        self.screenshot("admin", "console-admin.png")
        self.open("/console/tracker/WEB/1")
        history = self.browser.find_element(By.ID, "history").text
        expect("created the issue" in history, "the issue has no history")
        expect("agent Codex <laptop> for Alice commented" in history, f"the history does not name the agent and its owner: {history}")
        self.screenshot("tracker-issue", "console-tracker-issue.png")
        return "admin sees every agent, people and actions; the tracker shows history"

    def secret_scan(self):
        with open(self.gateway_log, "rb") as handle:
            log = handle.read().decode(errors="replace")
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            rows = [json.dumps(row) for table in ("auditEvent", "ownerAction", "issueChange")
                    for row in connection.execute(f"SELECT * FROM {table}")]
        finally:
            connection.close()
        sidecar_path = os.path.join(self.work, "sidecar.stderr")
        sidecar = open(sidecar_path, "rb").read().decode(errors="replace") if os.path.exists(sidecar_path) else ""
        found = [name for name, text in (("gateway log", log), ("audit/actions", "\n".join(rows)), ("sidecar log", sidecar))
                 for secret in self.secrets if secret and secret in text]
        expect(len(self.secrets) >= 3, f"only {len(self.secrets)} secrets were collected")
        expect(not found, f"a secret reached: {found}")
        return f"{len(self.secrets)} links, codes and cookies absent from the gateway log, audit, owner actions and sidecar log"

    def run(self):
        ok = self.step("gateway on loopback", self.start_gateway)
        ok = ok and self.step("headless Chromium", self.start_browser)
        ok = ok and self.step("1. sign in by link", self.sign_in)
        ok = ok and self.step("2-3. create an agent, read the pairing code", self.create_agent)
        ok = ok and self.step("4. pair agent-sidecar setup", self.pair_sidecar)
        ok = ok and self.step("5. tool call through agent-sidecar serve", self.tool_call)
        ok = ok and self.step("5b. a high-tier move waits and is approved in the console", self.approve_in_console)
        ok = ok and self.step("6. activity and audit event on the page", self.see_activity)
        ok = ok and self.step("7. revoke the agent", self.revoke)
        ok = ok and self.step("8. the sidecar's next call is refused", self.refused_after_revoke)
        if ok:
            self.step("admin page and tracker history", self.admin_and_tracker)
        if self.passed:
            self.step("no link, code or cookie in logs or audit", self.secret_scan)
        print(f"screenshots: {self.artifacts}", flush=True)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return self.failed == 0

    def close(self):
        if self.browser:
            try:
                self.browser.quit()
            except Exception:  # noqa: BLE001
                pass
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        if not self.options.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--readme-shots")
    parser.add_argument("--keep", action="store_true")
    options = parser.parse_args()
    run = ConsoleRun(options)
    try:
        ok = run.run()
    finally:
        run.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
