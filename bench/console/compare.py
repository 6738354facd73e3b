#!/usr/bin/env python3
"""Compare the reviewer console's page times of two arbiter builds, fairly.

Runs each build's `arbiter bench console` (its own embedded server, a fresh
store, the same load) in turn, alternating which build goes first, and prints
each page's median p50 over the rounds for both builds and their ratio.
Standard library only.

    bench/console/compare.py BEFORE_BIN AFTER_BIN [--rounds 3] [--decisions 100000]

Build the older commit with, for example:
    git worktree add /tmp/base <commit>
    cargo build --release -p arbiter-cli --manifest-path /tmp/base/Cargo.toml --target-dir /tmp/base-target
"""
import argparse, statistics, subprocess


def run_once(binary, decisions, requests):
    out = subprocess.run([binary, "bench", "console", "--decisions", str(decisions), "--requests", str(requests)],
                         capture_output=True, text=True, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise SystemExit(f"bench console failed for {binary}:\n{out.stderr}")
    pages = {}
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        try:
            p50, p95, size = float(fields[-3]), float(fields[-2]), int(fields[-1])
        except ValueError:
            continue
        pages[" ".join(fields[:-3])] = p50
    if not pages:
        raise SystemExit(f"no page times in the output of {binary}:\n{out.stdout}")
    return pages


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--decisions", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=30)
    a = ap.parse_args()
    builds = {"before": a.before, "after": a.after}
    runs = {name: [] for name in builds}
    for r in range(a.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for name in order:
            runs[name].append(run_once(builds[name], a.decisions, a.requests))
            print(f"round {r + 1}: {name} done", flush=True)
    pages = list(runs["before"][0])
    print(f"\n{'page':<44} {'p50 before (range)':>22} {'p50 after (range)':>22} {'after/before':>13}")
    for p in pages:
        b = sorted(run[p] for run in runs["before"] if p in run)
        f = sorted(run[p] for run in runs["after"] if p in run)
        mb, mf = statistics.median(b), statistics.median(f)
        ratio = mf / mb if mb > 0 else float("nan")
        cell = lambda m, xs: f"{m:.1f} ({xs[0]:.1f}–{xs[-1]:.1f}) ms"
        print(f"{p:<44} {cell(mb, b):>22} {cell(mf, f):>22} {ratio:>13.2f}")


if __name__ == "__main__":
    main()
