#!/usr/bin/env python3
"""Reference implementation of `arbiter tune` in the Python data stack.

What a data scientist would write without Arbiter: pandas to read the CSV,
scikit-learn's `roc_curve` per action class for the counts behind every
threshold, scipy's binomial CDF for the Learn-then-Test bound, and the same
budget allocation (convex-hull walk) in plain Python. It follows the algorithm
in docs/tuning.md exactly, so both must pick the same thresholds.

Usage: reference.py HISTORY.csv BUDGET MAX_AUTO_ERROR DELTA [GRID]
Prints JSON: {"thresholds": {class: t or null}, "load_seconds", "tune_seconds"}.
"""
import heapq
import json
import math
import sys
import time

import numpy as np
import pandas as pd
from scipy.stats import binom
from sklearn.metrics import roc_curve


def grid_bins(conf, grid):
    """The largest j with conf >= j/grid, exactly as the policy engine compares."""
    j = np.clip(np.floor(conf * grid), 0, grid).astype(np.int64)
    up = (j < grid) & (conf >= (j + 1) / grid)
    j[up] += 1
    down = (j > 0) & (conf < j / grid)
    j[down] -= 1
    return j


def counts_at_grid(y_right, score, weight, grid):
    """Per grid index j (0..grid+1): right and wrong (weighted) with score >= j, via roc_curve."""
    n_wrong = float(weight[~y_right].sum())
    n_right = float(weight[y_right].sum())
    if n_wrong == 0 or n_right == 0:
        # roc_curve needs both classes; count directly
        out_right = np.zeros(grid + 2)
        out_wrong = np.zeros(grid + 2)
        r = np.bincount(score[y_right], weights=weight[y_right], minlength=grid + 1)
        w = np.bincount(score[~y_right], weights=weight[~y_right], minlength=grid + 1)
        out_right[: grid + 1] = r[::-1].cumsum()[::-1]
        out_wrong[: grid + 1] = w[::-1].cumsum()[::-1]
        return out_right, out_wrong
    fpr, tpr, thr = roc_curve(y_right, score, sample_weight=weight, drop_intermediate=False)
    tp, fp = tpr * n_right, fpr * n_wrong
    # thr is decreasing; thr[0] is +inf (nothing selected)
    out_right = np.zeros(grid + 2)
    out_wrong = np.zeros(grid + 2)
    k = len(thr) - 1
    for j in range(0, grid + 1):
        # counts at the smallest present score >= j
        while k > 0 and thr[k] < j:
            k -= 1
        if thr[k] >= j:
            out_right[j], out_wrong[j] = tp[k], fp[k]
    return out_right, out_wrong


def hull(opts):
    order = sorted(range(len(opts)), key=lambda i: (opts[i][0], opts[i][1]))
    front = []
    for i in order:
        if front and (opts[i][1] >= opts[front[-1]][1] or opts[i][0] == opts[front[-1]][0]):
            continue
        front.append(i)
    h = []
    for i in front:
        while len(h) >= 2:
            a, b, c = opts[h[-2]], opts[h[-1]], opts[i]
            cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            if cross <= 0:
                h.pop()
            else:
                break
        h.append(i)
    return h


def allocate(classes, budget):
    """classes: list of lists of (escalations, cost, index). Returns chosen indexes."""
    hulls = [hull(o) for o in classes]
    cur = [h[0] for h in hulls]
    used = sum(o[i][0] for o, i in zip(classes, cur))
    if used > budget:
        return [o[i][2] for o, i in zip(classes, cur)], False
    def step(c, pos):
        h = hulls[c]
        if pos + 1 >= len(h):
            return None
        a, b = classes[c][h[pos]], classes[c][h[pos + 1]]
        de, dc = b[0] - a[0], a[1] - b[1]
        return (-(dc / de), c, pos + 1, de)
    heap = [s for s in (step(c, 0) for c in range(len(classes))) if s]
    heapq.heapify(heap)
    while heap:
        _, c, to, de = heapq.heappop(heap)
        if used + de <= budget:
            used += de
            cur[c] = hulls[c][to]
            n = step(c, to)
            if n:
                heapq.heappush(heap, n)
    while True:
        best = None
        for c, opts in enumerate(classes):
            now = opts[cur[c]]
            for i, o in enumerate(opts):
                if o[0] >= now[0] and o[1] < now[1] and used - now[0] + o[0] <= budget:
                    gain = now[1] - o[1]
                    if best is None or gain > best[2]:
                        best = (c, i, gain)
        if best is None:
            break
        c, i, _ = best
        used = used - classes[c][cur[c]][0] + classes[c][i][0]
        cur[c] = i
    return [o[i][2] for o, i in zip(classes, cur)], True


def main():
    path, budget, e, delta = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    grid = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    t0 = time.perf_counter()
    df = pd.read_csv(path, usecols=["action", "confidence", "correct", "error_cost"])
    t1 = time.perf_counter()
    codes, names = pd.factorize(df["action"])  # first-appearance order, like Arbiter
    conf = df["confidence"].to_numpy()
    right = df["correct"].to_numpy().astype(bool)
    cost = df["error_cost"].fillna(1.0).to_numpy()
    score = grid_bins(conf, grid)
    start = max(math.ceil(10 / e), math.ceil(math.log(delta) / math.log(1 - e)))
    total = len(df)
    choices = []
    for c in range(len(names)):
        m = codes == c
        y, s, w = right[m], score[m], cost[m]
        n_right, n_wrong = counts_at_grid(y, s, np.ones(len(y)), grid)
        _, wrong_cost = counts_at_grid(y, s, np.where(y, 1.0, w), grid)
        auto = np.rint(n_right + n_wrong).astype(np.int64)
        auto_wrong = np.rint(n_wrong).astype(np.int64)
        n = int(m.sum())
        opts = [(n, 0.0, grid + 1)]  # never auto-allow
        js = np.arange(grid, -1, -1)
        tested = js[auto[js] >= start]
        p = binom.cdf(auto_wrong[tested], auto[tested], e)
        for j, pv in zip(tested, p):
            if pv > delta:
                break
            opts.append((n - int(auto[j]), float(wrong_cost[j]), int(j)))
        choices.append(opts)
    picks, feasible = allocate(choices, math.floor(budget * total))
    t2 = time.perf_counter()
    out = {str(names[c]): (None if j == grid + 1 else j / grid) for c, j in enumerate(picks)}
    print(json.dumps({"thresholds": out, "feasible": feasible, "load_seconds": t1 - t0, "tune_seconds": t2 - t1}))


if __name__ == "__main__":
    main()
