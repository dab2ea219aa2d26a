#!/usr/bin/env python3
"""Drives the real agent-sidecar with the official MCP Python SDK, an independent client.

With mcp 1.x it uses ClientSession (the initialize handshake); with mcp 2.x it uses Client in its
default mode="auto" (a server/discover probe, 2026-07-28 when the server answers it). The upstream
is the real mcp-fixture-server on a loopback port, started here.

Usage: interop-python-sdk.py BUILD_DIR   (the directory holding agent-sidecar and mcp-fixture-server)
Prints one PASS/FAIL line per check and ends with "N passed, N failed"; exits 1 on any failure.
"""
import asyncio
import json
import os
import subprocess
import sys

import mcp

BUILD_DIR = sys.argv[1] if len(sys.argv) > 1 else ".build/debug"
results = []


def check(name, condition, detail=""):
    results.append(bool(condition))
    print(f"{'PASS' if condition else 'FAIL'} mcp {mcp_version()}: {name}{'' if condition else ' :: ' + str(detail)[:300]}", flush=True)


def mcp_version():
    from importlib.metadata import version
    return version("mcp")


def start_fixture():
    fixture = subprocess.Popen(
        [os.path.join(BUILD_DIR, "mcp-fixture-server"), "--port", "0", "--response-mode", "sse"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = fixture.stdout.readline()
    return fixture, json.loads(line)["url"]


def sidecar_parameters(url):
    return mcp.StdioServerParameters(command=os.path.join(BUILD_DIR, "agent-sidecar"), args=["serve", "--upstream", url, "--log-level", "warning"])


async def run_v1(url):
    from mcp.client.stdio import stdio_client
    async with stdio_client(sidecar_parameters(url)) as (read, write):
        async with mcp.ClientSession(read, write) as session:
            init = await session.initialize()
            check("initialize negotiates a version", init.protocolVersion in ("2025-06-18", "2025-11-25", "2025-03-26"), init.protocolVersion)
            check("server identifies as agent-sidecar", init.serverInfo.name == "agent-sidecar", init.serverInfo)
            tools = await session.list_tools()
            names = {tool.name for tool in tools.tools}
            check("tools/list relays the upstream's tools", {"echo", "add", "big"} <= names, names)
            result = await session.call_tool("echo", {"text": "from python"})
            check("tools/call returns the upstream's result", result.content[0].text == "from python", result)
            check("structuredContent passes through", (result.structuredContent or {}).get("text") == "from python", result.structuredContent)
            progress = []

            async def on_progress(value, total, message):
                progress.append(value)

            result = await session.call_tool("progress", {"steps": 3, "intervalMs": 10}, progress_callback=on_progress)
            check("progress notifications reach the client", len(progress) == 3 and not result.isError, progress)
            big = await session.call_tool("big", {"bytes": 1_000_000})
            check("a 1 MB result arrives whole", len(big.content[0].text.encode()) == 1_000_000)
            await session.send_ping()
            check("ping", True)


async def run_v2(url):
    async with mcp.Client(sidecar_parameters(url)) as client:
        check("auto mode settles on 2026-07-28 through server/discover", client.protocol_version == "2026-07-28", client.protocol_version)
        tools = await client.list_tools()
        names = {tool.name for tool in tools.tools}
        check("tools/list relays the upstream's tools", {"echo", "add", "big"} <= names, names)
        result = await client.call_tool("echo", {"text": "from python 2"})
        check("tools/call returns the upstream's result", result.content[0].text == "from python 2", result)
        result = await client.call_tool("add", {"a": 2, "b": 3})
        check("structuredContent passes through", (result.structured_content if hasattr(result, "structured_content") else result.structuredContent) is not None, result)
    async with mcp.Client(sidecar_parameters(url), mode="legacy") as client:
        check("legacy mode still initializes", client.protocol_version in ("2025-11-25", "2025-06-18"), client.protocol_version)
        result = await client.call_tool("echo", {"text": "legacy"})
        check("legacy tools/call works", result.content[0].text == "legacy", result)


def main():
    fixture, url = start_fixture()
    try:
        major = int(mcp_version().split(".")[0])
        asyncio.run(asyncio.wait_for(run_v2(url) if major >= 2 else run_v1(url), timeout=60))
    except Exception as error:  # a crash is a failure, reported as one line
        check("session completed without an exception", False, repr(error))
    finally:
        fixture.terminate()
        fixture.wait(timeout=10)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if results and passed == len(results) else 1)


if __name__ == "__main__":
    main()
