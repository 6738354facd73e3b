//! Allocating the escalation budget across classes: a multiple-choice
//! knapsack. Each class offers options (a threshold, its escalations and its
//! cost of automatic errors); pick one per class so that the escalations fit
//! the budget and the cost is least.
//!
//! Method: start every class at its fewest-escalations option; then walk the
//! lower convex hulls of the (escalations, cost) points, always taking the
//! step that removes the most cost per escalation, while it fits; finally try
//! single-class moves to any option with what budget is left. The hull walk
//! solves the linear relaxation (Sinha & Zoltners), which bounds the exact
//! optimum from below, so the reported `gap` (our cost minus that bound) is a
//! proven upper bound on how far from optimal the answer is; it is 0 when the
//! walk ends on a hull vertex.

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

/// Choose one option per class with total escalations ≤ `budget` and least cost.
pub fn allocate(classes: &[Vec<Choice>], budget: u64) -> Allocation {
    let hulls: Vec<Vec<usize>> = classes.iter().map(|o| hull(o)).collect();
    let mut at: Vec<usize> = vec![0; classes.len()]; // position on the hull
    let mut cur: Vec<usize> = hulls.iter().map(|h| h[0]).collect(); // option index
    let min_escalations: u64 = classes.iter().zip(&cur).map(|(o, &i)| o[i].escalations).sum();
    let mut used = min_escalations;
    let total_cost = |cur: &[usize]| classes.iter().zip(cur).map(|(o, &i)| o[i].cost).sum::<f64>();
    if min_escalations > budget {
        let cost = total_cost(&cur);
        return Allocation {
            picks: pick(classes, &cur),
            escalations: used,
            cost,
            feasible: false,
            min_escalations,
            gap: 0.0,
        };
    }
    let step = |c: usize, pos: usize| -> Option<Step> {
        let h = &hulls[c];
        let (a, b) = (classes[c][*h.get(pos)?], classes[c][*h.get(pos + 1)?]);
        let (de, dc) = (b.escalations - a.escalations, a.cost - b.cost);
        Some(Step { ratio: dc / de as f64, class: c, to: pos + 1, de, dc })
    };
    let mut heap: BinaryHeap<Step> = (0..classes.len()).filter_map(|c| step(c, 0)).collect();
    // The linear relaxation's bound: the first step that does not fit, taken fractionally.
    let mut lp_extra = None;
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
    let cost = total_cost(&cur);
    Allocation {
        picks: pick(classes, &cur),
        escalations: used,
        cost,
        feasible: true,
        min_escalations,
        gap: (cost - lp_bound).max(0.0),
    }
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
