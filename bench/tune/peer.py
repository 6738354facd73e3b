#!/usr/bin/env python3
"""The strongest Python a data scientist would write for `arbiter tune`.

polars reads the history on every core (only the columns tuning needs), the
counts behind every threshold of every class come from one `np.bincount`
over (class, bin) and reversed cumulative sums, the exact binomial tests of
the fixed-sequence scan from `scipy.special.betainc`, vectorised. The budget
is counted in decisions with Arbiter's rounding rule, the objective is the
cost of automatic errors plus the cost of escalations, and the budget is
allocated exactly (the method of docs/tuning.md: hull walk for a feasible
answer and the linear-relaxation bound, reduced-cost fixing, dynamic
programming over the Pareto frontier), with the same tie rules. So it must
pick the same thresholds as Arbiter, and `run.sh` checks that it does.

Usage: peer.py HISTORY.(csv|parquet) BUDGET MAX_AUTO_ERROR DELTA [GRID]
Prints JSON: {"thresholds": {class: t or null}, "feasible", "load_seconds", "tune_seconds"}.
"""
import heapq
import json
import math
import sys
import time

import numpy as np
import polars as pl
from scipy.special import betainc

COLUMNS = ["action", "confidence", "correct", "error_cost", "escalation_cost"]


def load(path):
    if path.endswith(".parquet"):
        return pl.read_parquet(path, columns=COLUMNS)
    return pl.read_csv(path, columns=COLUMNS, schema_overrides={"error_cost": pl.Float64, "escalation_cost": pl.Float64})


def grid_bins(conf, grid):
    """The largest j with conf >= j/grid, exactly as the policy engine compares."""
    j = np.clip(np.floor(conf * grid), 0, grid).astype(np.int64)
    up = (j < grid) & (conf >= (j + 1) / grid)
    j[up] += 1
    down = (j > 0) & (conf < j / grid)
    j[down] -= 1
    return j


def escalation_budget(rate, total):
    x = min(max(rate, 0.0), 1.0) * total
    nearest = round(x)
    return int(nearest) if abs(x - nearest) <= 1e-9 * max(x, 1.0) else math.floor(x)


