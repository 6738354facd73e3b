//! Allocating the escalation budget across classes: a multiple-choice
//! knapsack. Each class offers options (a threshold, its escalations and its
//! cost of automatic errors); pick one per class so that the escalations fit
//! the budget and the cost is least.
//!
//! Method, exact:
//!
//! 1. **A good answer and a bound.** Start every class at its
//!    fewest-escalations option; walk the lower convex hulls of the
//!    (escalations, cost) points, always taking the step that removes the most
//!    cost per escalation while it fits, then spend what is left on the best
//!    single-class moves. This is a feasible answer (cost `U`). The hull walk
//!    solves the linear relaxation (Sinha & Zoltners): its value `L` bounds the
//!    optimum from below, and the slope `λ` of the first step that did not fit
//!    is its Lagrange multiplier.
//! 2. **Reduced-cost fixing.** An option whose reduced cost `cost + λ·esc −
//!    min(cost' + λ·esc')` in its class exceeds `U − L` cannot be part of any
//!    answer better than `U` (the Lagrangian bound with it forced is already
//!    above `U`), so it is dropped. Usually only a few options per class, near
//!    the hull at slope `λ`, survive.
//! 3. **Dynamic programming** over the classes on what survives: the Pareto
//!    frontier of (escalations used, cost) of partial answers, pruned by the
//!    budget and by `U`. Its best point within the budget is the exact optimum.
//!
//! Ties (equal cost) go to fewer escalations, then to the earlier option of
//! each class (callers list the most conservative threshold first).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One option of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// The caller's identifier (a threshold index).
    pub index: usize,
    /// Escalations it causes.
    pub escalations: u64,
    /// Cost of the automatic errors it lets through.
    pub cost: f64,
}

/// The chosen option per class.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// Chosen `Choice::index` per class.
    pub picks: Vec<usize>,
    /// Total escalations.
    pub escalations: u64,
    /// Total cost.
    pub cost: f64,
    /// Whether the budget could be met at all.
    pub feasible: bool,
    /// The fewest escalations any allocation needs.
    pub min_escalations: u64,
    /// Upper bound on `cost` minus the exact optimum.
    pub gap: f64,
}

#[derive(Debug, PartialEq)]
struct Step {
    ratio: f64,
    class: usize,
    to: usize,
    de: u64,
    dc: f64,
}

impl Eq for Step {}
impl Ord for Step {
    fn cmp(&self, o: &Self) -> Ordering {
        self.ratio.total_cmp(&o.ratio).then_with(|| o.class.cmp(&self.class))
    }
}
impl PartialOrd for Step {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The lower convex hull of a class's options, from its fewest-escalations
/// point towards more escalations and less cost (indices into `opts`).
fn hull(opts: &[Choice]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..opts.len()).collect();
    order.sort_by(|&a, &b| opts[a].escalations.cmp(&opts[b].escalations).then(opts[a].cost.total_cmp(&opts[b].cost)));
    // Keep a strictly decreasing cost (Pareto front).
    let mut front: Vec<usize> = Vec::new();
    for i in order {
        match front.last() {
            Some(&l) if opts[i].cost >= opts[l].cost => {}
            Some(&l) if opts[i].escalations == opts[l].escalations => {}
            _ => front.push(i),
        }
    }
    // Lower convex hull: slopes must increase (become less negative).
    let mut h: Vec<usize> = Vec::new();
    for i in front {
        while h.len() >= 2 {
            let (a, b) = (opts[h[h.len() - 2]], opts[h[h.len() - 1]]);
            let c = opts[i];
            let cross = (b.escalations as f64 - a.escalations as f64) * (c.cost - a.cost)
                - (b.cost - a.cost) * (c.escalations as f64 - a.escalations as f64);
            if cross <= 0.0 {
                h.pop();
            } else {
                break;
            }
        }
        h.push(i);
    }
    h
}

/// The greedy answer, the linear relaxation's bound, and its multiplier.
struct Relaxed {
    cur: Vec<usize>,
    lp_bound: f64,
    lambda: f64,
}

