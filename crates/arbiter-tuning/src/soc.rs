//! A simulated security operations center: a seeded stream of alerts with a
//! hidden ground truth, and a triage agent that proposes tool actions with
//! calibrated confidence — until it drifts. Deterministic: the same seed gives
//! the same day.

/// The SOC triage agent's policy (`examples/policies/soc.yaml`): what the
/// demo serves and the drift scenarios evaluate the simulated traffic with.
pub const POLICY: &str = include_str!("../../../examples/policies/soc.yaml");

use crate::Action;
use crate::rng::Rng;
use serde_json::json;

/// How the agent's behaviour shifts after the drift point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DriftMode {
    /// No drift.
    None,
    /// It isolates far more hosts, mostly wrongly, and confidently.
    OverIsolation,
    /// Its confidence slides down across the board.
    ConfidenceSlide,
    /// Over-isolation that grows linearly from nothing to its full strength
    /// (`isolate_host` from about 5% to 15% of decisions) over `over_ms`.
    IsolationRamp {
        /// How long the ramp takes, ms.
        over_ms: i64,
    },
    /// The confidence of one action class slides down by `by`.
    ConfidenceSlideOn {
        /// The class.
        class: &'static str,
        /// How far, e.g. 0.08.
        by: f64,
    },
    /// One action class goes wrong more often: each right proposal of it
    /// turns wrong with probability `flip` (its name and confidence unchanged).
    ErrorsOn {
        /// The class.
        class: &'static str,
        /// The share of its right proposals that turn wrong.
        flip: f64,
    },
}

/// How the alert volume varies over time (the run starts at midnight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// Poisson arrivals at `alerts_per_hour`.
    Steady,
    /// Nights (22:00 to 06:00) bring `night_factor` of the day's volume and a
    /// different mix: `night_scanners` of the night's alerts are brute-force
    /// attempts by overnight scanners, half the rest benign noise.
    Daily {
        /// The night's share of the day's rate, e.g. 0.2.
        night_factor: f64,
        /// The share of night alerts that are brute-force scans, e.g. 0.4.
        night_scanners: f64,
    },
    /// Bursts of `factor` times the rate, `burst_ms` long, every `every_ms`.
    Bursty {
        /// How much busier a burst is.
        factor: f64,
        /// Time between bursts' starts, ms.
        every_ms: i64,
        /// A burst's length, ms.
        burst_ms: i64,
    },
}

/// Parameters of the simulated SOC.
#[derive(Debug, Clone, PartialEq)]
pub struct SocConfig {
    /// Random seed.
    pub seed: u64,
    /// Alerts per hour, on average (Poisson arrivals).
    pub alerts_per_hour: f64,
    /// Drift mode.
    pub drift: DriftMode,
    /// When the drift starts, ms after the start.
    pub drift_at_ms: i64,
    /// How the volume varies.
    pub traffic: Traffic,
}

impl Default for SocConfig {
    fn default() -> Self {
        SocConfig {
            seed: 1,
            alerts_per_hour: 400.0,
            drift: DriftMode::None,
            drift_at_ms: i64::MAX,
            traffic: Traffic::Steady,
        }
    }
}

const DAY_MS: i64 = 24 * 3_600_000;

impl Traffic {
    /// The rate at `at` as a multiple of the base rate, and whether it is night.
    fn at(self, at: i64) -> (f64, bool) {
        match self {
            Traffic::Steady => (1.0, false),
            Traffic::Daily { night_factor, .. } => {
                let hour = at.rem_euclid(DAY_MS) / 3_600_000;
                let night = !(6..22).contains(&hour);
                (if night { night_factor } else { 1.0 }, night)
            }
            Traffic::Bursty { factor, every_ms, burst_ms } => {
                (if at.rem_euclid(every_ms.max(1)) < burst_ms { factor } else { 1.0 }, false)
            }
        }
    }

    /// The highest multiple it reaches.
    fn peak(self) -> f64 {
        match self {
            Traffic::Steady => 1.0,
            Traffic::Daily { night_factor, .. } => night_factor.max(1.0),
            Traffic::Bursty { factor, .. } => factor.max(1.0),
        }
    }
}