def binom_cdf(k, n, p):
    """P(X <= k) for X ~ Binomial(n, p), vectorised; 1 where k >= n."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    out = np.ones_like(n)
    m = k < n
    out[m] = betainc(n[m] - k[m], k[m] + 1, 1 - p)
    return out


# --- the exact allocation (a port of crates/arbiter-tuning/src/allocate.rs) ---

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


def greedy(classes, budget):
    hulls = [hull(o) for o in classes]
    cur = [h[0] for h in hulls]
    used = sum(o[i][0] for o, i in zip(classes, cur))
    if used > budget:
        return None
    def step(c, pos):
        h = hulls[c]
        if pos + 1 >= len(h):
            return None
        a, b = classes[c][h[pos]], classes[c][h[pos + 1]]
        de, dc = b[0] - a[0], a[1] - b[1]
        # the max-heap on (ratio, then the lower class first)
        return (-(dc / de), c, pos + 1, de)
    heap = [s for s in (step(c, 0) for c in range(len(classes))) if s]
    heapq.heapify(heap)
    lp_extra, lam = None, 0.0
    while heap:
        neg_ratio, c, to, de = heapq.heappop(heap)
        if used + de <= budget:
            used += de
            cur[c] = hulls[c][to]
            n = step(c, to)
            if n:
                heapq.heappush(heap, n)
        elif lp_extra is None:
            lp_extra, lam = (budget - used) * -neg_ratio, -neg_ratio
    lp_bound = sum(o[i][1] for o, i in zip(classes, cur)) - (lp_extra or 0.0)
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
    return cur, lp_bound, lam


def exact(classes, budget, cur, lp_bound, lam, upper):
    slack = max(upper - lp_bound, 0.0)
    if slack <= 1e-12 * max(abs(upper), 1.0):
        return None
    tol = 1e-9 * max(abs(upper), 1.0)
    kept = []
    for opts in classes:
        score = [o[1] + lam * o[0] for o in opts]
        best = min(score)
        kept.append([i for i in range(len(opts)) if score[i] - best <= slack + tol])
    k = len(classes)
    rest_cost, rest_esc = [0.0] * (k + 1), [0] * (k + 1)
    for c in range(k - 1, -1, -1):
        rest_cost[c] = rest_cost[c + 1] + min(classes[c][i][1] for i in kept[c])
        rest_esc[c] = rest_esc[c + 1] + min(classes[c][i][0] for i in kept[c])
    # the Pareto frontier of partial answers, level by level (numpy arrays), with back-pointers
    levels = [(np.zeros(1, np.int64), np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64))]
    for c in range(k):
        pe, pc = levels[-1][0], levels[-1][1]
        opt = np.array(kept[c], dtype=np.int64)
        oe = np.array([classes[c][i][0] for i in kept[c]], dtype=np.int64)
        oc = np.array([classes[c][i][1] for i in kept[c]])
        e = (pe[:, None] + oe[None, :]).ravel()
        cost = (pc[:, None] + oc[None, :]).ravel()
        parent = np.repeat(np.arange(len(pe)), len(opt))
        option = np.tile(opt, len(pe))
        ok = (e + rest_esc[c + 1] <= budget) & (cost + rest_cost[c + 1] <= upper + tol)
        e, cost, parent, option = e[ok], cost[ok], parent[ok], option[ok]
        order = np.lexsort((option, cost, e))  # fewer escalations, then cheaper, then the earlier option
        e, cost, parent, option = e[order], cost[order], parent[order], option[order]
        # strictly cheaper than everything before: a superset of the front, then the exact rule in order
        before = np.concatenate([[np.inf], np.minimum.accumulate(cost)[:-1]])
        cand = np.nonzero(cost < before)[0]
        front, last = [], None
        for i in cand:
            if last is None or cost[i] < last - 1e-12 * max(abs(last), 1.0):
                front.append(i)
                last = cost[i]
        if not front:
            return None
        f = np.array(front, dtype=np.int64)
        levels.append((e[f], cost[f], parent[f], option[f]))
    at, out = len(levels[-1][0]) - 1, [0] * k
    for c in range(k - 1, -1, -1):
        out[c] = int(levels[c + 1][3][at])
        at = int(levels[c + 1][2][at])
    cost = sum(classes[c][i][1] for c, i in enumerate(out))
    return out if cost < upper - 1e-9 * max(abs(upper), 1.0) else None


def allocate(classes, budget):
    """classes: per class a list of (escalations, cost, index). Returns (chosen indexes, feasible)."""
    g = greedy(classes, budget)
    if g is None:
        return None, False
    cur, lp_bound, lam = g
    upper = sum(o[i][1] for o, i in zip(classes, cur))
    cur = exact(classes, budget, cur, lp_bound, lam, upper) or cur
    return [o[i][2] for o, i in zip(classes, cur)], True


def main():
    path, budget, e, delta = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    grid = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    t0 = time.perf_counter()
    df = load(path)
    t1 = time.perf_counter()
    # class codes in name order (Arbiter allocates over the classes sorted by name)
    names = df["action"].unique().sort().to_list()
    codes = df["action"].cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int64)
    conf = df["confidence"].to_numpy()
    wrong = ~df["correct"].cast(pl.Boolean).to_numpy()
    err_cost = df["error_cost"].fill_null(1.0).to_numpy()
    esc_cost = df["escalation_cost"].fill_null(0.0).to_numpy()
    k, g1 = len(names), grid + 1
    at = codes * g1 + grid_bins(conf, grid)
    size = k * g1
    cnt = np.bincount(at, minlength=size).reshape(k, g1)
    wrong_n = np.bincount(at, weights=wrong, minlength=size).reshape(k, g1)
    wrong_cost = np.bincount(at, weights=wrong * err_cost, minlength=size).reshape(k, g1)
    esc = np.bincount(at, weights=esc_cost, minlength=size).reshape(k, g1)
    rev = lambda a: np.cumsum(a[:, ::-1], axis=1)[:, ::-1]  # noqa: E731 -- at or above each threshold
    auto, auto_wrong, auto_cost = rev(cnt), np.rint(rev(wrong_n)).astype(np.int64), rev(wrong_cost)
    below = np.concatenate([np.zeros((k, 1)), np.cumsum(esc, axis=1)], axis=1)  # escalating all below j
    spotless = math.ceil(math.log(delta) / math.log(1 - e))
    start = max(math.ceil(10 / e), spotless)
    js = np.arange(grid, -1, -1)
    total = int(cnt.sum())
    choices = []
    for c in range(k):
        n = int(auto[c, 0])
        opts = [(n, float(below[c, g1]), grid + 1)]  # never auto-allow
        tested = js[auto[c, js] >= start]
        p = binom_cdf(auto_wrong[c, tested], auto[c, tested], e)
        failed = np.nonzero(p > delta)[0]
        certified = tested[: failed[0]] if len(failed) else tested
        for j in certified:
            opts.append((n - int(auto[c, j]), float(auto_cost[c, j] + below[c, j]), int(j)))
        choices.append(opts)
    picks, feasible = allocate(choices, escalation_budget(budget, total))
    if picks is None:  # infeasible: every class at its fewest escalations, as Arbiter reports
        picks = [min(o, key=lambda x: (x[0], x[1]))[2] for o in choices]
    t2 = time.perf_counter()
    out = {names[c]: (None if j == grid + 1 else j / grid) for c, j in enumerate(picks)}
    print(json.dumps({"thresholds": out, "feasible": feasible, "load_seconds": t1 - t0, "tune_seconds": t2 - t1}))


if __name__ == "__main__":
    main()
