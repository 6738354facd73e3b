//! `arbiter demo evaluate --scenarios`: the drift monitor on the scenario
//! kinds of production traffic, over many seeds each — daily seasonality
//! (night volume a fifth of the day's, a different mix), bursts, a linear
//! ramp of over-isolation, a confidence slide on a low-volume class, and an
//! error-rate doubling on a mid-size class whose labels arrive late. Each
//! run replays the simulated SOC through the SOC policy and evaluates the
//! monitor every 15 minutes as the server would, with the server's rule for
//! review cases (one per class and alarm kind while none is open; the team
//! closes each 30 minutes after it opens), and reports detection, delay,
//! false alarms per simulated week and cases per alarm episode.

use anyhow::Result;
use arbiter_core::drift::{self, AlarmKind, DriftConfig};
use arbiter_core::soc::{self, DriftMode, Traffic};
use serde::Serialize;
use std::collections::BTreeMap;

const HOUR: i64 = 3_600_000;
const WEEK: i64 = 7 * 24 * HOUR;
const STEP: i64 = 15 * 60_000;
/// Alarms of one class and kind less than this apart belong to one episode.
const EPISODE_GAP: i64 = 2 * HOUR;
/// How long the team takes to close a drift review.
const CASE_CLOSED_AFTER: i64 = 30 * 60_000;

/// One scenario kind.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    traffic: Traffic,
    drift: DriftMode,
    /// The drifting class: any alarm on it after the drift starts catches it.
    target: Option<&'static str>,
    /// How long after a decision its label arrives.
    label_delay: i64,
    /// Simulated time after the warm-up (drift scenarios: the drift starts 2 h in).
    span: i64,
    /// What the issue asks of it.
    target_text: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "seasonality",
        traffic: Traffic::Daily { night_factor: 0.2 },
        drift: DriftMode::None,
        target: None,
        label_delay: 30 * 60_000,
        span: WEEK,
        target_text: "≤ 1 false alarm / week",
    },
    Scenario {
        name: "bursts",
        traffic: Traffic::Bursty { factor: 4.0, every_ms: 3 * HOUR, burst_ms: 20 * 60_000 },
        drift: DriftMode::None,
        target: None,
        label_delay: 30 * 60_000,
        span: WEEK,
        target_text: "≤ 1 false alarm / week",
    },
    Scenario {
        name: "ramp (isolate_host 5→15% over 6 h)",
        traffic: Traffic::Steady,
        drift: DriftMode::IsolationRamp { over_ms: 6 * HOUR },
        target: Some("isolate_host"),
        label_delay: 30 * 60_000,
        span: 14 * HOUR,
        target_text: "caught within 2 h",
    },
    Scenario {
        name: "confidence −0.08 on block_ip (~40/h)",
        traffic: Traffic::Steady,
        drift: DriftMode::ConfidenceSlideOn { class: "block_ip", by: 0.08 },
        target: Some("block_ip"),
        label_delay: 30 * 60_000,
        span: 14 * HOUR,
        target_text: "caught within 6 h",
    },
    Scenario {
        name: "block_ip errors ×2, labels 2 h late",
        traffic: Traffic::Steady,
        drift: DriftMode::ErrorsOn { class: "block_ip", flip: 0.104 },
        target: Some("block_ip"),
        label_delay: 2 * HOUR,
        span: 14 * HOUR,
        target_text: "≥ 90% within 4 h of labels",
    },
];

/// One scenario over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds where the drift was caught (drift scenarios).
    pub detected: Option<u64>,
    /// Median hours from the drift's start to the first alarm on it.
    pub median_delay_hours: Option<f64>,
    /// The longest of those delays.
    pub worst_delay_hours: Option<f64>,
    /// Alarm episodes while nothing drifted (the whole run, or before the drift starts), per simulated week of that.
    pub false_alarms_per_week: f64,
    /// Review cases opened per alarm episode (the server's rule, reviews closed after 30 min).
    pub cases_per_episode: f64,
    /// What the issue asks.
    pub target: String,
}

/// What happened on one seed.
struct Run {
    delay: Option<i64>,
    false_episodes: u64,
    episodes: u64,
    cases: u64,
    simulated: i64,
}

