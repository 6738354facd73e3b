//! Reviewer-load simulation: replay escalations' arrival times through a pool
//! of reviewers (first come, first served) as a discrete-event simulation, and
//! compare with the Erlang-C queueing formula for the average arrival rate.
//! Review times follow a [`Service`] distribution; [`replicate`] repeats the
//! simulation with independent review times for confidence intervals, and
//! [`find_reviewers`] searches the smallest pool that meets an SLA target.

use crate::rng::Rng;
use crate::stats::quantile_sorted;
use serde::Serialize;

const HOUR_MS: i64 = 3_600_000;

/// One escalation to be reviewed.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// When it arrived (ms since the epoch).
    pub at_ms: i64,
    /// The time its first tier allows (ms).
    pub sla_ms: i64,
    /// The later tiers' times, in order (ms); after the last, the fallback applies.
    pub tiers_ms: Vec<i64>,
    /// Its severity (the queue's second key).
    pub severity: crate::verdict::Severity,
    /// The agent's confidence (the queue's fourth key: lower first).
    pub confidence: Option<f64>,
}

impl Arrival {
    /// An escalation with one tier of `sla_ms`, medium severity and no confidence.
    pub fn simple(at_ms: i64, sla_ms: i64) -> Arrival {
        Arrival { at_ms, sla_ms, tiers_ms: vec![], severity: crate::verdict::Severity::Medium, confidence: None }
    }

    /// When tier `k` ends (ms since the epoch).
    fn tier_end(&self, k: usize) -> i64 {
        self.at_ms + self.sla_ms + self.tiers_ms[..k].iter().sum::<i64>()
    }
}

/// How long one review takes, in seconds (fractions allowed).
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    /// Always the same.
    Fixed(f64),
    /// Exponential with this mean (the M in M/M/c).
    Exponential {
        /// Mean, seconds.
        mean_s: f64,
    },
    /// Log-normal with this median and spread σ (mean = median · e^(σ²/2)).
    LogNormal {
        /// Median, seconds.
        median_s: f64,
        /// σ of the underlying normal.
        sigma: f64,
    },
    /// Drawn (with replacement) from observed review times.
    Empirical(Vec<f64>),
}

impl Service {
    /// A log-normal given its mean instead of its median.
    pub fn lognormal_with_mean(mean_s: f64, sigma: f64) -> Service {
        Service::LogNormal { median_s: mean_s / (sigma * sigma / 2.0).exp(), sigma }
    }

    /// One review time, seconds.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Service::Fixed(s) => *s,
            Service::Exponential { mean_s } => rng.exponential(*mean_s),
            Service::LogNormal { median_s, sigma } if *sigma > 0.0 => rng.lognormal(*median_s, *sigma),
            Service::LogNormal { median_s, .. } => *median_s,
            Service::Empirical(v) if v.is_empty() => 0.0,
            Service::Empirical(v) => v[rng.below(v.len() as u64) as usize],
        }
    }

    /// The mean review time, seconds.
    pub fn mean_s(&self) -> f64 {
        match self {
            Service::Fixed(s) => *s,
            Service::Exponential { mean_s } => *mean_s,
            Service::LogNormal { median_s, sigma } => median_s * (sigma * sigma / 2.0).exp(),
            Service::Empirical(v) => v.iter().sum::<f64>() / v.len().max(1) as f64,
        }
    }
}

/// The reviewer pool and how long reviews take.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Reviewers on duty.
    pub reviewers: u32,
    /// Review times.
    pub service: Service,
    /// Working hours (UTC, start..end); reviews start only then. `None`: around the clock.
    pub working_hours: Option<(u32, u32)>,
    /// Random seed for review times.
    pub seed: u64,
}

/// Erlang-C (M/M/c) figures for the average arrival rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErlangC {
    /// Arrivals per hour (averaged over the whole period).
    pub arrivals_per_hour: f64,
    /// Reviews one reviewer finishes per hour.
    pub service_per_hour: f64,
    /// Offered load per reviewer (ρ).
    pub utilisation: f64,
    /// Probability that an escalation waits at all (1 when overloaded).
    pub p_wait: f64,
    /// Mean wait in seconds (infinite when overloaded).
    pub mean_wait_s: f64,
    /// P(wait > SLA), averaged over the escalations' SLAs: C · e^(−(cμ − λ)·SLA).
    pub p_wait_over_sla: f64,
}

