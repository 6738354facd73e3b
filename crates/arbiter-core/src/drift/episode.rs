//! Alarm episodes: the life of one alarm, from the first evaluation that
//! raises it to the last, with one review case.
//!
//! An episode is keyed by class, kind and direction. It **starts** when a
//! test alarms with no episode of its key open, is **updated** each time its
//! evidence (the CUSUM statistic) has doubled since it was last recorded, and
//! **ends** once its test has been quiet for `episode_quiet_ms` (alarms that
//! flap within that time stay one episode). People **acknowledge** it with a
//! reason, may **snooze** it (it stays open, without ending, until the snooze
//! runs out) and, after an intervention, **restart the reference** of its
//! class at the intervention's activation: the episode ends, and from then on
//! only decisions after the restart are the class's baseline, so the shift
//! that was dealt with is not detected again. Pure: the server stores the
//! episodes, records each change as an event and opens each new episode's case.

use super::AlarmKind;
use super::sequential::{Direction, SequentialTest};
use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// One person's acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why, in their words.
    pub reason: String,
    /// Snoozed until, if they snoozed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<Timestamp>,
    /// The reference restarted here, if they restarted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_restarted_at: Option<Timestamp>,
}

/// One alarm episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Id.
    pub id: String,
    /// Action class.
    pub action: String,
    /// What moved.
    pub kind: AlarmKind,
    /// Which way.
    pub direction: Direction,
    /// The evaluation that first raised it.
    pub started_at: Timestamp,
    /// The last recorded change.
    pub updated_at: Timestamp,
    /// When it ended (open while none).
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Its review case, once the server has opened it.
    pub case_id: Option<String>,
    /// The test as last recorded (at the start or the latest update).
    pub test: SequentialTest,
    /// The highest statistic seen.
    pub peak_statistic: f64,
    /// Since when its test has been quiet, while it is.
    pub quiet_since: Option<Timestamp>,
    /// Acknowledgements, oldest first.
    pub acknowledgements: Vec<Acknowledgement>,
    /// Open at least until then, whatever its test says.
    pub snoozed_until: Option<Timestamp>,
    /// The class's reference restarted here (set by an acknowledgement).
    pub reference_restarted_at: Option<Timestamp>,
    /// Bumped on every save (optimistic concurrency between the monitor and people).
    pub version: u64,
}

impl Episode {
    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.ended_at.is_none()
    }

    fn key(&self) -> (&str, AlarmKind, Direction) {
        (&self.action, self.kind, self.direction)
    }
}

/// What an evaluation changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new episode (open its case, record `drift.episode.started`).
    Started(Episode),
    /// Its evidence doubled (record `drift.episode.updated`).
    Updated(Episode),
    /// Its test went quiet or spoke again (save it; nothing to record).
    Touched(Episode),
    /// Quiet long enough (record `drift.episode.ended`).
    Ended(Episode),
}

impl Change {
    /// The episode as changed.
    pub fn episode(&self) -> &Episode {
        match self {
            Change::Started(e) | Change::Updated(e) | Change::Touched(e) | Change::Ended(e) => e,
        }
    }

    /// The audit event to record, if any.
    pub fn event_kind(&self) -> Option<&'static str> {
        match self {
            Change::Started(_) => Some("drift.episode.started"),
            Change::Updated(_) => Some("drift.episode.updated"),
            Change::Touched(_) => None,
            Change::Ended(_) => Some("drift.episode.ended"),
        }
    }
}

/// The changes one evaluation (`tests`, at `now`) makes to the `open` episodes.
pub fn step(
    open: &[Episode],
    tests: &[SequentialTest],
    now: Timestamp,
    quiet_ms: i64,
    mut new_id: impl FnMut() -> String,
) -> Vec<Change> {
    let mut out = Vec::new();
    for e in open.iter().filter(|e| e.is_open()) {
        let test = tests.iter().find(|t| (t.action.as_str(), t.kind, t.direction) == e.key());
        let mut next = e.clone();
        match test {
            Some(t) if t.alarm => {
                next.peak_statistic = next.peak_statistic.max(t.statistic);
                let quiet_ended = next.quiet_since.take().is_some();
                if t.statistic >= 2.0 * e.test.statistic {
                    next.test = t.clone();
                    next.updated_at = now;
                    out.push(Change::Updated(next));
                } else if quiet_ended || next.peak_statistic > e.peak_statistic {
                    out.push(Change::Touched(next));
                }
            }
            _ => {
                let since = *next.quiet_since.get_or_insert(now);
                let snoozed = e.snoozed_until.is_some_and(|s| s > now);
                if now.0 - since.0 >= quiet_ms && !snoozed {
                    next.ended_at = Some(now);
                    next.updated_at = now;
                    next.end_reason = Some(format!("its test has been quiet since {since}"));
                    out.push(Change::Ended(next));
                } else if e.quiet_since.is_none() {
                    out.push(Change::Touched(next));
                }
            }
        }
    }
    for t in tests.iter().filter(|t| t.alarm) {
        if open.iter().any(|e| e.is_open() && (t.action.as_str(), t.kind, t.direction) == e.key()) {
            continue;
        }
        out.push(Change::Started(Episode {
            id: new_id(),
            action: t.action.clone(),
            kind: t.kind,
            direction: t.direction,
            started_at: now,
            updated_at: now,
            ended_at: None,
            end_reason: None,
            case_id: None,
            test: t.clone(),
            peak_statistic: t.statistic,
            quiet_since: None,
            acknowledgements: Vec::new(),
            snoozed_until: None,
            reference_restarted_at: None,
            version: 0,
        }));
    }
    out
}