/// Choose one option per class with total escalations ≤ `budget` and least
/// cost: the exact optimum (see the module's method).
pub fn allocate(classes: &[Vec<Choice>], budget: u64) -> Allocation {
    let min_escalations: u64 = classes.iter().map(|o| o.iter().map(|c| c.escalations).min().unwrap_or(0)).sum();
    let relaxed = match greedy(classes, budget) {
        Ok(r) => r,
        Err(infeasible) => return infeasible,
    };
    let upper: f64 = classes.iter().zip(&relaxed.cur).map(|(o, &i)| o[i].cost).sum();
    let cur = exact(classes, budget, &relaxed, upper).unwrap_or_else(|| relaxed.cur.clone());
    let cost: f64 = classes.iter().zip(&cur).map(|(o, &i)| o[i].cost).sum();
    let escalations = classes.iter().zip(&cur).map(|(o, &i)| o[i].escalations).sum();
    Allocation { picks: pick(classes, &cur), escalations, cost, feasible: true, min_escalations, gap: 0.0 }
}

/// Steps 2 and 3: the exact optimum's option positions (`None`: the greedy one is it).
fn exact(classes: &[Vec<Choice>], budget: u64, r: &Relaxed, upper: f64) -> Option<Vec<usize>> {
    let slack = (upper - r.lp_bound).max(0.0);
    if slack <= 1e-12 * upper.abs().max(1.0) {
        return None; // the greedy answer meets the bound: optimal
    }
    let tol = 1e-9 * upper.abs().max(1.0);
    // reduced-cost fixing at the relaxation's multiplier
    let kept: Vec<Vec<usize>> = classes
        .iter()
        .map(|opts| {
            let score = |c: &Choice| c.cost + r.lambda * c.escalations as f64;
            let best = opts.iter().map(score).fold(f64::INFINITY, f64::min);
            (0..opts.len()).filter(|&i| score(&opts[i]) - best <= slack + tol).collect()
        })
        .collect();
    // what the remaining classes need at least, for pruning partial answers
    let k = classes.len();
    let mut rest_cost = vec![0.0; k + 1];
    let mut rest_esc = vec![0u64; k + 1];
    for c in (0..k).rev() {
        let opts = &classes[c];
        rest_cost[c] = rest_cost[c + 1] + kept[c].iter().map(|&i| opts[i].cost).fold(f64::INFINITY, f64::min);
        rest_esc[c] = rest_esc[c + 1] + kept[c].iter().map(|&i| opts[i].escalations).min().unwrap_or(0);
    }
    // the Pareto frontier of partial answers, level by level, with back-pointers
    #[derive(Clone, Copy)]
    struct Node {
        esc: u64,
        cost: f64,
        parent: u32,
        option: u32,
    }
    let mut levels: Vec<Vec<Node>> = vec![vec![Node { esc: 0, cost: 0.0, parent: 0, option: 0 }]];
    for c in 0..k {
        let prev = levels.last().expect("level 0 exists");
        let mut next: Vec<Node> = Vec::with_capacity(prev.len() * kept[c].len());
        for (pi, p) in prev.iter().enumerate() {
            for &i in &kept[c] {
                let o = classes[c][i];
                let (esc, cost) = (p.esc + o.escalations, p.cost + o.cost);
                if esc + rest_esc[c + 1] > budget || cost + rest_cost[c + 1] > upper + tol {
                    continue;
                }
                next.push(Node { esc, cost, parent: pi as u32, option: i as u32 });
            }
        }
        // fewer escalations first, then cheaper; keep only strictly cheaper as escalations grow
        next.sort_by(|a, b| a.esc.cmp(&b.esc).then(a.cost.total_cmp(&b.cost)).then(a.option.cmp(&b.option)));
        let mut front: Vec<Node> = Vec::with_capacity(next.len());
        for n in next {
            if front.last().is_none_or(|l| n.cost < l.cost - 1e-12 * l.cost.abs().max(1.0)) {
                front.push(n);
            }
        }
        if front.is_empty() {
            return None; // only the greedy answer reaches here: keep it
        }
        levels.push(front);
    }
    // the cheapest complete answer (the frontier's last point); ties went to fewer escalations
    let last = levels.last().expect("k levels");
    let mut at = last.len() - 1;
    let mut out = vec![0; k];
    for c in (0..k).rev() {
        let n = levels[c + 1][at];
        out[c] = n.option as usize;
        at = n.parent as usize;
    }
    let cost: f64 = classes.iter().zip(&out).map(|(o, &i)| o[i].cost).sum();
    (cost < upper - tol).then_some(out)
}