/// What the simulation saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimResult {
    /// Escalations simulated.
    pub escalations: usize,
    /// Hours from the first arrival to the last.
    pub hours: f64,
    /// Escalations per hour: median, 95th percentile, peak.
    pub per_hour_median: f64,
    /// 95th percentile of escalations per hour.
    pub per_hour_p95: f64,
    /// Busiest hour.
    pub per_hour_peak: f64,
    /// Mean queue wait, seconds.
    pub wait_mean_s: f64,
    /// Queue wait before a reviewer starts, median seconds.
    pub wait_p50_s: f64,
    /// 95th percentile wait, seconds.
    pub wait_p95_s: f64,
    /// Escalations that waited longer than their first tier's SLA (moved to a later tier, or to the fallback).
    pub sla_breaches: usize,
    /// Their share: P(wait > SLA).
    pub sla_breach_share: f64,
    /// Escalations nobody started within all their tiers: the fallback applied.
    pub fallbacks: usize,
    /// Their share.
    pub fallback_share: f64,
    /// Share of escalations that waited at all: P(wait > 0).
    pub p_wait: f64,
    /// Busy time over on-duty time.
    pub utilisation: f64,
    /// Most escalations waiting at once.
    pub max_backlog: usize,
    /// The queueing-formula cross-check.
    pub erlang_c: ErlangC,
    /// Waiting escalations over time: (hours since start, count), every 15 minutes.
    pub queue: Vec<(f64, f64)>,
    /// Each escalation's wait, seconds, in arrival order (those that reached
    /// their fallback count all their tiers); not in the JSON.
    #[serde(skip)]
    pub waits_s: Vec<f64>,
}

fn in_hours(t: i64, hours: Option<(u32, u32)>) -> i64 {
    let Some((s, e)) = hours else { return t };
    let day = t.div_euclid(24 * HOUR_MS) * 24 * HOUR_MS;
    let (start, end) = (day + s as i64 * HOUR_MS, day + e as i64 * HOUR_MS);
    if t < start {
        start
    } else if t < end {
        t
    } else {
        start + 24 * HOUR_MS
    }
}

/// The Erlang-C formula for `c` servers, arrival rate `lambda` and service rate `mu` (per hour).
pub fn erlang_c(lambda: f64, mu: f64, c: u32) -> ErlangC {
    erlang_c_with_slas(lambda, mu, c, &[])
}

/// [`erlang_c`], with P(wait > SLA) averaged over `slas_s` (seconds).
pub fn erlang_c_with_slas(lambda: f64, mu: f64, c: u32, slas_s: &[f64]) -> ErlangC {
    let a = lambda / mu;
    let rho = a / c as f64;
    let (p_wait, mean_wait_s) = if c == 0 || rho >= 1.0 {
        (1.0, f64::INFINITY)
    } else {
        // Erlang B by recursion, then C from B (numerically stable).
        let mut b = 1.0;
        for k in 1..=c {
            b = a * b / (k as f64 + a * b);
        }
        let pw = c as f64 * b / (c as f64 - a * (1.0 - b));
        (pw, pw / (c as f64 * mu - lambda) * 3600.0)
    };
    // the FCFS waiting time of M/M/c: P(W > t) = C · e^(−(cμ − λ) t)
    let p_wait_over_sla = if mean_wait_s.is_infinite() {
        1.0
    } else if slas_s.is_empty() {
        0.0
    } else {
        let rate_s = (c as f64 * mu - lambda) / 3600.0;
        slas_s.iter().map(|t| p_wait * (-rate_s * t).exp()).sum::<f64>() / slas_s.len() as f64
    };
    ErlangC { arrivals_per_hour: lambda, service_per_hour: mu, utilisation: rho, p_wait, mean_wait_s, p_wait_over_sla }
}

/// The queue's key of a waiting case at `now` (smaller is more urgent): the
/// order of [`crate::queue`] — due soon first, then severity, time left on
/// the current tier, lower confidence, older.
fn urgency(a: &Arrival, deadline: i64, now: i64) -> (bool, std::cmp::Reverse<crate::verdict::Severity>, i64, u64, i64) {
    let left = deadline - now;
    (left > crate::queue::DUE_SOON_MS, std::cmp::Reverse(a.severity), left, confidence_key(a), a.at_ms)
}