/// The kinds of alert, with their share of the stream and how often they are real.
pub const ALERT_TYPES: &[(&str, f64, f64)] = &[
    ("malware", 0.15, 0.20),
    ("phishing", 0.20, 0.30),
    ("brute_force", 0.15, 0.25),
    ("impossible_travel", 0.10, 0.20),
    ("data_exfiltration", 0.05, 0.15),
    ("benign_noise", 0.35, 0.02),
];

/// One proposal of the agent, with the hidden truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Time since the start of the run, ms.
    pub offset_ms: i64,
    /// Alert id.
    pub alert_id: String,
    /// The action as the agent sends it.
    pub action: Action,
    /// The trace (one per alert).
    pub trace_id: String,
    /// Whether the proposed action is the right one (known later, as the outcome).
    pub correct: bool,
    /// Whether this proposal came from the drifted behaviour.
    pub drifted: bool,
}

/// The alert stream and the agent.
pub struct Soc {
    cfg: SocConfig,
    rng: Rng,
    t_ms: f64,
    n: u64,
    isolations: Vec<(i64, usize)>,
}

fn host(rng: &mut Rng) -> (String, Vec<&'static str>) {
    let i = rng.below(500);
    let tags = match i {
        0..=9 => vec!["server", "crown_jewel"],
        10..=74 => vec!["server"],
        _ => vec!["workstation"],
    };
    let prefix = if i < 75 { "srv" } else { "ws" };
    (format!("{prefix}-{i:04}"), tags)
}

fn user(rng: &mut Rng) -> (String, bool) {
    let i = rng.below(1000);
    (format!("user{i:04}"), i < 30)
}

impl Soc {
    fn new(cfg: SocConfig) -> Soc {
        Soc { rng: Rng::new(cfg.seed), cfg, t_ms: 0.0, n: 0, isolations: Vec::new() }
    }

    /// All proposals in `[0, until_ms)`. With varying traffic, arrivals are
    /// drawn at the peak rate and thinned (an exact inhomogeneous Poisson
    /// process); steady traffic draws exactly as it always did.
    pub fn run(cfg: SocConfig, until_ms: i64) -> Vec<Proposal> {
        let mut s = Soc::new(cfg);
        let mut out = Vec::new();
        let peak = s.cfg.traffic.peak();
        loop {
            let gap = s.rng.exponential(3_600_000.0 / (s.cfg.alerts_per_hour * peak));
            s.t_ms += gap;
            if s.t_ms as i64 >= until_ms {
                return out;
            }
            if s.cfg.traffic != Traffic::Steady {
                let (m, _) = s.cfg.traffic.at(s.t_ms as i64);
                if !s.rng.chance(m / peak) {
                    continue;
                }
            }
            out.push(s.propose(s.t_ms as i64));
        }
    }

