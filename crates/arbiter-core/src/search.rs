//! Full-text search over lessons, review cases and reviewed decisions: the
//! query, its filters and its hits. Backends index the same documents
//! ([`Document`]) and read the query the same way ([`terms`]): every word
//! must occur (in any form the backend's stemmer-free tokenizer matches),
//! the last word may be a prefix.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

wire_names!(SearchKind { Lesson => "lesson", Review => "review", Decision => "decision" });

/// What a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchKind {
    /// A lesson.
    Lesson,
    /// A review case.
    Review,
    /// A decision people answered (its rationale).
    Decision,
}

/// A search.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchQuery {
    /// The words to find.
    pub q: String,
    /// Only this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<SearchKind>,
    /// Only documents about this action class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only documents about this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Only documents with this failure mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<String>,
    /// Only documents from this time on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Only documents before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// At most this many hits.
    pub limit: usize,
}

/// A document as backends index it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// What it is.
    pub kind: SearchKind,
    /// Its id (lesson, case or decision id).
    pub id: String,
    /// A title.
    pub title: String,
    /// The searchable text.
    pub body: String,
    /// Action classes it is about.
    pub actions: Vec<String>,
    /// Agents it is about.
    pub agents: Vec<String>,
    /// Failure modes.
    pub failure_modes: Vec<String>,
    /// When it happened (last change).
    pub at: Timestamp,
}

/// One hit, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// What it is.
    pub kind: SearchKind,
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The matching part of its text.
    pub snippet: String,
    /// Action classes it is about.
    pub actions: Vec<String>,
    /// Agents it is about.
    pub agents: Vec<String>,
    /// Failure modes.
    pub failure_modes: Vec<String>,
    /// When.
    pub at: Timestamp,
}

/// The words of a query (letters, digits and `_`), lowercased, at most 16;
/// empty when there is nothing to search for.
pub fn terms(q: &str) -> Vec<String> {
    q.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .take(16)
        .collect()
}