/// The agent's confidence as a totally ordered key (no confidence counts as 0, as in the queue).
fn confidence_key(a: &Arrival) -> u64 {
    (a.confidence.unwrap_or(0.0).clamp(0.0, 1.0) * 1e9) as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Case `i` arrives.
    Arrive(usize),
    /// A reviewer is free.
    Free,
    /// Working hours begin.
    Open,
    /// Tier `k` of case `i` ends.
    TierEnd(usize, usize),
}

/// Simulate `arrivals` (any order) through the reviewer pool: a discrete-event
/// simulation in which a free reviewer takes the most urgent waiting case in
/// the queue's order, a case moves to its next tier when one ends, and leaves
/// the queue (its fallback applies) when its last tier ends unanswered.
pub fn simulate(arrivals: &[Arrival], opts: &SimOptions) -> SimResult {
    use std::cmp::Reverse;
    use std::collections::{BTreeSet, BinaryHeap};
    let mut arr = arrivals.to_vec();
    arr.sort_by_key(|a| a.at_ms);
    let mut rng = Rng::new(opts.seed);
    let c = opts.reviewers.max(1) as usize;
    let mut events: BinaryHeap<Reverse<(i64, Event)>> =
        arr.iter().enumerate().map(|(i, a)| Reverse((a.at_ms, Event::Arrive(i)))).collect();
    let mut free = c; // reviewers free now
    let mut tier = vec![0usize; arr.len()];
    let mut deadline = vec![0i64; arr.len()];
    // waiting cases by (severity, deadline, confidence, age, index) and by deadline (for "due soon")
    let mut by_priority: BTreeSet<(Reverse<crate::verdict::Severity>, i64, u64, i64, usize)> = BTreeSet::new();
    let mut by_deadline: BTreeSet<(i64, usize)> = BTreeSet::new();
    let key = |a: &Arrival, d: i64, i: usize| (Reverse(a.severity), d, confidence_key(a), a.at_ms, i);
    let mut starts: Vec<Option<i64>> = vec![None; arr.len()];
    let (mut busy_ms, mut breaches, mut fallbacks) = (0f64, 0usize, 0usize);
    let mut opening_scheduled = false;
    while let Some(Reverse((t, ev))) = events.pop() {
        match ev {
            Event::Arrive(i) => {
                deadline[i] = arr[i].tier_end(0);
                by_priority.insert(key(&arr[i], deadline[i], i));
                by_deadline.insert((deadline[i], i));
                events.push(Reverse((deadline[i], Event::TierEnd(i, 0))));
            }
            Event::Free => free += 1,
            Event::Open => opening_scheduled = false,
            Event::TierEnd(i, k) => {
                if starts[i].is_some() || tier[i] != k || !by_deadline.contains(&(deadline[i], i)) {
                    continue; // started, or already moved on
                }
                by_priority.remove(&key(&arr[i], deadline[i], i));
                by_deadline.remove(&(deadline[i], i));
                if k == 0 {
                    breaches += 1;
                }
                if k < arr[i].tiers_ms.len() {
                    tier[i] = k + 1;
                    deadline[i] = arr[i].tier_end(k + 1);
                    by_priority.insert(key(&arr[i], deadline[i], i));
                    by_deadline.insert((deadline[i], i));
                    events.push(Reverse((deadline[i], Event::TierEnd(i, k + 1))));
                } else {
                    fallbacks += 1; // nobody started it: the fallback applies and it leaves the queue
                }
                continue;
            }
        }
        // assign free reviewers to the most urgent waiting cases
        while free > 0 && !by_priority.is_empty() {
            let open = in_hours(t, opts.working_hours);
            if open > t {
                // outside working hours: reviewers start at the next opening
                if !opening_scheduled {
                    events.push(Reverse((open, Event::Open)));
                    opening_scheduled = true;
                }
                break;
            }
            // due soon first: among cases whose tier ends within DUE_SOON_MS, the queue's order
            let soon = by_deadline
                .iter()
                .take_while(|(d, _)| d - t <= crate::queue::DUE_SOON_MS)
                .min_by_key(|(d, i)| (urgency(&arr[*i], *d, t), *i))
                .map(|(_, i)| *i);
            let i = soon.unwrap_or_else(|| by_priority.first().expect("not empty").4);
            by_priority.remove(&key(&arr[i], deadline[i], i));
            by_deadline.remove(&(deadline[i], i));
            starts[i] = Some(t);
            free -= 1;
            let service = ((opts.service.sample(&mut rng) * 1000.0).round() as i64).max(1);
            busy_ms += service as f64;
            events.push(Reverse((t + service, Event::Free)));
        }
    }
    let waits: Vec<f64> = arr
        .iter()
        .zip(&starts)
        .map(|(a, s)| match s {
            Some(s) => (s - a.at_ms) as f64 / 1000.0,
            // never started: it waited all its tiers
            None => (a.tier_end(a.tiers_ms.len()) - a.at_ms) as f64 / 1000.0,
        })
        .collect();
    // when each case left the queue: its review started, or its fallback applied
    let left_queue: Vec<i64> =
        starts.iter().zip(&arr).map(|(s, a)| s.unwrap_or(a.tier_end(a.tiers_ms.len()))).collect();
    let (first, last) = match (arr.first(), arr.last()) {
        (Some(f), Some(l)) => (f.at_ms, l.at_ms.max(f.at_ms + 1)),
        _ => (0, 1),
    };
    let hours = (last - first) as f64 / HOUR_MS as f64;
    let n_hours = ((last - first) / HOUR_MS + 1) as usize;
    let mut per_hour = vec![0f64; n_hours];
    for a in &arr {
        per_hour[((a.at_ms - first) / HOUR_MS) as usize] += 1.0;
    }
    per_hour.sort_by(f64::total_cmp);
    let mut sorted_waits = waits.clone();
    sorted_waits.sort_by(f64::total_cmp);
    // backlog: arrivals so far minus departures from the queue so far
    let mut departures = left_queue;
    departures.sort_unstable();
    let (mut i, mut j, mut backlog, mut max_backlog) = (0, 0, 0i64, 0i64);
    while i < arr.len() {
        if j < departures.len() && departures[j] <= arr[i].at_ms {
            backlog -= 1;
            j += 1;
        } else {
            backlog += 1;
            i += 1;
            max_backlog = max_backlog.max(backlog);
        }
    }
    let mut queue = Vec::new();
    let step = HOUR_MS / 4;
    let (mut ai, mut si) = (0, 0);
    let end = departures.last().copied().unwrap_or(last).max(last);
    let mut t = first;
    while t <= end + step {
        while ai < arr.len() && arr[ai].at_ms <= t {
            ai += 1;
        }
        while si < departures.len() && departures[si] <= t {
            si += 1;
        }
        queue.push(((t - first) as f64 / HOUR_MS as f64, (ai - si) as f64));
        t += step;
    }
    let on_duty_hours_per_day = opts.working_hours.map_or(24.0, |(s, e)| e.saturating_sub(s) as f64);
    let on_duty_ms = (hours.max(1.0 / 60.0) * on_duty_hours_per_day / 24.0) * HOUR_MS as f64 * c as f64;
    let mean_service_h = opts.service.mean_s() / 3600.0;
    let slas: Vec<f64> = arr.iter().map(|a| a.sla_ms as f64 / 1000.0).collect();
    SimResult {
        escalations: arr.len(),
        hours,
        per_hour_median: quantile_sorted(&per_hour, 0.5),
        per_hour_p95: quantile_sorted(&per_hour, 0.95),
        per_hour_peak: per_hour.last().copied().unwrap_or(0.0),
        wait_mean_s: waits.iter().sum::<f64>() / waits.len().max(1) as f64,
        wait_p50_s: quantile_sorted(&sorted_waits, 0.5),
        wait_p95_s: quantile_sorted(&sorted_waits, 0.95),
        sla_breaches: breaches,
        sla_breach_share: breaches as f64 / arr.len().max(1) as f64,
        fallbacks,
        fallback_share: fallbacks as f64 / arr.len().max(1) as f64,
        p_wait: waits.iter().filter(|w| **w > 0.0).count() as f64 / waits.len().max(1) as f64,
        utilisation: (busy_ms / on_duty_ms).min(1.0),
        max_backlog: max_backlog as usize,
        erlang_c: erlang_c_with_slas(
            arr.len() as f64 / hours.max(1e-9),
            1.0 / mean_service_h.max(1e-9),
            opts.reviewers,
            &slas,
        ),
        queue,
        waits_s: waits,
    }
}