    fn propose(&mut self, at: i64) -> Proposal {
        self.n += 1;
        let rng = &mut self.rng;
        let night = self.cfg.traffic.at(at).1;
        let scanners = match self.cfg.traffic {
            Traffic::Daily { night_scanners, .. } if night => night_scanners,
            _ => 0.0,
        };
        // at night the overnight scanners bring brute-force attempts, and half the rest is benign noise
        let u = if night && rng.chance(scanners) {
            0.36 // brute_force
        } else if night && rng.chance(0.5) {
            0.999
        } else {
            rng.uniform()
        };
        let mut acc = 0.0;
        let &(kind, _, p_real) = ALERT_TYPES
            .iter()
            .find(|(_, share, _)| {
                acc += share;
                u < acc
            })
            .unwrap_or(&ALERT_TYPES[ALERT_TYPES.len() - 1]);
        let real = rng.chance(p_real);
        let severity = match (real, rng.uniform()) {
            (true, x) if x < 0.5 => "high",
            (true, x) if x < 0.6 => "critical",
            (true, _) => "medium",
            (false, x) if x < 0.6 => "low",
            (false, _) => "medium",
        };
        let anomaly = if real { rng.beta(3.0, 3.0) } else { rng.beta(1.2, 8.0) };
        let (h, host_tags) = host(rng);
        let (usr, is_admin) = user(rng);
        let ip = format!("203.0.{}.{}", rng.below(256), rng.below(256));
        // The right action for this alert.
        let right = match (kind, real) {
            (_, false) => "close_alert",
            ("malware", true) => "isolate_host",
            ("phishing", true) => "block_ip",
            ("brute_force", true) => "block_ip",
            ("impossible_travel", true) => "disable_user",
            ("data_exfiltration", true) => "isolate_host",
            _ => "open_ticket",
        };
        let drifting = at >= self.cfg.drift_at_ms;
        // Calibrated: the agent's confidence is the probability that it is right.
        let mut confidence = rng.beta(40.0, 1.5).clamp(0.01, 0.999);
        let mut correct = rng.chance(confidence);
        let mut drifted = false;
        let mut name = if correct {
            right
        } else {
            // a plausible wrong choice
            match right {
                "close_alert" => ["open_ticket", "isolate_host", "block_ip"][rng.below(3) as usize],
                "isolate_host" => ["close_alert", "open_ticket"][rng.below(2) as usize],
                _ => ["close_alert", "open_ticket", "isolate_host"][rng.below(3) as usize],
            }
        };
        if name == right {
            correct = true;
        }
        if drifting {
            let ramp = |over_ms: i64| ((at - self.cfg.drift_at_ms) as f64 / over_ms.max(1) as f64).min(1.0);
            match self.cfg.drift {
                DriftMode::OverIsolation if name != "isolate_host" && rng.chance(0.35) => {
                    name = "isolate_host";
                    correct = right == "isolate_host";
                    confidence = rng.beta(20.0, 1.0).clamp(0.01, 0.999);
                    drifted = true;
                }
                DriftMode::IsolationRamp { over_ms } if name != "isolate_host" && rng.chance(0.11 * ramp(over_ms)) => {
                    name = "isolate_host";
                    correct = right == "isolate_host";
                    confidence = rng.beta(20.0, 1.0).clamp(0.01, 0.999);
                    drifted = true;
                }
                DriftMode::ConfidenceSlide => {
                    confidence = (confidence - 0.2).max(0.01);
                    drifted = true;
                }
                _ => {}
            }
        }
        // Low-confidence alerts the agent is unsure of become tickets.
        if !drifted && confidence < 0.35 && name != "open_ticket" {
            name = "open_ticket";
            correct = true;
        }
        if drifting {
            match self.cfg.drift {
                DriftMode::ConfidenceSlideOn { class, by } if name == class => {
                    confidence = (confidence - by).max(0.01);
                    drifted = true;
                }
                DriftMode::ErrorsOn { class, flip } if name == class && correct && rng.chance(flip) => {
                    correct = false;
                    drifted = true;
                }
                _ => {}
            }
        }
        // Isolations in the last hour on the host's network segment (one of eight).
        let segment = rng.below(8) as usize;
        let recent = self.isolations.iter().filter(|(t, s)| *t > at - 3_600_000 && *s == segment).count();
        if name == "isolate_host" {
            self.isolations.push((at, segment));
            if self.isolations.len() > 10_000 {
                self.isolations.drain(..5_000);
            }
        }
        let signals = json!({"alert_type": kind, "alert_severity": severity, "anomaly_score": (anomaly * 100.0).round() / 100.0,
            "hosts_isolated_last_hour": recent, "repeat_count": rng.below(4)});
        let unit = ["finance", "sales", "engineering", "hr"][rng.below(4) as usize];
        let args = match name {
            "isolate_host" => json!({"host": h, "host_tags": host_tags, "business_unit": unit}),
            "block_ip" => json!({"ip": ip, "direction": "inbound", "duration_hours": 24}),
            "disable_user" => {
                json!({"user": usr, "user_groups": if is_admin { vec!["staff", "domain_admins"] } else { vec!["staff"] }, "is_admin": is_admin, "is_service_account": false})
            }
            "close_alert" => {
                json!({"alert_id": format!("A-{}", self.n), "resolution": if kind == "benign_noise" { "benign" } else { "false_positive" }})
            }
            _ => {
                json!({"title": format!("{kind} on {h}"), "priority": if real { "p2" } else { "p3" }, "queue": "soc"})
            }
        };
        Proposal {
            offset_ms: at,
            alert_id: format!("A-{}", self.n),
            action: Action {
                name: name.to_string(),
                args,
                confidence: Some((confidence * 1000.0).round() / 1000.0),
                signals,
            },
            trace_id: format!("triage-{}", self.n),
            correct,
            drifted,
        }
    }
}

