#!/usr/bin/env python3
"""What the MCP gateway adds to a tool call's latency.

The same client (the official MCP Python SDK) calls the same upstream tool
(`echo` of the official "everything" MCP server, over stdio) three ways, in
alternating rounds:

  direct     the client launches the upstream itself;
  gateway    the client launches `arbiter mcp`, which launches the upstream;
             every call is a decision the policy allows at once, its receipt
             is verified and consumed, then the call is forwarded and its
             result recorded;
  no-receipt the same, with `serve --receipts off` and `mcp --receipts off`
             (the decision without the signature and the consume round trip).

It starts its own `arbiter serve` (examples/policies/mcp.yaml, a fresh store)
for each gateway round, and prints each round's median and p95 and the medians
over rounds. Needs `npm ci` in tests/mcp and the Python packages of
tests/mcp/requirements.txt.

    bench/mcp/latency.py target/release/arbiter [--calls 500] [--rounds 3]
"""
import argparse, asyncio, json, os, statistics, subprocess, sys, tempfile, time

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "examples", "policies", "mcp.yaml")
EVERYTHING = os.path.join(ROOT, "tests", "mcp", "node_modules", "@modelcontextprotocol", "server-everything",
                          "dist", "index.js")


async def time_calls(params, calls, tool):
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for _ in range(20):  # warm-up: JIT, connections, page cache
                await session.call_tool(tool, {"message": "warm-up"})
            latencies = []
            for i in range(calls):
                start = time.perf_counter()
                r = await session.call_tool(tool, {"message": f"call {i}"})
                latencies.append((time.perf_counter() - start) * 1000)
                if r.is_error:
                    raise SystemExit(f"{tool} failed: {r.content}")
            return latencies


def start_server(binary, directory, receipts):
    db = os.path.join(directory, "arbiter.db")
    srv = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--db", db, "--policy", POLICY, "--receipts", receipts],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    url = None
    for line in srv.stdout:
        if line.startswith("listening on "):
            url = line.split()[-1]
        if line.strip() == "ready":
            break
    if url is None:
        raise SystemExit(f"{binary} serve exited before it was ready")
    key = subprocess.run([binary, "keys", "create", "--db", db, "--name", "ide-agent", "--role", "agent",
                          "--rate-limit", "unlimited", "--quiet"], capture_output=True, text=True, check=True)
    return srv, url, key.stdout.strip()


def round_of(mode, binary, calls):
    upstream = StdioServerParameters(command="node", args=[EVERYTHING, "stdio"])
    if mode == "direct":
        return asyncio.run(time_calls(upstream, calls, "echo"))
    receipts = "required" if mode == "gateway" else "off"
    with tempfile.TemporaryDirectory(prefix="arbiter-mcp-bench-") as d:
        srv, url, key = start_server(binary, d, "on" if receipts == "required" else "off")
        try:
            gateway = StdioServerParameters(
                command=binary,
                args=["mcp", "--url", url, "--key", key, "--receipts", receipts,
                      "--upstream-cmd", f"everything=node {EVERYTHING} stdio"],
                env={"RUST_LOG": "warn"})
            return asyncio.run(time_calls(gateway, calls, "everything.echo"))
        finally:
            srv.terminate()
            srv.wait()


def p95(xs):
    return sorted(xs)[int(len(xs) * 0.95) - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", help="the arbiter binary (a release build)")
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(EVERYTHING):
        raise SystemExit("run `npm ci` in tests/mcp first")
    modes = ["direct", "gateway", "no-receipt"]
    rounds = {m: [] for m in modes}
    for r in range(a.rounds):
        order = modes if r % 2 == 0 else list(reversed(modes))
        for m in order:
            lat = round_of(m, a.binary, a.calls)
            rounds[m].append({"p50_ms": statistics.median(lat), "p95_ms": p95(lat)})
            print(f"round {r + 1} {m:>10}: p50 {rounds[m][-1]['p50_ms']:.2f} ms, p95 {rounds[m][-1]['p95_ms']:.2f} ms",
                  file=sys.stderr)
    summary = {m: {"p50_ms": statistics.median(x["p50_ms"] for x in rounds[m]),
                   "p95_ms": statistics.median(x["p95_ms"] for x in rounds[m])} for m in modes}
    if a.json:
        print(json.dumps({"calls": a.calls, "rounds": rounds, "median": summary}, indent=2))
        return
    print(f"{a.calls} sequential calls per round, {a.rounds} rounds, medians over rounds:")
    for m in modes:
        extra = ""
        if m != "direct":
            extra = f"  (+{summary[m]['p50_ms'] - summary['direct']['p50_ms']:.2f} ms at p50)"
        print(f"  {m:>10}: p50 {summary[m]['p50_ms']:.2f} ms, p95 {summary[m]['p95_ms']:.2f} ms{extra}")


if __name__ == "__main__":
    main()
