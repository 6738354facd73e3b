//! The filters `cases history` and `reviews list` share: the query of
//! `GET /v1/cases`, a page at a time.

use crate::client::Api;
use anyhow::Result;
use arbiter_core::Case;
use clap::Args;

/// What to find among past cases.
#[derive(Debug, Clone, Default, Args)]
pub struct CaseFilters {
    /// Proposed by this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// Of this action class, e.g. isolate_host.
    #[arg(long)]
    pub action: Option<String>,
    /// Acting on this subject, e.g. host:ws-0042.
    #[arg(long)]
    pub subject: Option<String>,
    /// Ended allow or deny.
    #[arg(long)]
    pub verdict: Option<String>,
    /// Settled by review, sla_expired, agent_case_cap or withdrawn.
    #[arg(long)]
    pub source: Option<String>,
    /// Answered (or, for reviews, written in) by this person.
    #[arg(long)]
    pub reviewer: Option<String>,
    /// With this failure mode in an answer or a finding.
    #[arg(long)]
    pub failure_mode: Option<String>,
    /// Changed at or after this time (RFC 3339, or a day such as 2026-11-26).
    #[arg(long)]
    pub since: Option<String>,
    /// Changed before this time (RFC 3339, or a day).
    #[arg(long)]
    pub until: Option<String>,
    /// Words in rationales, comments and stage entries (`word*` for a prefix).
    #[arg(long, short)]
    pub query: Option<String>,
    /// At most this many (default 50, at most 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The page after this cursor (printed under the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
}

fn day_or_time(v: &str) -> String {
    if v.len() == 10 { format!("{v}T00:00:00Z") } else { v.to_string() }
}

/// Percent-encode a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl CaseFilters {
    /// The query string of `GET /v1/cases` for these filters, a kind and states.
    pub fn query(&self, kind: &str, state: &str) -> String {
        let mut q = vec![format!("kind={kind}"), format!("state={}", encode(state)), format!("limit={}", self.limit)];
        let since = self.since.as_deref().map(day_or_time);
        let until = self.until.as_deref().map(day_or_time);
        for (k, v) in [
            ("agent", self.agent.as_deref()),
            ("action", self.action.as_deref()),
            ("subject", self.subject.as_deref()),
            ("verdict", self.verdict.as_deref()),
            ("source", self.source.as_deref()),
            ("reviewer", self.reviewer.as_deref()),
            ("failure_mode", self.failure_mode.as_deref()),
            ("since", since.as_deref()),
            ("until", until.as_deref()),
            ("q", self.query.as_deref()),
            ("cursor", self.cursor.as_deref()),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", encode(v)));
            }
        }
        q.join("&")
    }

    /// One page of matching cases and the cursor of the next.
    pub fn fetch(&self, api: &Api, kind: &str, state: &str) -> Result<(Vec<Case>, Option<String>)> {
        api.get_page(&format!("/v1/cases?{}", self.query(kind, state)))
    }
}

/// Under a table: how to get the next page.
pub fn print_next(command: &str, next: Option<&str>) {
    if let Some(c) = next {
        println!("more: {command} ... --cursor {c}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_an_encoded_query() {
        let f = CaseFilters {
            subject: Some("host:ws-1".into()),
            since: Some("2026-11-01".into()),
            query: Some("backup agent".into()),
            limit: 20,
            ..Default::default()
        };
        assert_eq!(
            f.query("approval", "decided"),
            "kind=approval&state=decided&limit=20&subject=host%3Aws-1&since=2026-11-01T00%3A00%3A00Z&q=backup%20agent"
        );
    }
}
