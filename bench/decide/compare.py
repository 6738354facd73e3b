#!/usr/bin/env python3
"""Compare `POST /v1/decisions` throughput of two arbiter builds, fairly.

Starts each build's `arbiter serve` on a fresh store in turn (SOC policy, no
open-case cap, an unlimited agent key), loads it with the same client (the
second build's `arbiter bench decide --url`), alternates which build goes
first, and prints every run and the medians. Standard library only.

    bench/decide/compare.py BEFORE_BIN AFTER_BIN [--rounds 5] [--duration 10s]

Build the older commit with, for example:
    git worktree add /tmp/base <commit>
    cargo build --release -p arbiter-cli --manifest-path /tmp/base/Cargo.toml --target-dir /tmp/base-target
"""
import argparse, json, os, statistics, subprocess, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "examples", "policies", "soc.yaml")


def run_once(server_bin, client_bin, duration, concurrency):
    with tempfile.TemporaryDirectory(prefix="arbiter-compare-") as d:
        db = os.path.join(d, "arbiter.db")
        srv = subprocess.Popen(
            [server_bin, "serve", "--listen", "127.0.0.1:0", "--db", db, "--policy", POLICY,
             "--max-open-cases-per-agent", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
        try:
            url = None
            for line in srv.stdout:
                if line.startswith("listening on "):
                    url = line.split()[-1]
                if line.strip() == "ready":
                    break
            if url is None:
                raise SystemExit(f"{server_bin} exited before it was ready")
            key = subprocess.run(
                [server_bin, "keys", "create", "--db", db, "--name", "bench-agent", "--role", "agent",
                 "--rate-limit", "unlimited", "--quiet"], capture_output=True, text=True, check=True).stdout.strip()
            out = subprocess.run(
                [client_bin, "bench", "decide", "--url", url, "--key", key, "--duration", duration, "--warmup", "2s",
                 "--concurrency", str(concurrency), "--json"], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"bench decide failed against {server_bin}:\n{out.stderr}")
            return json.loads(out.stdout)
        finally:
            srv.terminate()
            srv.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--concurrency", type=int, default=64)
    a = ap.parse_args()
    builds = {"before": a.before, "after": a.after}
    runs = {name: [] for name in builds}
    for r in range(a.rounds):
        for name in (list(builds) if r % 2 == 0 else list(reversed(builds))):
            j = run_once(builds[name], a.after, a.duration, a.concurrency)
            runs[name].append(j)
            print(f"{name:6} {j['decisions_per_sec']:8.0f} decisions/s  p50 {j['p50_ms']:.2f} ms  "
                  f"p99 {j['p99_ms']:.2f} ms  errors {j['errors']}", flush=True)
    for name, rs in runs.items():
        med = lambda k: statistics.median(x[k] for x in rs)
        print(f"{name:6} median {med('decisions_per_sec'):8.0f} decisions/s  p50 {med('p50_ms'):.2f} ms  "
              f"p99 {med('p99_ms'):.2f} ms")


if __name__ == "__main__":
    main()