/// A figure over replicates: its mean and a 95% confidence interval (Student's t).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// Mean over the replicates.
    pub mean: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

impl Estimate {
    /// The interval cut to `[lo, hi]` (a share cannot leave [0, 1], a wait cannot be negative).
    pub fn within(self, lo: f64, hi: f64) -> Estimate {
        Estimate { mean: self.mean, low: self.low.max(lo), high: self.high.min(hi) }
    }
}

/// Two-sided 95% Student's t quantiles for 1..=30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
    2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/// The mean of `xs` with a 95% t-interval (a point when there is one value).
pub fn estimate(xs: &[f64]) -> Estimate {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
    if n < 2 {
        return Estimate { mean, low: mean, high: mean };
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    let t = T95.get(n - 2).copied().unwrap_or(1.96);
    let half = t * (var / n as f64).sqrt();
    Estimate { mean, low: mean - half, high: mean + half }
}

/// Several independent runs (review times drawn afresh; the arrivals are the history's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replicated {
    /// Runs.
    pub replicates: u32,
    /// Reviewers.
    pub reviewers: u32,
    /// Mean wait, seconds.
    pub wait_mean_s: Estimate,
    /// 95th percentile wait, seconds.
    pub wait_p95_s: Estimate,
    /// P(wait > 0).
    pub p_wait: Estimate,
    /// P(wait > SLA).
    pub p_wait_over_sla: Estimate,
    /// Reviewer utilisation.
    pub utilisation: Estimate,
}

