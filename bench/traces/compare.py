#!/usr/bin/env python3
"""OTLP/HTTP trace ingest, Arbiter against Arize Phoenix, fairly.

The same client (`arbiter bench traces --url`, protobuf exports of agent runs
with GenAI attributes, fresh ids in every export) loads each receiver in turn
on a fresh store, alternating which goes first. Prints every run, the medians,
and how many spans each receiver had stored 30 s after its run (Arbiter stores
before it answers; Phoenix answers, then writes from a queue).

    bench/traces/compare.py ARBITER_BIN PHOENIX_BIN [--rounds 3] [--duration 10s]

PHOENIX_BIN is the `phoenix` command of a venv with `pip install arize-phoenix`.
Standard library only.
"""
import argparse, json, os, sqlite3, statistics, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "examples", "policies", "soc.yaml")


def load(client, url, key, duration, concurrency, spans):
    args = [client, "bench", "traces", "--url", url, "--duration", duration, "--concurrency", str(concurrency),
            "--spans", str(spans), "--json"]
    if key:
        args += ["--key", key]
    out = subprocess.run(args, capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"the client failed against {url}: {out.stderr}")
    r = json.loads(lines[-1])
    if r["errors"]:
        print(f"  {url}: {r['errors']} failed exports, the first: {r['first_error']}", flush=True)
    return r


def arbiter_run(binary, duration, concurrency, spans):
    with tempfile.TemporaryDirectory(prefix="arbiter-traces-") as d:
        db = os.path.join(d, "arbiter.db")
        srv = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--db", db, "--policy", POLICY],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "RUST_LOG": "warn"})
        try:
            url = None
            for line in srv.stdout:
                if line.startswith("listening on "):
                    url = line.split()[-1]
                if line.strip() == "ready":
                    break
            key = subprocess.run([binary, "keys", "create", "--db", db, "--name", "bench-agent", "--role", "agent",
                                  "--quiet"], capture_output=True, text=True, check=True).stdout.strip()
            r = load(binary, url, key, duration, concurrency, spans)
            time.sleep(30)
            r["stored_after_30s"] = sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0]
            return r
        finally:
            srv.terminate()
            srv.wait()


def phoenix_run(phoenix, client, duration, concurrency, spans, port=6006):
    with tempfile.TemporaryDirectory(prefix="phoenix-traces-") as d:
        env = {**os.environ, "PHOENIX_WORKING_DIR": d, "PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": "4417"}
        srv = subprocess.Popen([phoenix, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            for _ in range(120):
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200:
                        break
                except Exception:
                    time.sleep(1)
            else:
                raise SystemExit("phoenix did not start")
            time.sleep(5)  # let its start-up work (migrations, caches) finish before measuring
            r = load(client, f"http://127.0.0.1:{port}", None, duration, concurrency, spans)
            time.sleep(30)
            r["stored_after_30s"] = sqlite3.connect(os.path.join(d, "phoenix.db")).execute(
                "SELECT COUNT(*) FROM spans").fetchone()[0]
            return r
        finally:
            srv.terminate()
            srv.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("arbiter")
    p.add_argument("phoenix")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", default="10s")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--spans", type=int, default=50)
    a = p.parse_args()
    runs = {"arbiter": [], "phoenix": []}
    for i in range(a.rounds):
        order = ["arbiter", "phoenix"] if i % 2 == 0 else ["phoenix", "arbiter"]
        for who in order:
            r = (arbiter_run(a.arbiter, a.duration, a.concurrency, a.spans) if who == "arbiter"
                 else phoenix_run(a.phoenix, a.arbiter, a.duration, a.concurrency, a.spans))
            runs[who].append(r)
            print(f"{who:8} {r['spans_per_sec']:9.0f} spans/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                  f"sent {r['requests'] * a.spans} (measured)  stored after 30 s {r['stored_after_30s']}  errors {r['errors']}",
                  flush=True)
    for who, rs in runs.items():
        med = lambda k: statistics.median(r[k] for r in rs)
        print(f"{who:8} median {med('spans_per_sec'):9.0f} spans/s  p50 {med('p50_ms'):.2f} ms  p99 {med('p99_ms'):.2f} ms")


if __name__ == "__main__":
    main()
