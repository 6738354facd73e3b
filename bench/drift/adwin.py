"""ADWIN (river) on the drift scenarios' streams, side by side with Arbiter's monitor.

Reads the streams `arbiter demo evaluate --scenarios --export DIR` writes and
runs river's ADWIN on the same quantities Arbiter watches, per action class:
its share of decisions (an indicator per decision), its escalation rate, its
confidence (the raw value) and, as labels arrive (at their `labelled_at`), its
error rate. Detections are read the way the server reads its monitor: on the
15-minute evaluation grid (a detection counts at the next evaluation), and
detections of one class and quantity less than 2 h apart are one episode.

Reported per scenario and ADWIN δ, like `demo evaluate --scenarios`: seeds where
the drift was caught (a detection on the drifting class after it starts),
median and worst delay, and false-alarm episodes per quiet simulated week.

    python bench/drift/adwin.py DIR [--deltas 0.002,1e-4,1e-6] [--ours ours.json]
"""

import argparse
import csv
import json
import math
import multiprocessing
import statistics
import sys
from pathlib import Path

from river.drift import ADWIN

HOUR = 3_600_000
WEEK = 7 * 24 * HOUR
STEP = 15 * 60_000
EPISODE_GAP = 2 * HOUR


def detections(path, delta):
    """(time on the evaluation grid, class, quantity) for every ADWIN detection in one stream."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append(r)
    classes = sorted({r["action"] for r in rows})
    # the label stream: each label arrives at its labelled_at
    labels = sorted(
        (int(r["labelled_at_ms"]), r["action"], r["correct"] == "0")
        for r in rows
        if r["correct"] != "" and r["labelled_at_ms"] != ""
    )
    share = {c: ADWIN(delta=delta) for c in classes}
    esc = {c: ADWIN(delta=delta) for c in classes}
    conf = {c: ADWIN(delta=delta) for c in classes}
    err = {c: ADWIN(delta=delta) for c in classes}
    out = []
    li = 0

    def hit(at, c, q):
        grid = -(-at // STEP) * STEP  # the next evaluation at or after it
        out.append((grid, c, q))

    for r in rows:
        at = int(r["at_ms"])
        while li < len(labels) and labels[li][0] <= at:
            t, c, wrong = labels[li]
            err[c].update(1.0 if wrong else 0.0)
            if err[c].drift_detected:
                hit(t, c, "error_rate")
            li += 1
        a = r["action"]
        for c in classes:
            share[c].update(1.0 if a == c else 0.0)
            if share[c].drift_detected:
                hit(at, c, "share")
        esc[a].update(1.0 if r["escalated"] == "1" else 0.0)
        if esc[a].drift_detected:
            hit(at, a, "escalation_rate")
        if r["confidence"] != "":
            conf[a].update(float(r["confidence"]))
            if conf[a].drift_detected:
                hit(at, a, "confidence")
    return out


def judge(meta, hits):
    """(delay or None, false-alarm episodes, quiet time) for one stream."""
    warm, end, drift_at, target = meta["warm_ms"], meta["end_ms"], meta["drift_at_ms"], meta["target"]
    quiet_end = drift_at if drift_at is not None else end
    last = {}
    false_episodes = 0
    delay = None
    for t, c, q in sorted(hits):
        if t < warm or t > end:
            continue
        if target is not None and c == target and t >= drift_at and delay is None:
            delay = t - drift_at
        key = (c, q)
        new_episode = key not in last or t - last[key] > EPISODE_GAP
        last[key] = t
        if new_episode and t < quiet_end:
            false_episodes += 1
    return delay, false_episodes, quiet_end - warm


def run(job):
    meta, path, delta = job
    return meta["slug"], delta, judge(meta, detections(path, delta))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--deltas", default="0.002,1e-4,1e-6")
    ap.add_argument("--ours", help="`demo evaluate --scenarios --json` output to print beside")
    args = ap.parse_args()
    d = Path(args.dir)
    metas = json.loads((d / "scenarios.json").read_text())
    deltas = [float(x) for x in args.deltas.split(",")]
    jobs = [
        (m, d / f"{m['slug']}-{seed}.csv", delta)
        for delta in deltas
        for m in metas
        for seed in range(1, m["seeds"] + 1)
    ]
    with multiprocessing.Pool() as pool:
        results = pool.map(run, jobs, chunksize=1)
    ours = {r["scenario"]: r for r in json.loads(Path(args.ours).read_text())} if args.ours else {}
    print(f"{'SCENARIO':<38} {'DETECTOR':<16} {'DETECTED':>9} {'MEDIAN':>8} {'WORST':>8} {'FALSE/WK':>9}")
    h = lambda x: "-" if x is None else f"{x:.2f} h"
    for m in metas:
        rows = []
        for delta in deltas:
            rs = [r for (slug, dl, r) in results if slug == m["slug"] and dl == delta]
            delays = sorted(r[0] / HOUR for r in rs if r[0] is not None)
            weeks = sum(r[2] for r in rs) / WEEK
            fa = sum(r[1] for r in rs) / weeks if weeks > 0 else float("nan")
            det = f"{len(delays)}/{len(rs)}" if m["target"] else "-"
            med = statistics.median(delays) if delays else None
            rows.append((f"ADWIN δ={delta:g}", det, med, delays[-1] if delays else None, fa))
        o = ours.get(m["name"])
        if o:
            det = f"{o['detected']}/{o['seeds']}" if o["detected"] is not None else "-"
            rows.append(("Arbiter", det, o["median_delay_hours"], o["worst_delay_hours"], o["false_alarms_per_week"]))
        for name, det, med, worst, fa in rows:
            print(f"{m['name']:<38} {name:<16} {det:>9} {h(med):>8} {h(worst):>8} {fa:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
