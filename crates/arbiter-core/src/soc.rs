//! A simulated security operations center: a seeded stream of alerts with a
//! hidden ground truth, and a triage agent that proposes tool actions with
//! calibrated confidence — until it drifts. Deterministic: the same seed gives
//! the same day.

use crate::Action;
use crate::rng::Rng;
use serde_json::json;

/// How the agent's behaviour shifts after the drift point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftMode {
    /// No drift.
    None,
    /// It isolates far more hosts, mostly wrongly, and confidently.
    OverIsolation,
    /// Its confidence slides down across the board.
    ConfidenceSlide,
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
}

impl Default for SocConfig {
    fn default() -> Self {
        SocConfig { seed: 1, alerts_per_hour: 400.0, drift: DriftMode::None, drift_at_ms: i64::MAX }
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

    /// All proposals in `[0, until_ms)`.
    pub fn run(cfg: SocConfig, until_ms: i64) -> Vec<Proposal> {
        let mut s = Soc::new(cfg);
        let mut out = Vec::new();
        loop {
            let gap = s.rng.exponential(3_600_000.0 / s.cfg.alerts_per_hour);
            s.t_ms += gap;
            if s.t_ms as i64 >= until_ms {
                return out;
            }
            out.push(s.propose(s.t_ms as i64));
        }
    }

    fn propose(&mut self, at: i64) -> Proposal {
        self.n += 1;
        let rng = &mut self.rng;
        let u = rng.uniform();
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
            match self.cfg.drift {
                DriftMode::OverIsolation if name != "isolate_host" && rng.chance(0.35) => {
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
}
