//! Cases: work for people.

use serde::{Deserialize, Serialize};

/// Why a case exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// An agent is waiting for a person's answer.
    Approval,
    /// A failure or anomaly to analyse.
    Review,
}

/// Where a case is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Waiting in the queue.
    Open,
    /// A reviewer holds a lease on it.
    Claimed,
    /// Answered; the agent has its final verdict.
    Decided,
    /// Finished without further work (e.g. a closed review).
    Closed,
}

impl CaseState {
    /// The lowercase name used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Claimed => "claimed",
            CaseState::Decided => "decided",
            CaseState::Closed => "closed",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => CaseState::Open,
            "claimed" => CaseState::Claimed,
            "decided" => CaseState::Decided,
            "closed" => CaseState::Closed,
            _ => return None,
        })
    }
}

impl CaseKind {
    /// The lowercase name used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Approval => "approval",
            CaseKind::Review => "review",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approval" => CaseKind::Approval,
            "review" => CaseKind::Review,
            _ => return None,
        })
    }
}
