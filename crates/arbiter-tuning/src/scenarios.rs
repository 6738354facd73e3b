//! The drift monitor's evaluation corpus (`arbiter demo evaluate
//! --scenarios` prints it; `cargo test -p arbiter-tuning --test drift_scenarios`
//! holds the monitor to it): the scenario kinds of production traffic, over many seeds each — daily seasonality
//! (night volume a fifth of the day's, a different mix with overnight
//! scanners), bursts, a linear ramp of over-isolation, a confidence slide on a
//! low-volume class, and an error-rate doubling on a mid-size class whose
//! labels arrive late. Each run replays the simulated SOC through the SOC
//! policy after a week of history (so the seasonal baseline has its days),
//! evaluates the monitor every 15 minutes as the server does, with the
//! server's episode lifecycle (one review case per episode), and reports
//! detection, delay, false alarms per simulated week and cases per episode.
//! `--baseline recent` runs the same tests against the 12 h before the
//! window instead of the same hour on earlier days.

use crate::soc::{self, DriftMode, Traffic};
use arbiter_core::Timestamp;
use arbiter_core::drift::{self, DriftConfig, Monitor, episode};
use serde::Serialize;
use std::collections::BTreeMap;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
const STEP: i64 = 15 * 60_000;
/// History before the scenario starts: the seasonal baseline's days and the span.
const WARM: i64 = 8 * DAY;

/// One scenario kind.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name in the table.
    pub name: &'static str,
    /// Its name in file names.
    pub slug: &'static str,
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

/// Every scenario kind, in the order the tables list them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "seasonality",
        slug: "seasonality",
        traffic: Traffic::Daily { night_factor: 0.2, night_scanners: 0.8 },
        drift: DriftMode::None,
        target: None,
        label_delay: 30 * 60_000,
        span: WEEK,
        target_text: "≤ 1 false alarm / week",
    },
    Scenario {
        name: "bursts",
        slug: "bursts",
        traffic: Traffic::Bursty { factor: 4.0, every_ms: 3 * HOUR, burst_ms: 20 * 60_000 },
        drift: DriftMode::None,
        target: None,
        label_delay: 30 * 60_000,
        span: WEEK,
        target_text: "≤ 1 false alarm / week",
    },
    Scenario {
        name: "ramp (isolate_host 5→15% over 6 h)",
        slug: "ramp",
        traffic: Traffic::Steady,
        drift: DriftMode::IsolationRamp { over_ms: 6 * HOUR },
        target: Some("isolate_host"),
        label_delay: 30 * 60_000,
        span: 14 * HOUR,
        target_text: "caught within 2 h",
    },
    Scenario {
        name: "confidence −0.08 on block_ip (~40/h)",
        slug: "confidence-slide",
        traffic: Traffic::Steady,
        drift: DriftMode::ConfidenceSlideOn { class: "block_ip", by: 0.08 },
        target: Some("block_ip"),
        label_delay: 30 * 60_000,
        span: 14 * HOUR,
        target_text: "caught within 6 h",
    },
    Scenario {
        name: "block_ip errors ×2, labels 2 h late",
        slug: "error-doubling",
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

/// Drift points for a simulated run: each proposal evaluated by `policy`,
/// labelled 30 minutes after the fact.
pub fn timed_points(proposals: &[soc::Proposal], policy: &arbiter_policy::Policy, start: i64) -> Vec<drift::Timed> {
    let agent = arbiter_policy::cel::agent_value("soc-triage-agent", "");
    let empty = serde_json::json!({});
    proposals
        .iter()
        .map(|p| {
            let env = arbiter_policy::env_of(&p.action, &empty, &agent, None);
            let verdict = policy.evaluate(&env).verdict;
            drift::Timed {
                at: start + p.offset_ms,
                point: drift::Point {
                    action: env.name.to_string(),
                    escalated: verdict == arbiter_core::Verdict::Escalate,
                    confidence: env.confidence,
                    correct: Some(p.correct),
                },
                labelled_at: Some(start + p.offset_ms + 30 * 60_000),
            }
        })
        .collect()
}

/// The scenario's decisions: a week of history, then the scenario (the drift 2 h in).
pub fn stream(s: &Scenario, seed: u64, rate: f64, policy: &arbiter_policy::Policy) -> (Vec<drift::Timed>, i64, i64) {
    let drift_at = WARM + 2 * HOUR;
    let end = WARM + s.span;
    let props = soc::Soc::run(
        soc::SocConfig { seed, alerts_per_hour: rate, drift: s.drift, drift_at_ms: drift_at, traffic: s.traffic },
        end,
    );
    let mut pts = timed_points(&props, policy, 0);
    for p in &mut pts {
        p.labelled_at = Some(p.at + s.label_delay);
    }
    (pts, drift_at, end)
}

fn run_one(s: &Scenario, seed: u64, rate: f64, policy: &arbiter_policy::Policy, cfg: &DriftConfig) -> Run {
    let (pts, drift_at, end) = stream(s, seed, rate, policy);
    let mut monitor = Monitor::new(cfg.clone());
    let mut open: Vec<episode::Episode> = Vec::new();
    let (mut delay, mut episodes, mut false_episodes, mut cases) = (None, 0, 0, 0);
    let mut ids = 0u64;
    let mut now = WARM;
    let restarts = BTreeMap::new();
    while now <= end {
        let tests = monitor.run(&pts, now, &restarts);
        let changes = episode::step(&open, &tests, Timestamp(now), cfg.episode_quiet_ms, || {
            ids += 1;
            ids.to_string()
        });
        for change in changes {
            let e = change.episode().clone();
            if let episode::Change::Started(_) = change {
                episodes += 1;
                cases += 1; // the server opens one review case per episode
                let about_drift = s.target.is_some_and(|class| e.action == class);
                if about_drift && now >= drift_at && delay.is_none() {
                    delay = Some(now - drift_at);
                }
                // after the drift starts, alarms on other classes are its consequences (their shares move too)
                if s.target.is_none() || now < drift_at {
                    false_episodes += 1;
                }
            }
            episode::apply(&mut open, e);
        }
        now += STEP;
    }
    let quiet = if s.target.is_some() { drift_at - WARM } else { end - WARM };
    Run { delay, false_episodes, episodes, cases, simulated: quiet }
}

/// Write every scenario's streams for an outside detector: per scenario and
/// seed a CSV of the decisions (`at_ms,action,escalated,confidence,correct,labelled_at_ms`)
/// and `scenarios.json` with when each drift starts, the run's end and its target class.
pub fn export(dir: &std::path::Path, seeds: u64, rate: f64, policy: &arbiter_policy::Policy) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut meta = Vec::new();
    for s in SCENARIOS {
        for seed in 1..=seeds {
            let (pts, drift_at, end) = stream(s, seed, rate, policy);
            let path = dir.join(format!("{}-{seed}.csv", s.slug));
            let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
            writeln!(w, "at_ms,action,escalated,confidence,correct,labelled_at_ms")?;
            for p in &pts {
                let opt = |x: Option<String>| x.unwrap_or_default();
                writeln!(
                    w,
                    "{},{},{},{},{},{}",
                    p.at,
                    p.point.action,
                    u8::from(p.point.escalated),
                    opt(p.point.confidence.map(|c| c.to_string())),
                    opt(p.point.correct.map(|c| u8::from(c).to_string())),
                    opt(p.labelled_at.map(|l| l.to_string())),
                )?;
            }
            w.flush()?;
            if seed == 1 {
                meta.push(serde_json::json!({
                    "name": s.name, "slug": s.slug, "seeds": seeds, "target": s.target,
                    "warm_ms": WARM, "drift_at_ms": s.target.map(|_| drift_at), "end_ms": end,
                }));
            }
        }
    }
    std::fs::write(dir.join("scenarios.json"), serde_json::to_string_pretty(&meta).map_err(std::io::Error::other)?)
}