/// Run the simulation `replicates` times with seeds `opts.seed`, `opts.seed + 1`, ...
pub fn replicate(arrivals: &[Arrival], opts: &SimOptions, replicates: u32) -> (Replicated, Vec<SimResult>) {
    let runs: Vec<SimResult> = (0..replicates.max(1))
        .map(|i| simulate(arrivals, &SimOptions { seed: opts.seed.wrapping_add(i as u64), ..opts.clone() }))
        .collect();
    let of = |f: &dyn Fn(&SimResult) -> f64| estimate(&runs.iter().map(f).collect::<Vec<_>>());
    let r = Replicated {
        replicates: replicates.max(1),
        reviewers: opts.reviewers,
        wait_mean_s: of(&|r| r.wait_mean_s).within(0.0, f64::INFINITY),
        wait_p95_s: of(&|r| r.wait_p95_s).within(0.0, f64::INFINITY),
        p_wait: of(&|r| r.p_wait).within(0.0, 1.0),
        p_wait_over_sla: of(&|r| r.sla_breach_share).within(0.0, 1.0),
        utilisation: of(&|r| r.utilisation).within(0.0, 1.0),
    };
    (r, runs)
}

/// The smallest team (up to `max`) whose mean P(wait > SLA) over `replicates`
/// runs is at most `target`, with its figures; `None` when even `max` is not enough.
pub fn find_reviewers(
    arrivals: &[Arrival],
    opts: &SimOptions,
    target: f64,
    replicates: u32,
    max: u32,
) -> Option<Replicated> {
    (1..=max).find_map(|c| {
        let (r, _) = replicate(arrivals, &SimOptions { reviewers: c, ..opts.clone() }, replicates);
        (r.p_wait_over_sla.mean <= target).then_some(r)
    })
}

