//! The approval queue: which cases a reviewer may answer, most urgent first,
//! with the reasons for each position.
//!
//! The order (documented in `docs/review.md`) compares, in turn:
//! 1. **due soon**: cases whose current tier ends within [`DUE_SOON_MS`] (or
//!    already ended) come before all others, so no case breaches its SLA while
//!    a reviewer works on calmer ones;
//! 2. **severity**: critical, high, medium, low;
//! 3. **time left** on the current tier: less first;
//! 4. **agent uncertainty**: lower confidence first (no confidence counts as 0);
//! 5. **age**: older first; then the case id, so the order is total.

use crate::case::{Case, CaseKind};
use crate::duration::human_ms;
use crate::time::Timestamp;
use crate::verdict::Severity;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A case ending its tier within this many milliseconds jumps ahead (5 minutes).
pub const DUE_SOON_MS: i64 = 5 * 60 * 1000;

/// One line of the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    /// 1-based position.
    pub position: usize,
    /// Milliseconds until the current tier's time runs out (negative: overdue).
    pub sla_left_ms: i64,
    /// Why it is where it is, most significant first.
    pub reasons: Vec<String>,
    /// The case.
    pub case: Case,
}

fn key(c: &Case, now: Timestamp) -> (bool, std::cmp::Reverse<Severity>, i64, u64, Timestamp) {
    let left = c.sla_deadline.0 - now.0;
    // Confidence as an integer so the key is totally ordered (NaN cannot reach here; see Action::validate).
    let conf = (c.confidence.unwrap_or(0.0).clamp(0.0, 1.0) * 1e9) as u64;
    (left > DUE_SOON_MS, std::cmp::Reverse(c.escalation.severity), left, conf, c.created_at)
}

/// Compare two cases by urgency at `now` (smaller is more urgent).
pub fn compare(a: &Case, b: &Case, now: Timestamp) -> Ordering {
    key(a, now).cmp(&key(b, now)).then_with(|| a.id.cmp(&b.id))
}

/// Whether a reviewer with `tags` (named `name`, key `key_id`) sees `case` in
/// their queue at `now`: an active approval case whose current tier names one
/// of their tags (admins see all), not proposed by their own agent, and not
/// held by someone else.
pub fn visible_to(
    case: &Case,
    name: &str,
    key_id: &str,
    tags: &BTreeSet<String>,
    is_admin: bool,
    now: Timestamp,
) -> bool {
    case.kind == CaseKind::Approval
        && case.is_active()
        && case.agent != name
        && (is_admin || !case.current_reviewers().is_disjoint(tags))
        && case.held_at(now).is_none_or(|c| c.key_id == key_id)
        && !case.has_answered(name, key_id)
}

/// Order `cases` by urgency at `now` and explain each position.
pub fn order(cases: Vec<Case>, now: Timestamp) -> Vec<QueueItem> {
    top(cases.iter(), now, usize::MAX).1
}

/// The `limit` most urgent of `cases` at `now`, explained, and how many there were in all.
pub fn top<'a>(cases: impl Iterator<Item = &'a Case>, now: Timestamp, limit: usize) -> (usize, Vec<QueueItem>) {
    let mut refs: Vec<&Case> = cases.collect();
    let total = refs.len();
    refs.sort_by(|a, b| compare(a, b, now));
    refs.truncate(limit);
    let items = refs
        .into_iter()
        .cloned()
        .enumerate()
        .map(|(i, case)| {
            let left = case.sla_deadline.0 - now.0;
            let mut reasons = Vec::with_capacity(5);
            if left <= 0 {
                reasons.push(format!("SLA overdue by {}", human_ms(left)));
            } else if left <= DUE_SOON_MS {
                reasons.push(format!("due soon: {} left on the SLA", human_ms(left)));
            }
            reasons.push(format!("severity {}", case.escalation.severity));
            if left > DUE_SOON_MS {
                reasons.push(format!("{} left on the SLA", human_ms(left)));
            }
            reasons.push(match case.confidence {
                Some(c) => format!("agent confidence {c:.2}"),
                None => "agent gave no confidence".into(),
            });
            reasons.push(format!("waiting {}", human_ms(now.0 - case.created_at.0)));
            if case.tier > 0 {
                reasons.push(format!("escalated to tier {}", case.tier + 1));
            }
            QueueItem { position: i + 1, sla_left_ms: left, reasons, case }
        })
        .collect();
    (total, items)
}
