//! The learning loop's rows: lessons (written with the review that closes),
//! the full-text index (`tsvector` + GIN) over lessons, review cases and
//! reviewed decisions, and rule suggestions.

use crate::audit::{append_event, load_events};
use crate::webhooks::queue_deliveries;
use crate::{Sql, Tx, col, corrupt, load_bodies, load_body};
use arbiter_core::Timestamp;
use arbiter_core::lesson::Lesson;
use arbiter_core::lesson::LessonPatch;
use arbiter_core::search::{Document, SearchHit, SearchKind, SearchQuery};
use arbiter_core::suggest::{Suggestion, SuggestionState};
use arbiter_store::writes;
use arbiter_store::{Event, LessonFilter, Result, StoreError};

/// The words of a text as search sees them: runs of letters, digits and
/// `_`, lowercased (the same split as a query's words), each once.
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().flat_map(char::to_lowercase).collect())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A query's words as a `tsquery` (every word required, `word*` a prefix);
/// `None` when there is no word. Words are letters, digits and `_` only, so
/// quoting each makes it a literal lexeme and never syntax.
pub(crate) fn tsquery(q: &str) -> Option<String> {
    let terms = arbiter_core::search::terms(q);
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|t| if t.prefix { format!("'{}':*", t.word) } else { format!("'{}'", t.word) })
            .collect::<Vec<_>>()
            .join(" & ")
    })
}

/// Up to 16 words of `body` around the first word that matches the query, with `…` where cut.
fn snippet(body: &str, q: &str) -> String {
    let terms = arbiter_core::search::terms(q);
    let mut spans = Vec::new();
    let mut start = None;
    for (i, ch) in body.char_indices().chain(std::iter::once((body.len(), ' '))) {
        let word_char = ch.is_alphanumeric() || ch == '_';
        match (start, word_char && i < body.len()) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if spans.is_empty() {
        return String::new();
    }
    let hit = spans
        .iter()
        .position(|&(s, e)| {
            let w: String = body[s..e].chars().flat_map(char::to_lowercase).collect();
            terms.iter().any(|t| if t.prefix { w.starts_with(&t.word) } else { w == t.word })
        })
        .unwrap_or(0);
    let from = hit.saturating_sub(4).min(spans.len().saturating_sub(16));
    let to = (from + 16).min(spans.len());
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    out.push_str(&body[spans[from].0..spans[to - 1].1]);
    if to < spans.len() {
        out.push('…');
    }
    out
}

/// Put `doc` in the index, replacing its earlier text.
pub(crate) fn index_document(t: &mut Tx<'_>, doc: &Document) -> Result<()> {
    let title_words = words(&doc.title);
    let all = words(&format!("{}\n{}", doc.title, doc.body));
    let p = t.project.clone();
    let n = t.execute(
        "INSERT INTO search_docs (kind, ref_id, title, body, actions, agents, failure_modes, at, title_words, words, project)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, array_to_tsvector($9::text[]), array_to_tsvector($10::text[]), $11)
         ON CONFLICT (kind, ref_id) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body,
             actions = EXCLUDED.actions, agents = EXCLUDED.agents, failure_modes = EXCLUDED.failure_modes,
             at = EXCLUDED.at, title_words = EXCLUDED.title_words, words = EXCLUDED.words
         WHERE search_docs.project = EXCLUDED.project",
        &[
            &doc.kind.as_str(),
            &doc.id,
            &doc.title,
            &doc.body,
            &doc.actions,
            &doc.agents,
            &doc.failure_modes,
            &doc.at.0,
            &title_words,
            &all,
            &&*p,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("search document {} belongs to another project", doc.id)));
    }
    Ok(())
}

pub(crate) fn save_lesson(t: &mut Tx<'_>, l: &Lesson) -> Result<()> {
    let body = serde_json::to_string(l).map_err(corrupt)?;
    let p = t.project.clone();
    t.execute(
        "INSERT INTO lessons (id, review_id, publish, created_at, updated_at, body, project) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET publish = EXCLUDED.publish, updated_at = EXCLUDED.updated_at, body = EXCLUDED.body
         WHERE lessons.project = EXCLUDED.project",
        &[&l.id, &l.review_id, &l.publish, &l.created_at.0, &l.updated_at.0, &body, &&*p],
    )?;
    Ok(())
}

pub(crate) fn lesson(c: &mut impl Sql, p: &str, id: &str) -> Result<Option<Lesson>> {
    load_body(c, "SELECT body FROM lessons WHERE id = $1 AND project = $2", &[&id, &p])
}