/// Proposal `i` of a steady, repeating mix for load tests (period 20): half
/// routine closes, tickets, some disruptive actions that escalate under the
/// SOC example policy, and one in twenty denied outright. Unlike the
/// simulated alert stream ([`Soc::run`]), every verdict occurs at a fixed rate.
pub fn load_mix(i: u64) -> Action {
    let host = format!("ws-{:04}", i % 5000);
    let (name, confidence, args, signals) = match i % 20 {
        0..=9 => (
            "close_alert",
            0.97,
            json!({"alert_id": format!("A-{i}"), "resolution": "benign"}),
            json!({"alert_type": "benign_noise", "alert_severity": "low", "anomaly_score": 0.1}),
        ),
        10..=12 => (
            "open_ticket",
            0.8,
            json!({"title": "Suspicious login", "priority": "p3", "queue": "soc"}),
            json!({"alert_type": "brute_force", "alert_severity": "medium"}),
        ),
        13..=14 => (
            "block_ip",
            0.95,
            json!({"ip": format!("203.0.{}.{}", (i / 256) % 256, i % 256), "direction": "inbound", "duration_hours": 24}),
            json!({"alert_type": "brute_force", "alert_severity": "medium", "ip_reputation": "malicious", "ip_internal": false}),
        ),
        15..=16 => (
            "isolate_host",
            0.9,
            json!({"host": host, "host_tags": ["workstation"], "business_unit": "sales"}),
            json!({"alert_type": "malware", "alert_severity": "high", "hosts_isolated_last_hour": 1}),
        ),
        17 => (
            "disable_user",
            0.93,
            json!({"user": format!("user{}", i % 900), "user_groups": ["staff"], "is_admin": false, "is_service_account": false}),
            json!({"alert_type": "impossible_travel", "alert_severity": "medium", "repeat_count": 3}),
        ),
        18 => (
            "close_alert",
            0.6,
            json!({"alert_id": format!("A-{i}"), "resolution": "false_positive"}),
            json!({"alert_type": "phishing", "alert_severity": "medium"}),
        ),
        _ => (
            "block_ip",
            0.99,
            json!({"ip": "8.8.8.8", "direction": "outbound", "duration_hours": 1}),
            json!({"alert_type": "data_exfiltration", "alert_severity": "high"}),
        ),
    };
    Action { name: name.into(), args, confidence: Some(confidence), signals }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3_600_000;

    #[test]
    fn deterministic_by_seed() {
        let a = Soc::run(SocConfig { seed: 5, ..SocConfig::default() }, DAY);
        let b = Soc::run(SocConfig { seed: 5, ..SocConfig::default() }, DAY);
        let c = Soc::run(SocConfig { seed: 6, ..SocConfig::default() }, DAY);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!((9000..10_200).contains(&a.len()), "{}", a.len());
    }

    #[test]
    fn calibrated_before_drift_and_over_isolating_after() {
        let day = Soc::run(
            SocConfig { seed: 9, drift: DriftMode::OverIsolation, drift_at_ms: DAY / 2, ..SocConfig::default() },
            DAY,
        );
        let (before, after): (Vec<&Proposal>, Vec<&Proposal>) = day.iter().partition(|p| p.offset_ms < DAY / 2);
        let share =
            |ps: &[&Proposal]| ps.iter().filter(|p| p.action.name == "isolate_host").count() as f64 / ps.len() as f64;
        let precision = |ps: &[&Proposal]| {
            let iso: Vec<_> = ps.iter().filter(|p| p.action.name == "isolate_host").collect();
            iso.iter().filter(|p| p.correct).count() as f64 / iso.len() as f64
        };
        assert!(share(&after) > 2.5 * share(&before), "{} vs {}", share(&after), share(&before));
        assert!(precision(&after) < precision(&before) - 0.3, "{} vs {}", precision(&after), precision(&before));
        // calibration: among confident proposals (≥ 0.9) before drift, most are right
        let confident: Vec<_> = before.iter().filter(|p| p.action.confidence.unwrap() >= 0.9).collect();
        let right = confident.iter().filter(|p| p.correct).count() as f64 / confident.len() as f64;
        assert!(right > 0.88, "{right}");
    }

    /// Night volume is the asked share of the day's with a benign-heavy mix;
    /// bursts multiply the rate inside them; steady traffic draws exactly as
    /// before the profiles existed (the same seed, the same stream).
    #[test]
    fn traffic_profiles_shape_the_volume() {
        const H: i64 = 3_600_000;
        let daily = Soc::run(
            SocConfig {
                seed: 9,
                traffic: Traffic::Daily { night_factor: 0.2, night_scanners: 0.0 },
                ..SocConfig::default()
            },
            7 * DAY,
        );
        let night = daily.iter().filter(|p| !(6..22).contains(&(p.offset_ms.rem_euclid(DAY) / H))).count() as f64 / 8.0;
        let day = daily.iter().filter(|p| (6..22).contains(&(p.offset_ms.rem_euclid(DAY) / H))).count() as f64 / 16.0;
        assert!((night / day - 0.2).abs() < 0.02, "night/day volume {}", night / day);
        let bursty = Soc::run(
            SocConfig {
                seed: 9,
                traffic: Traffic::Bursty { factor: 4.0, every_ms: 3 * H, burst_ms: H / 3 },
                ..SocConfig::default()
            },
            7 * DAY,
        );
        let inside = bursty.iter().filter(|p| p.offset_ms.rem_euclid(3 * H) < H / 3).count() as f64;
        let outside = bursty.len() as f64 - inside;
        assert!((inside / (H / 3) as f64) / (outside / (3 * H - H / 3) as f64 * 1.0) > 3.5, "bursts are ~4× busier");
        let steady = Soc::run(SocConfig { seed: 5, traffic: Traffic::Steady, ..SocConfig::default() }, DAY);
        assert_eq!(steady, Soc::run(SocConfig { seed: 5, ..SocConfig::default() }, DAY));
    }

    /// The class drifts touch only their class, from the drift's start.
    #[test]
    fn class_drifts_touch_their_class_only() {
        const H: i64 = 3_600_000;
        let base = SocConfig { seed: 4, drift_at_ms: 12 * H, ..SocConfig::default() };
        let errors = |ps: &[Proposal], class: &str, after: bool| {
            let v: Vec<&Proposal> =
                ps.iter().filter(|p| p.action.name == class && (p.offset_ms >= 12 * H) == after).collect();
            v.iter().filter(|p| !p.correct).count() as f64 / v.len() as f64
        };
        let ps = Soc::run(SocConfig { drift: DriftMode::ErrorsOn { class: "block_ip", flip: 0.5 }, ..base }, 24 * H);
        assert!(errors(&ps, "block_ip", true) > errors(&ps, "block_ip", false) + 0.3);
        assert!((errors(&ps, "close_alert", true) - errors(&ps, "close_alert", false)).abs() < 0.02);
        let ps = Soc::run(SocConfig { drift: DriftMode::IsolationRamp { over_ms: 6 * H }, ..base }, 24 * H);
        let share = |from: i64, to: i64| {
            let v: Vec<&Proposal> = ps.iter().filter(|p| (from..to).contains(&p.offset_ms)).collect();
            v.iter().filter(|p| p.action.name == "isolate_host").count() as f64 / v.len() as f64
        };
        let (before, ramping, after) = (share(0, 12 * H), share(14 * H, 16 * H), share(18 * H, 24 * H));
        assert!(before < 0.07 && ramping > before && after > 0.12, "{before} {ramping} {after}");
    }
}
