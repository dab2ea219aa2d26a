#!/usr/bin/env python3
"""Starvation check for agent-gateway's single SQLite writer, on loopback only.

One agent (the flooder) sends comment_issue on WEB-1 from 32 keep-alive connections as fast as the
gateway answers, within its own quota (the rate limits are raised so that only the writer is
measured). Another agent (the victim) writes a comment on WEB-2 every 50 ms from one connection.
The victim's write latency is measured alone (idle), then under the flood; afterwards one
get_issue WEB-1 shows what a read of the flooded issue costs.

Usage: Benchmarks/gateway-fairness.py --binary .build/debug/agent-gateway [--flood-connections 32] [--seconds 10]
Bounded: at most --seconds per phase, one gateway on 127.0.0.1 on a fresh temporary database.
Needs the `cryptography` package (as Benchmarks/gateway-load.py does).
"""
import argparse, asyncio, importlib.util, json, multiprocessing, os, subprocess, tempfile, time

spec = importlib.util.spec_from_file_location("gateway_load", os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway-load.py"))
gateway_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gateway_load)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def call(connection, headers, sequence, name, arguments, key):
    started = time.monotonic()
    status, _, body = await connection.request("POST", "/mcp", {
        "jsonrpc": "2.0", "id": sequence, "method": "tools/call", "params": {"name": name, "arguments": arguments}},
        {**headers, "Idempotency-Key": key})
    return time.monotonic() - started, status == 200 and b'"isError":false' in body, body


def victim(host, port, binary, db, seconds, start_at, results):
    async def run():
        connection, headers = await gateway_load.client_session(host, port, binary, db)
        while time.time() < start_at:
            await asyncio.sleep(0.01)
        latencies, errors, sequence = [], 0, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sequence += 1
            elapsed, ok, _ = await call(connection, headers, sequence, "comment_issue",
                                        {"issue": "WEB-2", "body": f"victim {os.getpid()} {sequence}"}, f"victim-{os.getpid()}-{sequence}")
            latencies.append(elapsed)
            errors += 0 if ok else 1
            await asyncio.sleep(max(0.0, 0.05 - elapsed))
        results.put({"calls": len(latencies), "errors": errors, "p50ms": round(percentile(latencies, 0.5), 1),
                     "p99ms": round(percentile(latencies, 0.99), 1), "maxms": round(max(latencies) * 1000, 1)})
    asyncio.run(run())


def flooder(host, port, binary, db, connections, stop_at, results, niceness):
    # The load generator yields the CPU to the gateway and to the measuring process (2 cores are
    # shared by all three): what is measured is the gateway's fairness, not the Python client's.
    os.nice(niceness)

    async def run():
        first, headers = await gateway_load.client_session(host, port, binary, db)
        pool = [first]
        for _ in range(connections - 1):
            connection = gateway_load.Connection(host, port)
            await connection.open()
            pool.append(connection)
        latencies, errors = [], 0
        body = "flood " + "x" * 200

        async def worker(index, connection):
            nonlocal errors
            sequence = 0
            while time.time() < stop_at:
                sequence += 1
                elapsed, ok, _ = await call(connection, headers, sequence, "comment_issue", {"issue": "WEB-1", "body": body},
                                            f"flood-{os.getpid()}-{index}-{sequence}")
                latencies.append(elapsed)
                errors += 0 if ok else 1

        started = time.monotonic()
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(pool)))
        elapsed = time.monotonic() - started
        results.put({"calls": len(latencies), "callsPerSecond": round(len(latencies) / elapsed), "errors": errors,
                     "p50ms": round(percentile(latencies, 0.5), 1), "p99ms": round(percentile(latencies, 0.99), 1)})
    asyncio.run(run())


async def read_flooded_issue(host, port, binary, db):
    connection, headers = await gateway_load.client_session(host, port, binary, db)
    started = time.monotonic()
    status, _, body = await connection.request("POST", "/mcp", {
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_issue", "arguments": {"issue": "WEB-1"}}}, headers)
    elapsed = time.monotonic() - started
    result = json.loads(body).get("result", {})
    comments = len(result.get("structuredContent", {}).get("comments", []))
    return {"status": status, "bytes": len(body), "ms": round(elapsed * 1000, 1), "commentsReturned": comments}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=".build/debug/agent-gateway")
    parser.add_argument("--flood-connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flood-nice", type=int, default=10, help="niceness of the flooding client process (0 to not yield)")
    options = parser.parse_args()
    options.seconds = min(options.seconds, 120)
    options.flood_connections = max(1, min(options.flood_connections, 64))
    directory = tempfile.mkdtemp(prefix="gateway-fairness-")
    db = os.path.join(directory, "gateway.sqlite")
    gateway_load.run(options.binary, "seed-demo", "--db", db)
    server = subprocess.Popen([options.binary, "serve", "--db", db, "--host", "127.0.0.1", "--port", "0", "--read-rate", "10000000",
                               "--write-rate", "10000000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = json.loads(server.stdout.readline())["url"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        port = int(port)
        results, flood_results = multiprocessing.Queue(), multiprocessing.Queue()

        idle = multiprocessing.Process(target=victim, args=(host, port, options.binary, db, options.seconds, time.time() + 2, results))
        idle.start()
        idle.join(timeout=options.seconds + 60)
        print(json.dumps({"phase": "idle", "victim": results.get(timeout=10)}), flush=True)

        start_at = time.time() + 4
        stop_at = start_at + options.seconds + 2
        flood = multiprocessing.Process(target=flooder, args=(host, port, options.binary, db, options.flood_connections, stop_at, flood_results,
                                                                    options.flood_nice))
        flood.start()
        loaded = multiprocessing.Process(target=victim, args=(host, port, options.binary, db, options.seconds, start_at + 1, results))
        loaded.start()
        loaded.join(timeout=options.seconds + 60)
        victim_result = results.get(timeout=10)
        flood.join(timeout=options.seconds + 60)
        flood_result = flood_results.get(timeout=30)
        print(json.dumps({"phase": "flood", "floodConnections": options.flood_connections, "floodNice": options.flood_nice,
                          "victim": victim_result, "flooder": flood_result}), flush=True)
        print(json.dumps({"phase": "after", "getIssueWEB1": asyncio.run(read_flooded_issue(host, port, options.binary, db))}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
