//! Learning: lessons, search, what a
//! reviewer sees beside a case, guidance for agents, datasets, and standing-rule
//! suggestions.

use arbiter_core::Timestamp;
use arbiter_core::audit::Event;
use arbiter_core::insight::{BlastRadius, SimilarCase, SimilarLesson};
use arbiter_core::lesson::{GuidanceItem, Lesson};
use arbiter_core::policy_version::PolicyVersionSummary;
use arbiter_core::recurrence::Recurrence;
use arbiter_core::search::{SearchHit, SearchKind};
use arbiter_core::suggest::Suggestion;
use serde::{Deserialize, Serialize};

/// A lesson with its history and whether the failure stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LessonView {
    /// The lesson.
    pub lesson: Lesson,
    /// Its `lesson.created` / `lesson.updated` events, oldest first.
    pub history: Vec<Event>,
    /// For each policy version its interventions link that went live: the
    /// failure's rate before and after.
    pub recurrence: Vec<Recurrence>,
    /// Its policy changes the active policy no longer enforces, and the
    /// active version that undid them (empty while every one holds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undone: Vec<UndoneBy>,
}

/// A lesson's policy change the active version undid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoneBy {
    /// The version the lesson's intervention made.
    pub policy_version: String,
    /// The active version that removes or weakens it.
    pub undone_by: String,
    /// What it removes or weakens.
    pub changes: Vec<String>,
}

/// Query of `GET /v1/lessons`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LessonListQuery {
    /// Only lessons about this action class.
    pub action: Option<String>,
    /// Only published lessons.
    pub published: Option<bool>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The body of `POST /v1/lessons`: the lesson of a review that closed before
/// lessons existed (closing a review creates its lesson by itself).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLesson {
    /// A closed review case without a lesson.
    pub review_id: String,
}

/// Query of `GET /v1/search`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The words to find (all of them; the last may be a prefix).
    pub q: String,
    /// `lesson`, `review` or `decision`.
    pub kind: Option<SearchKind>,
    /// Only about this action class.
    pub action: Option<String>,
    /// Only about this agent.
    pub agent: Option<String>,
    /// Only with this failure mode.
    pub failure_mode: Option<String>,
    /// From this time on (RFC 3339).
    pub since: Option<Timestamp>,
    /// Before this time (RFC 3339).
    pub until: Option<Timestamp>,
    /// At most this many hits (default 20, at most 200).
    pub limit: Option<usize>,
}

/// The answer to `GET /v1/search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResults {
    /// Hits, best first.
    pub hits: Vec<SearchHit>,
}

/// What a reviewer sees beside an approval case (`GET /v1/cases/{id}/insights`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseInsights {
    /// The most similar past cases and how they ended.
    pub similar_cases: Vec<SimilarCase>,
    /// The most similar lessons.
    pub similar_lessons: Vec<SimilarLesson>,
    /// How far the action reaches.
    pub blast_radius: BlastRadius,
}

/// Query of `GET /v1/guidance`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuidanceQuery {
    /// Only this action class (and lessons about every class).
    pub action: Option<String>,
    /// `json` (default) or `text` (ready for a system prompt).
    pub format: Option<String>,
}

/// The answer to `GET /v1/guidance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Guidance {
    /// The action class asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The lines, grouped by action class.
    pub items: Vec<GuidanceItem>,
    /// The same as text for a system prompt.
    pub prompt: String,
}

/// Query of `GET /v1/datasets/reviewed`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetQuery {
    /// `examples` (input and label fields, default) or `chat` (OpenAI fine-tuning).
    pub format: Option<String>,
    /// Only this action class.
    pub action: Option<String>,
    /// Decisions from this time on (RFC 3339).
    pub since: Option<Timestamp>,
    /// At most this many (default 10,000, at most 100,000).
    pub limit: Option<usize>,
}

/// Query of `GET /v1/suggestions`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestionQuery {
    /// Also accepted, dismissed and expired ones.
    pub all: Option<bool>,
}

/// The answer to `GET /v1/suggestions` and `POST /v1/suggestions/refresh`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuggestionList {
    /// Suggestions, newest first.
    pub suggestions: Vec<Suggestion>,
}

/// The body of `POST /v1/suggestions/refresh`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshSuggestions {
    /// Days of review history to mine (default 30).
    #[serde(default)]
    pub days: Option<u32>,
    /// Times a situation must have been answered the same way (default 20).
    #[serde(default)]
    pub min_support: Option<u64>,
}

/// The answer to `POST /v1/suggestions/{id}/accept`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcceptedSuggestion {
    /// The suggestion, now accepted.
    pub suggestion: Suggestion,
    /// The draft policy version carrying it (activate it with `POST /v1/policy/versions/{hash}/activate`).
    pub draft: PolicyVersionSummary,
}