/// The open episodes after `changed` was saved: it replaces its old self, and leaves once it ended.
pub fn apply(open: &mut Vec<Episode>, changed: Episode) {
    open.retain(|o| o.id != changed.id);
    if changed.is_open() {
        open.push(changed);
    }
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AcknowledgeError {
    /// Episodes that ended take no acknowledgements.
    #[error("drift episode {0} ended at {1}; only an open episode can be acknowledged")]
    Ended(String, Timestamp),
    /// A reason is required.
    #[error("an acknowledgement needs a reason (what you know, what you did)")]
    NoReason,
    /// A restart in the future, or before the episode's data.
    #[error("the reference can restart at a time between {earliest} and now ({now}), not at {asked}")]
    RestartOutOfRange {
        /// The time asked for.
        asked: Timestamp,
        /// The earliest allowed (the start of the test's monitored span).
        earliest: Timestamp,
        /// Now.
        now: Timestamp,
    },
}

/// What a person asks: a reason, optionally a snooze and a reference restart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Acknowledge {
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Keep it open (and its class and kind without a new case) this long.
    pub snooze_ms: Option<i64>,
    /// The intervention activated here: restart the class's reference.
    pub restart_at: Option<Timestamp>,
}

/// Apply an acknowledgement at `now`: the episode as it becomes (ended when the reference restarts).
pub fn acknowledge(e: &Episode, ack: Acknowledge, now: Timestamp) -> Result<Episode, AcknowledgeError> {
    if let Some(ended) = e.ended_at {
        return Err(AcknowledgeError::Ended(e.id.clone(), ended));
    }
    let reason = ack.reason.trim().to_string();
    if reason.is_empty() {
        return Err(AcknowledgeError::NoReason);
    }
    if let Some(at) = ack.restart_at
        && (at > now || at < e.test.since)
    {
        return Err(AcknowledgeError::RestartOutOfRange { asked: at, earliest: e.test.since, now });
    }
    let mut next = e.clone();
    let snoozed_until = ack.snooze_ms.map(|ms| now.plus_millis(ms));
    if snoozed_until.is_some() {
        next.snoozed_until = snoozed_until;
    }
    next.acknowledgements.push(Acknowledgement {
        by: ack.by,
        at: now,
        reason: reason.clone(),
        snoozed_until,
        reference_restarted_at: ack.restart_at,
    });
    next.updated_at = now;
    if let Some(at) = ack.restart_at {
        next.reference_restarted_at = Some(at);
        next.ended_at = Some(now);
        next.end_reason =
            Some(format!("the reference of `{}` restarted at {at} after an intervention: {reason}", e.action));
    }
    Ok(next)
}