/// The smallest team for which Erlang C's P(wait > SLA) is at most `target`
/// (the M/M/c answer, to check [`find_reviewers`] against).
pub fn erlang_c_reviewers(lambda: f64, mu: f64, slas_s: &[f64], target: f64, max: u32) -> Option<u32> {
    (1..=max).find(|&c| erlang_c_with_slas(lambda, mu, c, slas_s).p_wait_over_sla <= target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_textbook_values() {
        // 2 servers, a = 1 Erlang: C = 1/3; Wq = C / (cμ − λ)
        let e = erlang_c(1.0, 1.0, 2);
        assert!((e.p_wait - 1.0 / 3.0).abs() < 1e-12);
        assert!((e.mean_wait_s - 3600.0 / 3.0).abs() < 1e-6);
        // M/M/1: P(wait) = ρ
        assert!((erlang_c(0.5, 1.0, 1).p_wait - 0.5).abs() < 1e-12);
        assert!(erlang_c(3.0, 1.0, 2).mean_wait_s.is_infinite());
    }

    #[test]
    fn deterministic_queue_by_hand() {
        // 1 reviewer, 10-minute reviews, 3 arrivals at once: waits 0, 10, 20 minutes
        let arr: Vec<Arrival> = (0..3).map(|_| Arrival::simple(0, 15 * 60_000)).collect();
        let r =
            simulate(&arr, &SimOptions { reviewers: 1, service: Service::Fixed(600.0), working_hours: None, seed: 1 });
        assert_eq!(r.wait_p50_s, 600.0);
        assert_eq!(r.sla_breaches, 1);
        assert_eq!(r.max_backlog, 2, "two wait while the first is reviewed");
        assert_eq!(r.per_hour_peak, 3.0);
    }

    #[test]
    fn simulation_agrees_with_erlang_c_on_poisson_arrivals() {
        let mut rng = Rng::new(9);
        let (lambda_h, reviewers) = (20.0, 3u32);
        let mut t = 0f64;
        let arr: Vec<Arrival> = (0..40_000)
            .map(|_| {
                t += rng.exponential(3600.0 / lambda_h);
                Arrival::simple((t * 1000.0) as i64, 3_600_000)
            })
            .collect();
        // Deterministic 6-minute reviews (M/D/c): the utilisation must match the formula's ρ,
        // and the waits must not exceed the M/M/c (Erlang-C) mean by much.
        let opts = SimOptions { reviewers, service: Service::Fixed(360.0), working_hours: None, seed: 2 };
        let r = simulate(&arr, &opts);
        assert!(
            (r.utilisation - r.erlang_c.utilisation).abs() < 0.03,
            "{} vs {}",
            r.utilisation,
            r.erlang_c.utilisation
        );
        assert!(r.wait_p50_s <= r.erlang_c.mean_wait_s, "M/D/c waits less than M/M/c");
        assert!(r.wait_p95_s > 0.0);
        // Log-normal reviews with σ = √ln 2 have a coefficient of variation of 1, like the
        // exponential: the simulated mean wait must then be close to Erlang C's.
        let mm = simulate(
            &arr,
            &SimOptions { service: Service::lognormal_with_mean(360.0, std::f64::consts::LN_2.sqrt()), ..opts.clone() },
        );
        let rel = (mm.wait_mean_s - mm.erlang_c.mean_wait_s).abs() / mm.erlang_c.mean_wait_s;
        assert!(rel < 0.2, "simulated {} s vs Erlang C {} s", mm.wait_mean_s, mm.erlang_c.mean_wait_s);
        let more = simulate(&arr, &SimOptions { reviewers: 5, ..opts.clone() });
        assert!(more.wait_p95_s < r.wait_p95_s && more.sla_breaches <= r.sla_breaches);
    }

    #[test]
    fn working_hours_hold_reviews_until_morning() {
        // arrival at 20:00 UTC with working hours 8–18: starts at 08:00 next day
        // (its second tier lasts the night)
        let at = 20 * HOUR_MS;
        let r = simulate(
            &[Arrival { tiers_ms: vec![24 * HOUR_MS], ..Arrival::simple(at, HOUR_MS) }],
            &SimOptions { reviewers: 2, service: Service::Fixed(60.0), working_hours: Some((8, 18)), seed: 0 },
        );
        assert_eq!(r.wait_p50_s, 12.0 * 3600.0);
        assert_eq!((r.sla_breaches, r.fallbacks), (1, 0));
        // with one tier of an hour, nobody is there before its fallback applies
        let alone = simulate(
            &[Arrival::simple(at, HOUR_MS)],
            &SimOptions { reviewers: 2, service: Service::Fixed(60.0), working_hours: Some((8, 18)), seed: 0 },
        );
        assert_eq!((alone.sla_breaches, alone.fallbacks, alone.wait_p50_s), (1, 1, 3600.0));
    }

    #[test]
    fn the_queue_order_and_the_tiers_apply() {
        use crate::verdict::Severity;
        let opts = SimOptions { reviewers: 1, service: Service::Fixed(600.0), working_hours: None, seed: 1 };
        let m = 60_000;
        let case = |at: i64, sla: i64, tiers: Vec<i64>, severity: Severity| Arrival {
            tiers_ms: tiers,
            severity,
            ..Arrival::simple(at, sla)
        };
        // the reviewer is busy for 10 minutes with case 0; then the critical one
        // goes first although it came later
        let r = simulate(
            &[
                case(0, 60 * m, vec![], Severity::Medium),
                case(m, 60 * m, vec![], Severity::Low),
                case(2 * m, 60 * m, vec![], Severity::Critical),
            ],
            &opts,
        );
        // waits: case 0 none, the critical 8 min, the low one 19 min
        assert_eq!(r.wait_p50_s, 8.0 * 60.0);
        assert_eq!(r.wait_mean_s, (0.0 + 8.0 * 60.0 + 19.0 * 60.0) / 3.0);
        // due soon beats severity: a low case 4 minutes from its deadline goes before a critical one with an hour left
        let r = simulate(
            &[
                case(0, 60 * m, vec![], Severity::Medium),
                case(m, 60 * m, vec![], Severity::Critical),
                case(2 * m, 12 * m, vec![], Severity::Low),
            ],
            &opts,
        );
        assert_eq!(r.sla_breaches, 0, "the low case was taken at 10 min, before its 14 min deadline");
        assert_eq!(r.wait_mean_s, (0.0 + 19.0 * 60.0 + 8.0 * 60.0) / 3.0);
        // tiers: busy for 10 minutes; a case with a 5-minute first tier and a 20-minute second one
        // is breached but answered; one with only 5 minutes falls back
        let r = simulate(
            &[
                case(0, 60 * m, vec![], Severity::Medium),
                case(0, 5 * m, vec![20 * m], Severity::Medium),
                case(0, 5 * m, vec![], Severity::Low),
            ],
            &opts,
        );
        assert_eq!((r.sla_breaches, r.fallbacks), (2, 1));
    }

    /// Poisson arrivals whose first tier is `sla_ms`, with a long second tier so
    /// that nobody reaches the fallback: no case leaves the queue, as in M/M/c.
    fn poisson(lambda_h: f64, n: usize, sla_ms: i64, seed: u64) -> Vec<Arrival> {
        let mut rng = Rng::new(seed);
        let mut t = 0f64;
        (0..n)
            .map(|_| {
                t += rng.exponential(3600.0 / lambda_h);
                Arrival { tiers_ms: vec![1000 * HOUR_MS], ..Arrival::simple((t * 1000.0) as i64, sla_ms) }
            })
            .collect()
    }

    #[test]
    fn erlang_c_wait_tail_matches_the_formula_and_the_simulation() {
        // M/M/2, λ = 1/h, μ = 1/h: P(W > t) = C e^{-(2μ-λ)t} with C = 1/3
        let e = erlang_c_with_slas(1.0, 1.0, 2, &[3600.0]);
        assert!((e.p_wait_over_sla - (1.0 / 3.0) * (-1.0f64).exp()).abs() < 1e-12);
        // Exponential service, Poisson arrivals. P(wait > 0) and the mean wait do not depend on
        // the order cases are taken in (any work-conserving order with the same review times),
        // so they match Erlang C under the queue's own order too.
        let arr = poisson(20.0, 60_000, 5 * 60_000, 4);
        let opts =
            SimOptions { reviewers: 3, service: Service::Exponential { mean_s: 420.0 }, working_hours: None, seed: 8 };
        let r = simulate(&arr, &opts);
        assert!((r.p_wait - r.erlang_c.p_wait).abs() < 0.03, "{} vs {}", r.p_wait, r.erlang_c.p_wait);
        let rel = (r.wait_mean_s - r.erlang_c.mean_wait_s).abs() / r.erlang_c.mean_wait_s;
        assert!(rel < 0.1, "{} vs {}", r.wait_mean_s, r.erlang_c.mean_wait_s);
        // The tail is the FCFS one where the queue's order is first come, first served: the
        // same severity, and a first tier too long to ever be "due soon". Then the simulated
        // P(wait > 5 min) matches C·e^(−(cμ − λ)·5 min).
        let fcfs: Vec<Arrival> = arr.iter().map(|a| Arrival { sla_ms: 1000 * HOUR_MS, ..a.clone() }).collect();
        let f = simulate(&fcfs, &opts);
        let over = f.waits_s.iter().filter(|w| **w > 300.0).count() as f64 / f.waits_s.len() as f64;
        let formula = erlang_c_with_slas(f.erlang_c.arrivals_per_hour, f.erlang_c.service_per_hour, 3, &[300.0]);
        assert!((over - formula.p_wait_over_sla).abs() < 0.03, "{over} vs {}", formula.p_wait_over_sla);
        // With a 5-minute first tier, the queue takes cases that are about to breach first and
        // drops breached ones behind fresh ones, so fewer breach than FCFS would let.
        assert!(
            r.sla_breach_share < r.erlang_c.p_wait_over_sla,
            "{} vs {}",
            r.sla_breach_share,
            r.erlang_c.p_wait_over_sla
        );
    }

    #[test]
    fn service_distributions_have_their_means_in_fractions_of_a_second() {
        let mut rng = Rng::new(5);
        for (s, mean) in [
            (Service::Exponential { mean_s: 0.25 }, 0.25),
            (Service::lognormal_with_mean(2.5, 0.8), 2.5),
            (Service::LogNormal { median_s: 1.5, sigma: 0.5 }, 1.5 * (0.125f64).exp()),
            (Service::Empirical(vec![0.5, 1.5, 4.0]), 2.0),
            (Service::Fixed(0.75), 0.75),
        ] {
            assert!((s.mean_s() - mean).abs() < 1e-12, "{s:?}");
            let n = 200_000;
            let m = (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((m - mean).abs() / mean < 0.02, "{s:?}: sampled mean {m} vs {mean}");
        }
    }

    #[test]
    fn replicates_give_intervals() {
        let arr = poisson(30.0, 3_000, 10 * 60_000, 6);
        let opts =
            SimOptions { reviewers: 4, service: Service::Exponential { mean_s: 360.0 }, working_hours: None, seed: 1 };
        let (r, runs) = replicate(&arr, &opts, 20);
        assert_eq!((r.replicates, runs.len()), (20, 20));
        assert!(r.p_wait.low <= r.p_wait.mean && r.p_wait.mean <= r.p_wait.high);
        assert!(r.p_wait.high - r.p_wait.low > 0.0, "independent review times vary");
        let distinct: std::collections::BTreeSet<u64> = runs.iter().map(|x| x.wait_mean_s.to_bits()).collect();
        assert!(distinct.len() > 1);
        assert_eq!(estimate(&[2.0]), Estimate { mean: 2.0, low: 2.0, high: 2.0 });
        assert_eq!(estimate(&[0.0, 0.0, 0.003]).within(0.0, 1.0).low, 0.0, "a share's interval stays in [0, 1]");
        let e = estimate(&[1.0, 2.0, 3.0]);
        assert!((e.high - 2.0 - 4.303 * (1.0f64 / 3.0).sqrt()).abs() < 1e-9);
    }

    #[test]
    fn the_smallest_team_meets_the_target_and_agrees_with_erlang_c() {
        let arr = poisson(24.0, 20_000, 10 * 60_000, 2);
        let opts =
            SimOptions { reviewers: 1, service: Service::Exponential { mean_s: 600.0 }, working_hours: None, seed: 3 };
        let found = find_reviewers(&arr, &opts, 0.05, 5, 50).expect("a team exists");
        assert!(found.p_wait_over_sla.mean <= 0.05);
        let fewer = replicate(&arr, &SimOptions { reviewers: found.reviewers - 1, ..opts.clone() }, 5).0;
        assert!(fewer.p_wait_over_sla.mean > 0.05, "one fewer is not enough");
        let lambda = arr.len() as f64 / ((arr.last().unwrap().at_ms - arr[0].at_ms) as f64 / 3.6e6);
        let formula = erlang_c_reviewers(lambda, 6.0, &[600.0], 0.05, 50).unwrap();
        assert_eq!(found.reviewers, formula, "M/M/c: the simulation and Erlang C agree");
    }
}
