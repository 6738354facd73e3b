//! The audit log.

use arbiter_core::audit::AuditReport;
use serde::{Deserialize, Serialize};

/// The result of verifying the audit log.
#[derive(Debug, Serialize, Deserialize)]
pub struct Verification {
    /// True when the chain, every decision row and every case projection check out.
    pub ok: bool,
    /// What was checked, and the first problem found.
    #[serde(flatten)]
    pub report: AuditReport,
}

/// Query of `GET /v1/audit/verify`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// `SEQ:HASH` of an event recorded earlier (`arbiter audit anchor`): the chain must still extend it.
    pub anchor: Option<String>,
}

/// Query of `GET /v1/audit/events`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this sequence number (0 for the start).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<usize>,
}
