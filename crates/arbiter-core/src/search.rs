//! Full-text search over lessons, review cases and reviewed decisions: the
//! query, its filters and its hits. Backends index the same documents
//! ([`Document`]) and read the query the same way ([`terms`]): every word
//! must occur as a whole word (case and accents ignored, no stemming); a
//! word written with a trailing `*` matches every word it begins. Hits whose
//! title holds every word come first, then the rest, newest first within
//! each group.

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

/// One word of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The word, lowercased (letters, digits and `_`).
    pub word: String,
    /// Written with a trailing `*`: matches every word it begins.
    pub prefix: bool,
}

/// The words of a query, at most 16; empty when there is nothing to search
/// for. Anything but letters, digits, `_` and a `*` right after a word
/// separates words (so quotes and operators are never syntax).
pub fn terms(q: &str) -> Vec<Term> {
    let mut out: Vec<Term> = Vec::new();
    let mut word = String::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.extend(c.to_lowercase());
            if chars.peek().is_some_and(|n| n.is_alphanumeric() || *n == '_') {
                continue;
            }
            let prefix = chars.peek() == Some(&'*');
            out.push(Term { word: std::mem::take(&mut word), prefix });
            if out.len() == 16 {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_words_and_stars() {
        let t = terms(r#"VPN gate* "NEAR(x)" a:b -c"#);
        let words: Vec<(&str, bool)> = t.iter().map(|t| (t.word.as_str(), t.prefix)).collect();
        assert_eq!(
            words,
            [("vpn", false), ("gate", true), ("near", false), ("x", false), ("a", false), ("b", false), ("c", false)]
        );
        assert!(terms(" ,; * ").is_empty());
        assert_eq!(terms(&"w ".repeat(40)).len(), 16);
        assert_eq!(terms("Éclair")[0].word, "éclair");
    }
}