/// Step 1: the greedy answer on the hulls, or the infeasible allocation.
fn greedy(classes: &[Vec<Choice>], budget: u64) -> Result<Relaxed, Allocation> {
    let hulls: Vec<Vec<usize>> = classes.iter().map(|o| hull(o)).collect();
    let mut at: Vec<usize> = vec![0; classes.len()]; // position on the hull
    let mut cur: Vec<usize> = hulls.iter().map(|h| h[0]).collect(); // option index
    let min_escalations: u64 = classes.iter().zip(&cur).map(|(o, &i)| o[i].escalations).sum();
    let mut used = min_escalations;
    let total_cost = |cur: &[usize]| classes.iter().zip(cur).map(|(o, &i)| o[i].cost).sum::<f64>();
    if min_escalations > budget {
        let cost = total_cost(&cur);
        return Err(Allocation {
            picks: pick(classes, &cur),
            escalations: used,
            cost,
            feasible: false,
            min_escalations,
            gap: 0.0,
        });
    }
    let step = |c: usize, pos: usize| -> Option<Step> {
        let h = &hulls[c];
        let (a, b) = (classes[c][*h.get(pos)?], classes[c][*h.get(pos + 1)?]);
        let (de, dc) = (b.escalations - a.escalations, a.cost - b.cost);
        Some(Step { ratio: dc / de as f64, class: c, to: pos + 1, de, dc })
    };
    let mut heap: BinaryHeap<Step> = (0..classes.len()).filter_map(|c| step(c, 0)).collect();
    // The linear relaxation's bound: the first step that does not fit, taken
    // fractionally; its slope is the multiplier.
    let mut lp_extra = None;
    let mut lambda = 0.0;
    while let Some(s) = heap.pop() {
        if used + s.de <= budget {
            used += s.de;
            at[s.class] = s.to;
            cur[s.class] = hulls[s.class][s.to];
            if let Some(n) = step(s.class, s.to) {
                heap.push(n);
            }
        } else if lp_extra.is_none() {
            lp_extra = Some((budget - used) as f64 * s.ratio);
            lambda = s.ratio;
        }
    }
    let greedy_cost = total_cost(&cur);
    let lp_bound = greedy_cost - lp_extra.unwrap_or(0.0);
    // Spend what is left on the best single-class moves.
    loop {
        let mut best: Option<(usize, usize, f64)> = None;
        for (c, opts) in classes.iter().enumerate() {
            let now = opts[cur[c]];
            for (i, o) in opts.iter().enumerate() {
                if o.escalations >= now.escalations
                    && o.cost < now.cost
                    && used - now.escalations + o.escalations <= budget
                {
                    let gain = now.cost - o.cost;
                    if best.is_none_or(|(_, _, g)| gain > g) {
                        best = Some((c, i, gain));
                    }
                }
            }
        }
        let Some((c, i, _)) = best else { break };
        used = used - classes[c][cur[c]].escalations + classes[c][i].escalations;
        cur[c] = i;
    }
    Ok(Relaxed { cur, lp_bound, lambda })
}

fn pick(classes: &[Vec<Choice>], cur: &[usize]) -> Vec<usize> {
    classes.iter().zip(cur).map(|(o, &i)| o[i].index).collect()
}

/// The exact optimum by enumeration (for tests on small inputs): (chosen
/// option positions, cost), or `None` when nothing fits.
pub fn brute_force(classes: &[Vec<Choice>], budget: u64) -> Option<(Vec<usize>, f64)> {
    fn go(
        classes: &[Vec<Choice>],
        c: usize,
        left: u64,
        acc: f64,
        picked: &mut Vec<usize>,
        best: &mut Option<(Vec<usize>, f64)>,
    ) {
        if c == classes.len() {
            if best.as_ref().is_none_or(|(_, b)| acc < *b - 1e-12) {
                *best = Some((picked.clone(), acc));
            }
            return;
        }
        for (i, o) in classes[c].iter().enumerate() {
            if o.escalations <= left {
                picked.push(i);
                go(classes, c + 1, left - o.escalations, acc + o.cost, picked, best);
                picked.pop();
            }
        }
    }
    let mut best = None;
    go(classes, 0, budget, 0.0, &mut Vec::new(), &mut best);
    best
}