pub(crate) fn lessons(c: &mut impl Sql, p: &str, f: &LessonFilter) -> Result<Vec<Lesson>> {
    let all: Vec<Lesson> = load_bodies(
        c,
        "SELECT body FROM lessons WHERE project = $2 AND (NOT $1 OR publish) ORDER BY updated_at DESC, seq DESC",
        &[&f.published, &p],
    )?;
    Ok(all
        .into_iter()
        .filter(|l| f.action.as_ref().is_none_or(|a| l.action_classes.iter().any(|x| x == a)))
        .take(f.limit.max(1))
        .collect())
}

pub(crate) fn lesson_events(c: &mut impl Sql, p: &str, id: &str) -> Result<Vec<Event>> {
    load_events(
        c,
        crate::audit::events_sql!(
            "WHERE project = $2 AND kind IN ('lesson.created', 'lesson.updated') AND data::jsonb #>> '{lesson,id}' = $1
             ORDER BY seq"
        ),
        &[&id, &p],
    )
}

pub(crate) fn search(c: &mut impl Sql, p: &str, q: &SearchQuery) -> Result<Vec<SearchHit>> {
    let Some(query) = tsquery(&q.q) else { return Ok(Vec::new()) };
    let limit = q.limit.clamp(1, 200);
    // Hits whose title holds every word first, then the rest; newest first in each.
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(limit);
    macro_rules! search_sql {
        ($column:literal) => {
            concat!(
                "SELECT id, kind, ref_id, title, actions, agents, failure_modes, at, body FROM search_docs WHERE ",
                $column,
                " @@ $1::text::tsquery AND project = $9
                   AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR $3 = ANY(actions))
                   AND ($4::text IS NULL OR $4 = ANY(agents)) AND ($5::text IS NULL OR $5 = ANY(failure_modes))
                   AND ($6::bigint IS NULL OR at >= $6) AND ($7::bigint IS NULL OR at < $7)
                 ORDER BY id DESC LIMIT $8"
            )
        };
    }
    for sql in [search_sql!("title_words"), search_sql!("words")] {
        if out.len() >= limit {
            break;
        }
        let rows = c.query(
            sql,
            &[
                &query,
                &q.kind.map(|k| k.as_str()),
                &q.action,
                &q.agent,
                &q.failure_mode,
                &q.since.map(|t| t.0),
                &q.until.map(|t| t.0),
                &(limit as i64),
                &p,
            ],
        )?;
        for r in &rows {
            let rowid: i64 = col(r, 0)?;
            if out.len() >= limit || !seen.insert(rowid) {
                continue;
            }
            let kind: String = col(r, 1)?;
            out.push(SearchHit {
                kind: SearchKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown search document kind `{kind}`")))?,
                id: col(r, 2)?,
                title: col(r, 3)?,
                snippet: snippet(&col::<String>(r, 8)?, &q.q),
                actions: col(r, 4)?,
                agents: col(r, 5)?,
                failure_modes: col(r, 6)?,
                at: Timestamp(col(r, 7)?),
            });
        }
    }
    Ok(out)
}

pub(crate) fn offer_suggestions(t: &mut Tx<'_>, found: &[Suggestion], now: Timestamp) -> Result<Vec<Suggestion>> {
    let p = t.project.clone();
    for s in found {
        let known = t.query_opt(
            "SELECT state, expires_at FROM suggestions WHERE project = $2 AND fingerprint = $1",
            &[&s.fingerprint, &&*p],
        )?;
        let body = serde_json::to_string(s).map_err(corrupt)?;
        let params: crate::Params<'_> =
            &[&s.id, &s.fingerprint, &s.state.as_str(), &s.created_at.0, &s.expires_at.0, &body, &&*p];
        match known {
            None => {
                t.execute(
                    "INSERT INTO suggestions (id, fingerprint, state, created_at, expires_at, body, project)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    params,
                )?;
            }
            // an expired suggestion (whatever became of it) may be offered again, with fresh numbers
            Some(r) if col::<i64>(&r, 1)? <= now.0 => {
                t.execute(
                    "UPDATE suggestions SET id = $1, state = $3, created_at = $4, expires_at = $5, body = $6
                     WHERE project = $7 AND fingerprint = $2",
                    params,
                )?;
            }
            Some(_) => {}
        }
    }
    load_bodies(
        t,
        "SELECT body FROM suggestions WHERE project = $2 AND state = 'open' AND expires_at > $1
         ORDER BY created_at DESC, id",
        &[&now.0, &&*p],
    )
}