/// Run every scenario over `seeds` seeds at `rate` alerts an hour, on two threads.
pub fn evaluate(seeds: u64, rate: f64, policy: &arbiter_policy::Policy, cfg: &DriftConfig) -> Vec<ScenarioResult> {
    let mut out = Vec::new();
    for s in SCENARIOS {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let runs: Vec<Run> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|k| {
                    scope.spawn(move || {
                        (1..=seeds)
                            .filter(|seed| seed % threads == k)
                            .map(|seed| run_one(s, seed, rate, policy, cfg))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("a scenario thread panicked")).collect()
        });
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
    out
}

/// Print the results as a table.
pub fn print(results: &[ScenarioResult], rate: f64) {
    println!(
        "drift monitor (default settings) on the simulated SOC at {rate} alerts/h after a week of history, \
         evaluated every 15 min; episodes as the server keeps them"
    );
    println!(
        "{:<38} {:>6} {:>9} {:>8} {:>8} {:>10} {:>10}  TARGET",
        "SCENARIO", "SEEDS", "DETECTED", "MEDIAN", "WORST", "FALSE/WK", "CASES/EP"
    );
    let h = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2} h"));
    for r in results {
        println!(
            "{:<38} {:>6} {:>9} {:>8} {:>8} {:>10.2} {:>10.2}  {}",
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
    /// after it starts, a run without drift has nothing to catch, and each
    /// episode has one case.
    #[test]
    fn the_harness_catches_a_ramp_with_one_case_per_episode() {
        let policy = arbiter_policy::Policy::parse(crate::soc::POLICY).unwrap();
        let cfg = DriftConfig::default();
        let ramp = SCENARIOS.iter().find(|s| s.name.starts_with("ramp")).unwrap();
        let r = run_one(ramp, 1, 400.0, &policy, &cfg);
        assert!(r.delay.is_some_and(|d| d > 0 && d < 8 * HOUR), "caught after it starts");
        assert!(r.episodes >= 1 && r.cases == r.episodes, "{} cases for {} episodes", r.cases, r.episodes);
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

    /// The low-volume slide is caught by the confidence test itself (the
    /// class's confidence tail), not only by what the slide does to escalations.
    #[test]
    fn a_low_volume_confidence_slide_is_caught_by_its_confidence_test() {
        let policy = arbiter_policy::Policy::parse(crate::soc::POLICY).unwrap();
        let slide = SCENARIOS.iter().find(|s| s.slug == "confidence-slide").unwrap();
        let (pts, drift_at, _) = stream(slide, 1, 400.0, &policy);
        let mut monitor = Monitor::new(DriftConfig::default());
        let before = monitor.run(&pts, drift_at, &BTreeMap::new());
        assert!(before.iter().all(|t| !t.alarm), "quiet before the slide");
        let after = monitor.run(&pts, drift_at + HOUR, &BTreeMap::new());
        let conf = after
            .iter()
            .find(|t| {
                t.action == "block_ip"
                    && t.kind == drift::AlarmKind::Confidence
                    && t.direction == drift::Direction::Down
            })
            .unwrap();
        assert!(conf.alarm, "{conf:?}");
        assert_eq!(conf.baseline.kind, "same_hour");
        assert!(conf.trials < 1_300, "a class of ~40 an hour over the 24 h span: {} trials", conf.trials);
    }
}
