//! Guards against a runaway agent: a token bucket per key on proposals, and
//! alarms raised once per episode (not once per refused request, so a looping
//! agent cannot flood the audit log).

use arbiter_core::rate::{RateLimit, TokenBucket};
use arbiter_core::{Principal, Role, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a quiet spell ends an episode: the next refusal raises a new alarm.
pub const EPISODE_GAP_MS: i64 = 10 * 60 * 1000;

/// Per-key token buckets (per replica: N replicas allow up to N times the rate).
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimiter {
    /// The limit that applies to `who`: its key's own, or its role's.
    pub fn limit_for(who: &Principal, rates: &crate::RoleRates) -> RateLimit {
        who.rate_limit.unwrap_or(match who.role {
            Role::Admin => rates.admin,
            _ => rates.agent,
        })
    }

    /// Take one proposal's token for `who` at `now`, or the milliseconds until one is free.
    pub fn take(&self, who: &Principal, limit: RateLimit, now: Timestamp) -> Result<(), u64> {
        if limit == RateLimit::Unlimited {
            return Ok(());
        }
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.entry(who.key_id.clone()).or_insert_with(|| TokenBucket::full(limit, now)).take(limit, now)
    }
}

/// Remembers when each subject last raised an alarm of one kind, so an
/// alarm is raised when an episode starts, not for every refusal in it.
#[derive(Default)]
pub struct Episodes {
    last: Mutex<HashMap<String, Timestamp>>,
}

impl Episodes {
    /// Note an occurrence for `subject` at `now`; true when it starts a new episode.
    pub fn starts(&self, subject: &str, now: Timestamp) -> bool {
        let mut map = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let new = map.get(subject).is_none_or(|t| now.0 - t.0 >= EPISODE_GAP_MS);
        map.insert(subject.to_string(), now);
        new
    }
}