pub(crate) fn suggestions(c: &mut impl Sql, p: &str, limit: usize) -> Result<Vec<Suggestion>> {
    load_bodies(
        c,
        "SELECT body FROM suggestions WHERE project = $2 ORDER BY created_at DESC, id LIMIT $1",
        &[&(limit as i64), &p],
    )
}

pub(crate) fn suggestion(c: &mut impl Sql, p: &str, id: &str) -> Result<Option<Suggestion>> {
    load_body(c, "SELECT body FROM suggestions WHERE id = $1 AND project = $2", &[&id, &p])
}

pub(crate) fn decide_suggestion(
    t: &mut Tx<'_>,
    id: &str,
    state: SuggestionState,
    draft_policy: Option<String>,
    by: &str,
    at: Timestamp,
) -> Result<Suggestion> {
    let p = t.project.clone();
    let mut s: Suggestion =
        load_body(t, "SELECT body FROM suggestions WHERE id = $1 AND project = $2 FOR UPDATE", &[&id, &&*p])?
            .ok_or_else(|| StoreError::NotFound(format!("suggestion {id}")))?;
    let (kind, data) = arbiter_store::rules::decide_suggestion(&mut s, state, draft_policy, by, at)?;
    let body = serde_json::to_string(&s).map_err(corrupt)?;
    t.execute(
        "UPDATE suggestions SET state = $2, body = $3 WHERE id = $1 AND project = $4",
        &[&id, &s.state.as_str(), &body, &&*p],
    )?;
    let e = append_event(t, None, None, kind, by, at, data)?;
    queue_deliveries(t, &e)?;
    Ok(s)
}

#[async_trait::async_trait]
impl arbiter_store::LearningStore for crate::PostgresStore {
    async fn lesson(&self, id: &str) -> Result<Option<Lesson>> {
        let id = id.to_string();
        self.read(move |c, p| lesson(c, p, &id)).await
    }

    async fn lessons(&self, filter: LessonFilter) -> Result<Vec<Lesson>> {
        self.read(move |c, p| lessons(c, p, &filter)).await
    }

    async fn create_missing_lesson(&self, review_id: &str, by: &str, at: Timestamp) -> Result<Lesson> {
        let (review_id, by) = (review_id.to_string(), by.to_string());
        self.write(move |t| writes::create_missing_lesson(t, &review_id, &by, at)).await
    }

    async fn update_lesson(&self, id: &str, patch: LessonPatch, by: &str, at: Timestamp) -> Result<Lesson> {
        let (id, by) = (id.to_string(), by.to_string());
        self.write(move |t| writes::update_lesson(t, &id, &patch, &by, at)).await
    }

    async fn lesson_events(&self, id: &str) -> Result<Vec<Event>> {
        let id = id.to_string();
        self.read(move |c, p| lesson_events(c, p, &id)).await
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<SearchHit>> {
        self.read(move |c, p| search(c, p, &query)).await
    }

    async fn offer_suggestions(&self, found: Vec<Suggestion>, now: Timestamp) -> Result<Vec<Suggestion>> {
        self.write(move |t| offer_suggestions(t, &found, now)).await
    }

    async fn suggestions(&self, limit: usize) -> Result<Vec<Suggestion>> {
        self.read(move |c, p| suggestions(c, p, limit)).await
    }

    async fn suggestion(&self, id: &str) -> Result<Option<Suggestion>> {
        let id = id.to_string();
        self.read(move |c, p| suggestion(c, p, &id)).await
    }

    async fn decide_suggestion(
        &self,
        id: &str,
        state: SuggestionState,
        draft_policy: Option<String>,
        by: &str,
        at: Timestamp,
    ) -> Result<Suggestion> {
        let (id, by) = (id.to_string(), by.to_string());
        self.write(move |t| decide_suggestion(t, &id, state, draft_policy.clone(), &by, at)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_quoted_lexemes() {
        assert_eq!(tsquery("VPN gate*").as_deref(), Some("'vpn' & 'gate':*"));
        assert_eq!(tsquery("'); DROP TABLE x; --").as_deref(), Some("'drop' & 'table' & 'x'"));
        assert_eq!(tsquery(" ,; "), None);
    }

    #[test]
    fn words_split_like_queries() {
        assert_eq!(words("Block ip:10.0.0.1, again; block"), ["0", "1", "10", "again", "block", "ip"]);
    }

    #[test]
    fn snippets_cut_around_the_first_match() {
        let body = (1..=40).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(snippet(&body, "w20"), "…w16 w17 w18 w19 w20 w21 w22 w23 w24 w25 w26 w27 w28 w29 w30 w31…");
        assert_eq!(snippet("short text", "zzz"), "short text");
    }
}
