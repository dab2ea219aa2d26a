#!/usr/bin/env python3
"""Checks the module graph in docs/architecture.md against Package.swift, and the layering rules.

Usage: check-module-graph.py [REPO_ROOT]   (run by scripts/test; needs `swift` on PATH)

docs/architecture.md holds the graph as a table between the markers
`<!-- module-graph:begin -->` and `<!-- module-graph:end -->`: one row per target,
`| \`Target\` | \`Dep\`, \`Dep\` |` (or "nothing"). The check fails when a target or an edge is in
one and not the other, so the document cannot drift from the package. It also enforces the rules
the architecture rests on:

* dependencies point one way: no library depends on an executable, no cycle;
* the sidecar never links the gateway's server stack (Hummingbird, NIO, GRDB, PostgreSQL, GatewayCore);
* the shared vocabulary module depends on no other module of ours;
* the two support modules (SodiumKit, SystemSupport) depend on no module of ours but C libraries.

Prints one line per problem and exits 1 if there is any.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

SERVER_STACK = {"Hummingbird", "HummingbirdCore", "GRDB", "NIOCore", "NIOPosix", "PostgresNIO", "GatewayCore"}
SIDECAR_SIDE = {"SidecarCore", "agent-sidecar"}
SHARED_VOCABULARY = "AgentWire"
LEAF_SUPPORT = {"SodiumKit", "SystemSupport"}


def package_graph(root):
    dump = subprocess.run(["swift", "package", "dump-package"], cwd=root, capture_output=True, text=True, check=True)
    package = json.loads(dump.stdout)
    graph, kinds = {}, {}
    for target in package["targets"]:
        dependencies = []
        for dependency in target.get("dependencies", []):
            (kind, value), = dependency.items()
            dependencies.append(value[0])
        graph[target["name"]] = set(dependencies)
        kinds[target["name"]] = target["type"]
    return graph, kinds


def documented_graph(root):
    text = (Path(root) / "docs" / "architecture.md").read_text()
    match = re.search(r"<!-- module-graph:begin -->(.*?)<!-- module-graph:end -->", text, re.S)
    if not match:
        return None
    graph = {}
    for line in match.group(1).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        graph[name] = set(re.findall(r"`([^`]+)`", cells[1]))
    return graph


def closure(graph, start):
    seen, stack = set(), [start]
    while stack:
        for dependency in graph.get(stack.pop(), ()):
            if dependency not in seen:
                seen.add(dependency)
                stack.append(dependency)
    return seen


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2])
    graph, kinds = package_graph(root)
    problems = []
    documented = documented_graph(root)
    if documented is None:
        problems.append("docs/architecture.md has no <!-- module-graph:begin --> … <!-- module-graph:end --> table")
    else:
        for name in sorted(set(graph) | set(documented)):
            if name not in documented:
                problems.append(f"docs/architecture.md: the module graph lacks target {name} (Package.swift: {sorted(graph[name]) or 'nothing'})")
            elif name not in graph:
                problems.append(f"docs/architecture.md: the module graph lists {name}, which Package.swift does not have")
            elif graph[name] != documented[name]:
                missing, extra = graph[name] - documented[name], documented[name] - graph[name]
                problems.append(f"docs/architecture.md: {name}'s dependencies differ from Package.swift (not documented: {sorted(missing)}, not in the package: {sorted(extra)})")
    for name, dependencies in graph.items():
        if kinds[name] in ("regular", "system"):
            for dependency in dependencies:
                if kinds.get(dependency) == "executable":
                    problems.append(f"library {name} depends on executable {dependency}")
        if name in closure(graph, name):
            problems.append(f"{name} depends on itself through a cycle")
    for name in SIDECAR_SIDE & set(graph):
        leaked = closure(graph, name) & SERVER_STACK
        if leaked:
            problems.append(f"{name} reaches the gateway's server stack: {sorted(leaked)}")
    ours = {name for name, kind in kinds.items() if kind in ("regular", "executable")}
    if SHARED_VOCABULARY in graph and graph[SHARED_VOCABULARY] & ours:
        problems.append(f"{SHARED_VOCABULARY} (the shared vocabulary) depends on {sorted(graph[SHARED_VOCABULARY] & ours)}")
    for name in LEAF_SUPPORT & set(graph):
        if graph[name] & ours:
            problems.append(f"{name} (a support module) depends on {sorted(graph[name] & ours)}; it may use C libraries only")
    for problem in problems:
        print(f"check-module-graph: {problem}")
    print(f"check-module-graph: {len(graph)} targets, {sum(map(len, graph.values()))} edges, {len(problems)} problem(s)", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
