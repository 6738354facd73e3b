//! Reviewer-load simulation: replay escalations' arrival times through a pool
//! of reviewers (first come, first served) as a discrete-event simulation, and
//! compare with the Erlang-C queueing formula for the average arrival rate.

use crate::rng::Rng;
use crate::stats::quantile_sorted;
use serde::Serialize;

const HOUR_MS: i64 = 3_600_000;

/// One escalation to be reviewed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// When it arrived (ms since the epoch).
    pub at_ms: i64,
    /// The time its first tier allows (ms).
    pub sla_ms: i64,
}

/// The reviewer pool and how long reviews take.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Reviewers on duty.
    pub reviewers: u32,
    /// Median review time, seconds.
    pub review_median_s: f64,
    /// Log-normal spread of review times (0: always the median).
    pub review_sigma: f64,
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
    /// Escalations that waited longer than their SLA.
    pub sla_breaches: usize,
    /// Their share.
    pub sla_breach_share: f64,
    /// Busy time over on-duty time.
    pub utilisation: f64,
    /// Most escalations waiting at once.
    pub max_backlog: usize,
    /// The queueing-formula cross-check.
    pub erlang_c: ErlangC,
    /// Waiting escalations over time: (hours since start, count), every 15 minutes.
    pub queue: Vec<(f64, f64)>,
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
    ErlangC { arrivals_per_hour: lambda, service_per_hour: mu, utilisation: rho, p_wait, mean_wait_s }
}

/// Simulate `arrivals` (any order) through the reviewer pool.
pub fn simulate(arrivals: &[Arrival], opts: &SimOptions) -> SimResult {
    let mut arr = arrivals.to_vec();
    arr.sort_by_key(|a| a.at_ms);
    let mut rng = Rng::new(opts.seed);
    let c = opts.reviewers.max(1) as usize;
    let mut free = vec![i64::MIN; c];
    let mut starts = Vec::with_capacity(arr.len());
    let mut waits = Vec::with_capacity(arr.len());
    let (mut busy_ms, mut breaches) = (0f64, 0usize);
    for a in &arr {
        // FIFO with identical reviewers: the earliest free one takes the next in line.
        let (k, &f) = free.iter().enumerate().min_by_key(|(_, f)| **f).expect("at least one reviewer");
        let start = in_hours(a.at_ms.max(f), opts.working_hours);
        let service = (if opts.review_sigma > 0.0 {
            rng.lognormal(opts.review_median_s, opts.review_sigma)
        } else {
            opts.review_median_s
        } * 1000.0) as i64;
        free[k] = start + service.max(1);
        busy_ms += service as f64;
        let wait = start - a.at_ms;
        if wait > a.sla_ms {
            breaches += 1;
        }
        starts.push(start);
        waits.push(wait as f64 / 1000.0);
    }
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
    // backlog: arrivals so far minus review starts so far
    let mut sorted_starts = starts.clone();
    sorted_starts.sort_unstable();
    let (mut i, mut j, mut backlog, mut max_backlog) = (0, 0, 0i64, 0i64);
    while i < arr.len() {
        if j < sorted_starts.len() && sorted_starts[j] <= arr[i].at_ms {
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
    let end = sorted_starts.last().copied().unwrap_or(last).max(last);
    let mut t = first;
    while t <= end + step {
        while ai < arr.len() && arr[ai].at_ms <= t {
            ai += 1;
        }
        while si < sorted_starts.len() && sorted_starts[si] <= t {
            si += 1;
        }
        queue.push(((t - first) as f64 / HOUR_MS as f64, (ai - si) as f64));
        t += step;
    }
    let on_duty_hours_per_day = opts.working_hours.map_or(24.0, |(s, e)| e.saturating_sub(s) as f64);
    let on_duty_ms = (hours.max(1.0 / 60.0) * on_duty_hours_per_day / 24.0) * HOUR_MS as f64 * c as f64;
    let mean_service_h = opts.review_median_s * (opts.review_sigma * opts.review_sigma / 2.0).exp() / 3600.0;
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
        utilisation: (busy_ms / on_duty_ms).min(1.0),
        max_backlog: max_backlog as usize,
        erlang_c: erlang_c(arr.len() as f64 / hours.max(1e-9), 1.0 / mean_service_h.max(1e-9), opts.reviewers),
        queue,
    }
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
        let arr: Vec<Arrival> = (0..3).map(|_| Arrival { at_ms: 0, sla_ms: 15 * 60_000 }).collect();
        let r = simulate(
            &arr,
            &SimOptions { reviewers: 1, review_median_s: 600.0, review_sigma: 0.0, working_hours: None, seed: 1 },
        );
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
                Arrival { at_ms: (t * 1000.0) as i64, sla_ms: 3_600_000 }
            })
            .collect();
        // Deterministic 6-minute reviews (M/D/c): the utilisation must match the formula's ρ,
        // and the waits must not exceed the M/M/c (Erlang-C) mean by much.
        let opts = SimOptions { reviewers, review_median_s: 360.0, review_sigma: 0.0, working_hours: None, seed: 2 };
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
            &SimOptions {
                review_median_s: 360.0 / (std::f64::consts::LN_2 / 2.0).exp(),
                review_sigma: std::f64::consts::LN_2.sqrt(),
                ..opts.clone()
            },
        );
        let rel = (mm.wait_mean_s - mm.erlang_c.mean_wait_s).abs() / mm.erlang_c.mean_wait_s;
        assert!(rel < 0.2, "simulated {} s vs Erlang C {} s", mm.wait_mean_s, mm.erlang_c.mean_wait_s);
        let more = simulate(&arr, &SimOptions { reviewers: 5, ..opts.clone() });
        assert!(more.wait_p95_s < r.wait_p95_s && more.sla_breaches <= r.sla_breaches);
    }

    #[test]
    fn working_hours_hold_reviews_until_morning() {
        // arrival at 20:00 UTC with working hours 8–18: starts at 08:00 next day
        let at = 20 * HOUR_MS;
        let r = simulate(
            &[Arrival { at_ms: at, sla_ms: HOUR_MS }],
            &SimOptions {
                reviewers: 2,
                review_median_s: 60.0,
                review_sigma: 0.0,
                working_hours: Some((8, 18)),
                seed: 0,
            },
        );
        assert_eq!(r.wait_p50_s, 12.0 * 3600.0);
        assert_eq!(r.sla_breaches, 1);
    }
}
