//! Did the failure stop? After an intervention's policy version went live,
//! compare the failure's rate in the window before against the window after:
//! among labelled decisions of the lesson's action classes, the share that
//! were wrong **and** ran without a person looking (allowed by the policy).
//! The windows have the same length (the time since activation, at most
//! [`MAX_WINDOW_MS`]); the test is the binomial test the drift monitor uses,
//! two-sided. With too few labelled decisions after activation the answer is
//! an honest "not enough data yet".

use crate::decision::FinalSource;
use crate::drift::{DriftConfig, RateTest};
use crate::time::Timestamp;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// The longest window compared on each side.
pub const MAX_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// Labelled decisions needed after activation before a verdict is given.
pub const MIN_TRIALS: u64 = 30;
/// A change counts when the test's p-value is below this.
pub const ALPHA: f64 = 0.05;

/// A labelled decision, as recurrence counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    /// When the agent proposed it.
    pub at: Timestamp,
    /// Who settled it.
    pub source: Option<FinalSource>,
    /// What was done.
    pub verdict: Option<Verdict>,
    /// Whether the proposed action was right.
    pub correct: bool,
}

impl Labelled {
    /// Wrong, and it ran without a person looking.
    pub fn harmful_unreviewed(&self) -> bool {
        !self.correct && self.source == Some(FinalSource::Policy) && self.verdict == Some(Verdict::Allow)
    }
}

/// What the comparison says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecurrenceStatus {
    /// Too few labelled decisions after activation.
    NotEnoughData,
    /// The rate fell, significantly.
    Reduced,
    /// No significant change.
    Unchanged,
    /// The rate rose, significantly.
    Worse,
}

/// The failure's rate before and after a policy version went live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    /// The version.
    pub policy_version: String,
    /// When it was first activated.
    pub activated_at: Timestamp,
    /// The action classes counted.
    pub actions: Vec<String>,
    /// Length of each window, ms.
    pub window_ms: i64,
    /// Before (reference) and after (recent) counts, rates and the p-value.
    pub test: RateTest,
    /// What it says.
    pub status: RecurrenceStatus,
    /// One sentence for people.
    pub summary: String,
}

/// The window to read: `[activated_at - len, activated_at + len)` with `len`
/// the time since activation, at most [`MAX_WINDOW_MS`].
pub fn window(activated_at: Timestamp, now: Timestamp) -> (Timestamp, Timestamp, i64) {
    let len = (now.0 - activated_at.0).clamp(0, MAX_WINDOW_MS);
    (Timestamp(activated_at.0 - len), Timestamp(activated_at.0 + len), len)
}

/// Compare the labelled decisions before and after `activated_at` (`points`
/// from [`window`]'s range).
pub fn measure(
    policy_version: &str,
    actions: Vec<String>,
    activated_at: Timestamp,
    now: Timestamp,
    points: &[Labelled],
) -> Recurrence {
    let (from, to, len) = window(activated_at, now);
    let in_win = |p: &&Labelled, a: i64, b: i64| p.at.0 >= a && p.at.0 < b;
    let before: Vec<&Labelled> = points.iter().filter(|p| in_win(p, from.0, activated_at.0)).collect();
    let after: Vec<&Labelled> = points.iter().filter(|p| in_win(p, activated_at.0, to.0)).collect();
    let count = |v: &[&Labelled]| v.iter().filter(|p| p.harmful_unreviewed()).count() as u64;
    let cfg = DriftConfig { min_reference_trials: MIN_TRIALS, min_expected: 1.0, ..DriftConfig::default() };
    let test =
        crate::drift::rate_test(count(&before), before.len() as u64, count(&after), after.len() as u64, true, &cfg);
    let status = if test.trials < MIN_TRIALS || test.reference_trials < MIN_TRIALS {
        RecurrenceStatus::NotEnoughData
    } else if test.p_value < ALPHA && test.rate < test.reference_rate {
        RecurrenceStatus::Reduced
    } else if test.p_value < ALPHA {
        RecurrenceStatus::Worse
    } else {
        RecurrenceStatus::Unchanged
    };
    let pct = |r: f64| format!("{:.1}%", 100.0 * r);
    let summary = match status {
        RecurrenceStatus::NotEnoughData => format!(
            "not enough data yet: {} labelled decision(s) since activation, {} before; {MIN_TRIALS} needed on each side",
            test.trials, test.reference_trials
        ),
        _ => format!(
            "wrong actions that ran unreviewed: {} of {} ({}) before, {} of {} ({}) after (p = {:.1e}){}",
            test.reference_events,
            test.reference_trials,
            pct(test.reference_rate),
            test.events,
            test.trials,
            pct(test.rate),
            test.p_value,
            match status {
                RecurrenceStatus::Reduced => ": reduced",
                RecurrenceStatus::Worse => ": worse",
                _ => ": no significant change",
            }
        ),
    };
    Recurrence {
        policy_version: policy_version.to_string(),
        activated_at,
        actions,
        window_ms: len,
        test,
        status,
        summary,
    }
}
