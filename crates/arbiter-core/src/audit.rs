//! The audit log's records: hash-chained events, chain heads (anchors) and
//! what verifying the log found.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One append-only audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The case it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// The decision it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// What happened, e.g. `case.opened`.
    pub kind: String,
    /// Who did it (key name, or `system`).
    pub actor: String,
    /// When it happened (the server's clock).
    pub at: Timestamp,
    /// The event's details; their shape depends on `kind` (see docs/api.md).
    pub data: serde_json::Value,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

impl Event {
    /// The hash this event should carry: SHA-256 over `prev_hash` and a
    /// canonical JSON encoding (sorted keys, no whitespace) of its own fields.
    pub fn compute_hash(&self) -> String {
        // serde_json's map is ordered by key, so this encoding is canonical.
        let body = serde_json::json!({
            "seq": self.seq, "case_id": self.case_id, "decision_id": self.decision_id,
            "kind": self.kind, "actor": self.actor, "at": self.at.millis(), "data": self.data,
        });
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(body.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}

/// A point in the chain: an event's sequence number and hash. Stored
/// elsewhere, it lets `audit verify --anchor` prove that no event up to it
/// was removed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Sequence number.
    pub seq: u64,
    /// Hash of that event.
    pub hash: String,
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for ChainHead {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s.split_once(':').ok_or_else(|| format!("expected SEQ:HASH, got `{s}`"))?;
        let seq = seq.parse().map_err(|_| format!("`{seq}` is not a sequence number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{hash}` is not a 64-digit hex hash"));
        }
        Ok(ChainHead { seq, hash: hash.to_ascii_lowercase() })
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Events whose hash and link were checked.
    pub events: u64,
    /// Decision rows checked against the chain.
    pub decisions: u64,
    /// Case rows checked against the replay of their events.
    pub cases: u64,
    /// The last event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<ChainHead>,
    /// The first problem, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<AuditProblem>,
    /// Every problem found, in the order checked (at most
    /// [`MAX_REPORTED_PROBLEMS`]): checking goes on past a problem, so one
    /// odd row cannot hide a forgery behind it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<AuditProblem>,
    /// How many problems were found in all (more than `problems` holds when
    /// past the bound).
    #[serde(default)]
    pub problems_found: u64,
}

/// Problems an audit report lists at most (it counts them all).
pub const MAX_REPORTED_PROBLEMS: usize = 100;

impl AuditReport {
    /// Record a problem and go on checking.
    pub fn note(&mut self, p: AuditProblem) {
        self.problems_found += 1;
        if self.problem.is_none() {
            self.problem = Some(p.clone());
        }
        if self.problems.len() < MAX_REPORTED_PROBLEMS {
            self.problems.push(p);
        }
    }

    /// Whether everything verified.
    pub fn ok(&self) -> bool {
        self.problems_found == 0 && self.problem.is_none()
    }
}

/// The first thing that does not verify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditProblem {
    /// An event's hash, link or sequence is wrong.
    Event {
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// A decision row differs from what the chain committed (or is missing from it).
    Decision {
        /// Its id.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// A case row differs from the replay of its events.
    Case {
        /// Its id.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// A lesson row differs from its last `lesson.*` event.
    Lesson {
        /// Its id.
        id: String,
        /// What is wrong.
        why: String,
    },
    /// The chain does not extend the given anchor.
    Anchor {
        /// What is wrong.
        why: String,
    },
}

impl std::fmt::Display for AuditProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditProblem::Event { seq, why } => write!(f, "event {seq} does not verify: {why}"),
            AuditProblem::Decision { id, why } => write!(f, "decision {id}: {why}"),
            AuditProblem::Case { id, why } => write!(f, "case {id}: {why}"),
            AuditProblem::Lesson { id, why } => write!(f, "lesson {id}: {why}"),
            AuditProblem::Anchor { why } => write!(f, "anchor: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(prev_hash: &str) -> Event {
        Event {
            seq: 7,
            case_id: Some("c-1".into()),
            decision_id: Some("d-1".into()),
            kind: "case.answered".into(),
            actor: "alice".into(),
            at: Timestamp(1_800_000_000_000),
            data: serde_json::json!({"verdict": "allow", "rationale": "checked"}),
            prev_hash: prev_hash.into(),
            hash: String::new(),
        }
    }

    /// The hash format is a contract with every verifier and every anchor
    /// ever taken: SHA-256 of `prev_hash`, a newline, and the sorted compact
    /// JSON of the event's own fields. These vectors were computed outside
    /// Rust (Python's hashlib and json with sorted keys).
    #[test]
    fn the_event_hash_format_is_pinned() {
        assert_eq!(
            event(GENESIS_HASH).compute_hash(),
            "6459c4b0d6be76ff75752bb5229ea9c2cbbd620c396cc781c1a3a0f3ed1a3598"
        );
        let other_prev = format!("1{}", &GENESIS_HASH[1..]);
        assert_eq!(
            event(&other_prev).compute_hash(),
            "b9a8dca8a647575d52875a5b2bfb91c42553f3a9941f502e293df768eacbf938",
            "changing only prev_hash changes the hash: each hash covers the chain before it"
        );
    }

    #[test]
    fn a_report_lists_every_problem_up_to_its_bound() {
        let mut r = AuditReport::default();
        assert!(r.ok());
        for i in 0..(MAX_REPORTED_PROBLEMS as u64 + 5) {
            r.note(AuditProblem::Event { seq: i, why: "x".into() });
        }
        assert_eq!((r.problems.len(), r.problems_found), (MAX_REPORTED_PROBLEMS, MAX_REPORTED_PROBLEMS as u64 + 5));
        assert_eq!(r.problem, Some(AuditProblem::Event { seq: 0, why: "x".into() }));
        assert!(!r.ok());
    }
}