fn run_one(s: &Scenario, seed: u64, rate: f64, policy: &arbiter_policy::Policy, cfg: &DriftConfig) -> Run {
    let warm = cfg.window_ms + cfg.reference_ms;
    let drift_at = warm + 2 * HOUR;
    let end = warm + s.span;
    let props = soc::Soc::run(
        soc::SocConfig { seed, alerts_per_hour: rate, drift: s.drift, drift_at_ms: drift_at, traffic: s.traffic },
        end,
    );
    let mut pts = super::offline::timed_points(&props, policy, 0);
    for p in &mut pts {
        p.labelled_at = Some(p.at + s.label_delay);
    }
    // per (class, kind): the last step it alarmed at, and when its open case closes
    let mut last: BTreeMap<(String, AlarmKind), i64> = BTreeMap::new();
    let mut case_until: BTreeMap<(String, AlarmKind), i64> = BTreeMap::new();
    let (mut delay, mut episodes, mut false_episodes, mut cases) = (None, 0, 0, 0);
    let mut now = warm;
    while now <= end {
        let (r, c) = drift::windows(&pts, now, cfg);
        for a in drift::evaluate(&r, &c, cfg).alarms {
            let about_drift = s.target.is_some_and(|class| a.action == class);
            if about_drift && now >= drift_at && delay.is_none() {
                delay = Some(now - drift_at);
            }
            let key = (a.action.clone(), a.kind);
            if last.get(&key).is_none_or(|&t| now - t > EPISODE_GAP) {
                episodes += 1;
                // after the drift starts, alarms on other classes are its consequences (their shares move too)
                if s.target.is_none() || now < drift_at {
                    false_episodes += 1;
                }
            }
            last.insert(key.clone(), now);
            if case_until.get(&key).is_none_or(|&t| t <= now) {
                cases += 1;
                case_until.insert(key, now + CASE_CLOSED_AFTER);
            }
        }
        now += STEP;
    }
    let quiet = if s.target.is_some() { drift_at - warm } else { end - warm };
    Run { delay, false_episodes, episodes, cases, simulated: quiet }
}

/// Run every scenario over `seeds` seeds at `rate` alerts an hour.
pub fn evaluate(seeds: u64, rate: f64, policy: &arbiter_policy::Policy) -> Result<Vec<ScenarioResult>> {
    let cfg = DriftConfig::default();
    let mut out = Vec::new();
    for s in SCENARIOS {
        let runs: Vec<Run> = (1..=seeds).map(|seed| run_one(s, seed, rate, policy, &cfg)).collect();
        let mut delays: Vec<f64> = runs.iter().filter_map(|r| r.delay).map(|d| d as f64 / HOUR as f64).collect();
        delays.sort_by(f64::total_cmp);
        let weeks: f64 = runs.iter().map(|r| r.simulated as f64 / WEEK as f64).sum();
        let episodes: u64 = runs.iter().map(|r| r.episodes).sum();
        out.push(ScenarioResult {
            scenario: s.name.to_string(),
            seeds,
            detected: s.target.map(|_| delays.len() as u64),
            median_delay_hours: (!delays.is_empty()).then(|| arbiter_core::stats::quantile_sorted(&delays, 0.5)),
            worst_delay_hours: delays.last().copied(),
            false_alarms_per_week: runs.iter().map(|r| r.false_episodes).sum::<u64>() as f64 / weeks,
            cases_per_episode: runs.iter().map(|r| r.cases).sum::<u64>() as f64 / episodes.max(1) as f64,
            target: s.target_text.to_string(),
        });
    }
    Ok(out)
}

/// Print the results as a table.
pub fn print(results: &[ScenarioResult], rate: f64) {
    println!(
        "drift monitor (default settings) on the simulated SOC at {rate} alerts/h, evaluated every 15 min; \
         episodes: alarms of one class and kind less than 2 h apart"
    );
    println!(
        "{:<38} {:>6} {:>9} {:>8} {:>8} {:>10} {:>10}  TARGET",
        "SCENARIO", "SEEDS", "DETECTED", "MEDIAN", "WORST", "FALSE/WK", "CASES/EP"
    );
    let h = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2} h"));
    for r in results {
        println!(
            "{:<38} {:>6} {:>9} {:>8} {:>8} {:>10.1} {:>10.2}  {}",
            r.scenario,
            r.seeds,
            r.detected.map_or("-".to_string(), |d| format!("{d}/{}", r.seeds)),
            h(r.median_delay_hours),
            h(r.worst_delay_hours),
            r.false_alarms_per_week,
            r.cases_per_episode,
            r.target
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness measures what it says: the ramp is caught on its class
    /// after it starts, a run without drift has nothing to catch, and the
    /// server's case rule opens at least one case per episode.
    #[test]
    fn the_harness_catches_a_ramp_and_counts_cases_per_episode() {
        let policy = arbiter_policy::Policy::parse(crate::SOC_POLICY).unwrap();
        let cfg = DriftConfig::default();
        let ramp = SCENARIOS.iter().find(|s| s.name.starts_with("ramp")).unwrap();
        let r = run_one(ramp, 1, 400.0, &policy, &cfg);
        assert!(r.delay.is_some_and(|d| d > 0 && d < 8 * HOUR), "caught after it starts");
        assert!(r.episodes >= 1 && r.cases >= r.episodes, "{} cases for {} episodes", r.cases, r.episodes);
        let quiet = Scenario {
            name: "steady",
            traffic: Traffic::Steady,
            drift: DriftMode::None,
            target: None,
            span: 12 * HOUR,
            ..*ramp
        };
        let q = run_one(&quiet, 1, 400.0, &policy, &cfg);
        assert_eq!((q.delay, q.simulated), (None, 12 * HOUR));
    }
}