/// Per class, the latest reference restart among `episodes`.
pub fn restarts(episodes: &[Episode]) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for e in episodes {
        if let Some(r) = e.reference_restarted_at {
            let slot = out.entry(e.action.clone()).or_insert(r.0);
            *slot = (*slot).max(r.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::sequential::Baseline;

    const H: i64 = 3_600_000;

    fn test(statistic: f64) -> SequentialTest {
        SequentialTest {
            action: "isolate_host".into(),
            kind: AlarmKind::Share,
            direction: Direction::Up,
            test: "bernoulli_cusum".into(),
            event: "the decision is `isolate_host`".into(),
            baseline: Baseline {
                kind: "same_hour".into(),
                from: Timestamp(0),
                to: Timestamp(7 * 24 * H),
                restarted_at: None,
                description: "the same hour of day".into(),
            },
            baseline_rate: 0.05,
            null_rate: 0.052,
            alternative_rate: 0.075,
            since: Timestamp(7 * 24 * H),
            trials: 1000,
            events: 100,
            expected_events: 50.0,
            statistic,
            threshold: 10.0,
            p_value: 1e-3,
            false_alarms_per_week: 0.01,
            alarm: statistic >= 10.0,
        }
    }

    /// Runs evaluations at the given hours with the given statistics; returns the changes' kinds per step and the episodes.
    fn run(steps: &[(i64, f64)], open: &mut Vec<Episode>) -> Vec<Vec<&'static str>> {
        let mut n = open.len();
        steps
            .iter()
            .map(|&(hour, s)| {
                let changes = step(open, &[test(s)], Timestamp(8 * 24 * H + hour * H / 4), 2 * H, || {
                    n += 1;
                    format!("e{n}")
                });
                let mut kinds = Vec::new();
                for c in changes {
                    kinds.push(match &c {
                        Change::Started(_) => "started",
                        Change::Updated(_) => "updated",
                        Change::Touched(_) => "touched",
                        Change::Ended(_) => "ended",
                    });
                    let e = c.episode().clone();
                    open.retain(|o| o.id != e.id);
                    open.push(e); // ended ones too: the test looks at them
                }
                kinds
            })
            .collect()
    }

    #[test]
    fn an_alarm_that_continues_is_one_episode_recorded_at_start_doublings_and_end() {
        let mut eps = Vec::new();
        // quarter-hour steps: alarm, stays, doubles, flaps below for 30 min, back, then quiet for 2 h
        let steps =
            [(0, 12.0), (1, 15.0), (2, 24.0), (3, 3.0), (4, 5.0), (5, 30.0), (6, 2.0), (7, 1.0), (14, 0.0), (15, 0.0)];
        let kinds = run(&steps, &mut eps);
        assert_eq!(kinds[0], ["started"]);
        assert_eq!(kinds[1], ["touched"], "a higher peak is saved, not recorded");
        assert_eq!(kinds[2], ["updated"], "the evidence doubled");
        assert_eq!(kinds[3], ["touched"], "quiet since");
        assert!(kinds[4].is_empty());
        assert_eq!(kinds[5], ["touched"], "back in alarm within the quiet time: the same episode");
        assert_eq!(kinds[6], ["touched"]);
        assert!(kinds[7].is_empty());
        assert_eq!(kinds[8], ["ended"], "quiet for 2 h");
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].ended_at, Some(Timestamp(8 * 24 * H + 14 * H / 4)));
        assert!(eps[0].end_reason.as_deref().unwrap().starts_with("its test has been quiet since"));
        assert_eq!(eps[0].peak_statistic, 30.0);
        // the same alarm later is a new episode
        assert!(kinds[9].is_empty());
        let again = run(&[(20, 11.0)], &mut eps);
        assert_eq!(again[0], ["started"]);
        assert_eq!(eps.iter().filter(|e| e.is_open()).count(), 1);
    }

    #[test]
    fn acknowledgements_snooze_and_restart() {
        let mut eps = Vec::new();
        run(&[(0, 12.0)], &mut eps);
        let now = Timestamp(8 * 24 * H + H);
        let e = eps[0].clone();
        assert_eq!(
            acknowledge(&e, Acknowledge { by: "pat".into(), ..Default::default() }, now),
            Err(AcknowledgeError::NoReason)
        );
        // snooze for 6 h: it stays open through a quiet spell
        let snoozed = acknowledge(
            &e,
            Acknowledge {
                by: "pat".into(),
                reason: "night scanners, known".into(),
                snooze_ms: Some(6 * H),
                restart_at: None,
            },
            now,
        )
        .unwrap();
        assert_eq!(snoozed.snoozed_until, Some(now.plus_millis(6 * H)));
        assert_eq!(snoozed.acknowledgements.len(), 1);
        let mut eps = vec![snoozed];
        let kinds = run(&[(8, 0.0), (20, 0.0), (30, 0.0)], &mut eps);
        assert_eq!(kinds, [vec!["touched"], vec![], vec!["ended"]], "ends once the snooze is over");
        // a restart ends it and names the restart
        let mut eps = Vec::new();
        run(&[(0, 12.0)], &mut eps);
        let e = eps[0].clone();
        let too_early = Timestamp(e.test.since.0 - 1);
        let refused = acknowledge(
            &e,
            Acknowledge { by: "pat".into(), reason: "fixed".into(), snooze_ms: None, restart_at: Some(too_early) },
            now,
        );
        assert!(matches!(refused, Err(AcknowledgeError::RestartOutOfRange { .. })));
        let at = Timestamp(now.0 - H / 2);
        let restarted = acknowledge(
            &e,
            Acknowledge {
                by: "pat".into(),
                reason: "prompt v7 activated".into(),
                snooze_ms: None,
                restart_at: Some(at),
            },
            now,
        )
        .unwrap();
        assert_eq!(restarted.ended_at, Some(now));
        assert!(restarted.end_reason.as_deref().unwrap().contains("prompt v7 activated"));
        assert_eq!(restarts(std::slice::from_ref(&restarted)).get("isolate_host"), Some(&at.0));
        assert!(matches!(
            acknowledge(&restarted, Acknowledge { reason: "x".into(), ..Default::default() }, now),
            Err(AcknowledgeError::Ended(..))
        ));
    }
}
