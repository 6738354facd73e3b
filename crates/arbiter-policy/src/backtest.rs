//! Backtests: replay labelled history through a policy (and the current one
//! beside it) and count what would change.

use crate::Policy;
use crate::cel::Env;
use arbiter_core::Verdict;
use serde_json::Value;
use std::collections::BTreeMap;

/// One labelled decision to replay.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    /// Where it came from (decision id or `line N`), for examples.
    pub id: &'a str,
    /// Action class.
    pub name: &'a str,
    /// The agent's confidence, if it gave one.
    pub confidence: Option<f64>,
    /// Tool arguments (empty object when the history has none).
    pub args: &'a Value,
    /// The action's other signals (an object).
    pub signals: &'a Value,
    /// The context the agent attached (an object).
    pub context: &'a Value,
    /// `{name, key_id}` of the agent.
    pub agent: &'a Value,
    /// Whether the action was right.
    pub correct: bool,
}

impl<'a> Replay<'a> {
    /// What the policy sees of this decision.
    pub fn env(&self) -> Env<'a> {
        Env {
            name: self.name,
            args: self.args,
            confidence: self.confidence,
            signals: self.signals,
            context: self.context,
            agent: self.agent,
            trace_id: None,
        }
    }

    /// Call `f` with the replay of a stored decision (its arguments, signals
    /// and context included; a decision without an outcome counts as right).
    pub fn of_decision<T>(d: &arbiter_core::Decision, f: impl FnOnce(&Replay<'_>) -> T) -> T {
        let agent = crate::cel::agent_value(&d.agent, &d.agent_key_id);
        f(&Replay {
            id: &d.id,
            name: &d.action.name,
            confidence: d.action.confidence,
            args: &d.action.args,
            signals: &d.action.signals,
            context: &d.context,
            agent: &agent,
            correct: d.outcome.as_ref().is_none_or(|o| o.correct),
        })
    }
}

pub use arbiter_api::backtest::{BacktestReport, PolicyStats, VerdictChange};

/// Count one replayed verdict into `stats`.
fn add(stats: &mut PolicyStats, v: Verdict, correct: bool, condition_errors: usize) {
    stats.decisions += 1;
    stats.condition_errors += condition_errors as u64;
    match v {
        Verdict::Allow => {
            stats.allowed += 1;
            if !correct {
                stats.errors_missed += 1;
            }
        }
        Verdict::Escalate => {
            stats.escalated += 1;
            if !correct {
                stats.errors_caught += 1;
            }
        }
        Verdict::Deny => {
            stats.denied += 1;
            if correct {
                stats.right_denied += 1;
            } else {
                stats.errors_caught += 1;
            }
        }
    }
}

/// The rates, once every verdict is counted.
fn finish_stats(stats: &mut PolicyStats) {
    stats.escalation_rate = stats.escalated as f64 / stats.decisions.max(1) as f64;
    stats.auto_error_rate = stats.errors_missed as f64 / stats.allowed.max(1) as f64;
}

/// A backtest in progress: feed it replays, then [`Backtest::finish`].
pub struct Backtest<'p> {
    new: &'p Policy,
    current: Option<&'p Policy>,
    new_stats: PolicyStats,
    cur_stats: PolicyStats,
    changes: BTreeMap<(Verdict, Verdict), VerdictChange>,
}

impl<'p> Backtest<'p> {
    /// Start a backtest of `new`, compared with `current` if given.
    pub fn new(new: &'p Policy, current: Option<&'p Policy>) -> Backtest<'p> {
        let stats = |p: &Policy| PolicyStats {
            policy: p.name().to_string(),
            hash: p.hash().to_string(),
            ..PolicyStats::default()
        };
        Backtest {
            new,
            current,
            new_stats: stats(new),
            cur_stats: current.map(stats).unwrap_or_default(),
            changes: BTreeMap::new(),
        }
    }

    /// Replay one decision.
    pub fn add(&mut self, r: &Replay<'_>) {
        let env = r.env();
        let a = self.new.evaluate(&env);
        add(&mut self.new_stats, a.verdict, r.correct, a.condition_errors.len());
        if let Some(cur) = self.current {
            let b = cur.evaluate(&env);
            add(&mut self.cur_stats, b.verdict, r.correct, b.condition_errors.len());
            if a.verdict != b.verdict {
                let ch = self.changes.entry((b.verdict, a.verdict)).or_insert_with(|| VerdictChange {
                    from: b.verdict,
                    to: a.verdict,
                    count: 0,
                    wrong: 0,
                    examples: vec![],
                });
                ch.count += 1;
                ch.wrong += u64::from(!r.correct);
                if ch.examples.len() < 5 {
                    ch.examples.push(r.id.to_string());
                }
            }
        }
    }

    /// Replay a stored decision (its arguments, signals and context included;
    /// a decision without an outcome counts as right).
    pub fn add_decision(&mut self, d: &arbiter_core::Decision) {
        Replay::of_decision(d, |r| self.add(r));
    }

    /// The report.
    pub fn finish(mut self) -> BacktestReport {
        finish_stats(&mut self.new_stats);
        finish_stats(&mut self.cur_stats);
        let mut changes: Vec<VerdictChange> = self.changes.into_values().collect();
        changes.sort_by_key(|c| std::cmp::Reverse(c.count));
        BacktestReport {
            changed: changes.iter().map(|c| c.count).sum(),
            new: self.new_stats,
            current: self.current.map(|_| self.cur_stats),
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_and_changes() {
        let strict = Policy::parse("version: 1\npolicy: strict\nactions:\n  a:\n    auto_allow_at: 0.9\n").unwrap();
        let loose = Policy::parse("version: 1\npolicy: loose\nactions:\n  a:\n    auto_allow_at: 0.5\n").unwrap();
        let e = json!({});
        let mut bt = Backtest::new(&strict, Some(&loose));
        for (i, (c, ok)) in [(0.95, true), (0.7, false), (0.6, true), (0.3, false)].iter().enumerate() {
            let id = format!("line {}", i + 2);
            bt.add(&Replay {
                id: &id,
                name: "a",
                confidence: Some(*c),
                args: &e,
                signals: &e,
                context: &e,
                agent: &e,
                correct: *ok,
            });
        }
        let r = bt.finish();
        assert_eq!((r.new.allowed, r.new.escalated, r.new.errors_caught, r.new.errors_missed), (1, 3, 2, 0));
        let cur = r.current.unwrap();
        assert_eq!((cur.allowed, cur.escalated, cur.errors_missed), (3, 1, 1));
        assert_eq!(r.changed, 2);
        assert_eq!(r.changes[0].from, Verdict::Allow);
        assert_eq!(r.changes[0].to, Verdict::Escalate);
        assert_eq!(r.changes[0].wrong, 1);
        assert_eq!(r.changes[0].examples, ["line 3", "line 4"]);
        assert_eq!(r.new.escalation_rate, 0.75);
    }
}
