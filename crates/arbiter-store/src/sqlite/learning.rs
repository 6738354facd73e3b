//! The learning loop's rows: lessons (written with the review that closes),
//! the full-text index (FTS5) over lessons, review cases and reviewed
//! decisions, and rule suggestions.

use super::*;
use crate::LessonFilter;
use crate::rules::fts_words;
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::search::{Document, SearchHit, SearchKind, SearchQuery};
use arbiter_core::suggest::{Suggestion, SuggestionState};

/// The token that stands for a filter value in the `facets` column: a letter
/// for the field and 16 hex digits of the value's SHA-256 (all letters and
/// digits, so the tokenizer keeps it whole, and no word of a text collides with it).
fn facet(field: char, value: &str) -> String {
    use sha2::Digest;
    format!("f{field}{}", &hex::encode(sha2::Sha256::digest(value.as_bytes()))[..16])
}

fn facets(doc: &Document) -> String {
    let mut out = vec![facet('k', doc.kind.as_str())];
    out.extend(doc.actions.iter().map(|a| facet('a', a)));
    out.extend(doc.agents.iter().map(|a| facet('g', a)));
    out.extend(doc.failure_modes.iter().map(|m| facet('m', m)));
    out.join(" ")
}

/// The full match expression: the words (in `columns`), and one facet token per filter.
fn match_expression(columns: &str, words: &str, q: &SearchQuery) -> String {
    let mut parts = vec![format!("{columns} : ({words})")];
    let mut filter = |field: char, value: Option<&str>| {
        if let Some(v) = value {
            parts.push(format!("facets : \"{}\"", facet(field, v)));
        }
    };
    filter('k', q.kind.map(|k| k.as_str()));
    filter('a', q.action.as_deref());
    filter('g', q.agent.as_deref());
    filter('m', q.failure_mode.as_deref());
    parts.join(" AND ")
}

/// Put `doc` in the index, replacing its earlier text.
pub(super) fn index_document(conn: &Connection, p: &str, doc: &Document) -> Result<()> {
    let json = |v: &Vec<String>| serde_json::to_string(v).map_err(corrupt);
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO search_docs (kind, ref_id, title, actions, agents, failure_modes, at, project)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (kind, ref_id) DO UPDATE SET title = ?3, actions = ?4, agents = ?5, failure_modes = ?6, at = ?7
             WHERE project = ?8
             RETURNING id",
        )
        .map_err(backend)?
        .query_row(
            params![
                doc.kind.as_str(),
                doc.id,
                doc.title,
                json(&doc.actions)?,
                json(&doc.agents)?,
                json(&doc.failure_modes)?,
                doc.at.0,
                p
            ],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::Conflict(format!("search document {} belongs to another project", doc.id)))?;
    conn.prepare_cached("DELETE FROM search_fts WHERE rowid = ?1").map_err(backend)?.execute([id]).map_err(backend)?;
    conn.prepare_cached("INSERT INTO search_fts (rowid, title, body, facets) VALUES (?1, ?2, ?3, ?4)")
        .map_err(backend)?
        .execute(params![id, doc.title, doc.body, facets(doc)])
        .map_err(backend)?;
    Ok(())
}

/// Keep the index current after a case of project `project` changed (the shared rule, on this connection).
pub(super) fn index_case(conn: &Connection, project: &str, case: &Case) -> Result<()> {
    crate::writes::index_case(&mut SqliteTx { conn, project, chain: &mut ChainBatch::default() }, case)
}

pub(super) fn load_lesson(conn: &Connection, sql: &str, key: &str, p: &str) -> Result<Option<Lesson>> {
    let body: Option<String> =
        conn.prepare_cached(sql).map_err(backend)?.query_row([key, p], |r| r.get(0)).optional().map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
}

pub(super) fn save_lesson(conn: &Connection, p: &str, l: &Lesson) -> Result<()> {
    let body = serde_json::to_string(l).map_err(corrupt)?;
    conn.prepare_cached(
        "INSERT INTO lessons (id, review_id, publish, created_at, updated_at, body, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (id) DO UPDATE SET publish = ?3, updated_at = ?5, body = ?6 WHERE project = ?7",
    )
    .map_err(backend)?
    .execute(params![l.id, l.review_id, l.publish, l.created_at.0, l.updated_at.0, body, p])
    .map_err(backend)?;
    Ok(())
}

fn strings(s: String) -> Result<Vec<String>> {
    serde_json::from_str(&s).map_err(corrupt)
}

/// Fill the learning loop's columns and index for rows written before it
/// (the upgrade to schema 7): subjects, who settled each decision, and the
/// search documents of review cases and answered decisions.
pub(super) fn backfill_learning(conn: &Connection, progress: &mut dyn FnMut(u64)) -> Result<()> {
    let mut done = 0u64;
    let mut st = conn.prepare("SELECT id, body FROM decisions ORDER BY seq").map_err(backend)?;
    let mut rows = st.query([]).map_err(backend)?;
    let mut up = conn
        .prepare("UPDATE decisions SET subject = ?2, final_source = ?3, overridden = ?4 WHERE id = ?1")
        .map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let (id, body): (String, String) = (r.get(0).map_err(backend)?, r.get(1).map_err(backend)?);
        let d: Decision = serde_json::from_str(&body).map_err(corrupt)?;
        let col = DecisionColumns::of(&d);
        up.execute(params![id, col.subject, col.final_source, col.overridden]).map_err(backend)?;
        done += 1;
        if done.is_multiple_of(10_000) {
            progress(done);
        }
    }
    // (runs after every schema step of the upgrade: all rows are the default project's)
    let cases: Vec<Case> = load_bodies(conn, "SELECT body FROM cases ORDER BY seq", [])?;
    for c in &cases {
        index_case(conn, ProjectId::DEFAULT, c)?;
    }
    Ok(())
}

#[async_trait]
impl crate::LearningStore for SqliteStore {
    async fn lesson(&self, id: &str) -> Result<Option<Lesson>> {
        let id = id.to_string();
        self.read(move |c, p| load_lesson(c, "SELECT body FROM lessons WHERE id = ?1 AND project = ?2", &id, p)).await
    }

    async fn lessons(&self, f: LessonFilter) -> Result<Vec<Lesson>> {
        self.read(move |c, p| {
            let all: Vec<Lesson> = load_bodies(
                c,
                "SELECT body FROM lessons WHERE project = ?2 AND (?1 = 0 OR publish = 1) ORDER BY updated_at DESC, seq DESC",
                params![f.published, p],
            )?;
            Ok(all
                .into_iter()
                .filter(|l| f.action.as_ref().is_none_or(|a| l.action_classes.iter().any(|x| x == a)))
                .take(f.limit.max(1))
                .collect())
        })
        .await
    }

    async fn create_missing_lesson(&self, review_id: &str, by: &str, at: Timestamp) -> Result<Lesson> {
        let (review_id, by) = (review_id.to_string(), by.to_string());
        self.write_chained(move |conn, project, chain| {
            crate::writes::create_missing_lesson(&mut SqliteTx { conn, project, chain }, &review_id, &by, at)
        })
        .await
    }

    async fn update_lesson(&self, id: &str, patch: LessonPatch, by: &str, at: Timestamp) -> Result<Lesson> {
        let (id, by) = (id.to_string(), by.to_string());
        self.write_chained(move |conn, project, chain| {
            crate::writes::update_lesson(&mut SqliteTx { conn, project, chain }, &id, &patch, &by, at)
        })
        .await
    }

    async fn lesson_events(&self, id: &str) -> Result<Vec<Event>> {
        let id = id.to_string();
        self.read(move |c, p| {
            load_events(
                c,
                concat!(
                    "SELECT ",
                    event_cols!(),
                    " FROM events WHERE project = ?2 AND kind IN ('lesson.created', 'lesson.updated')
                      AND json_extract(data, '$.lesson.id') = ?1 ORDER BY seq"
                ),
                params![id, p],
            )
        })
        .await
    }

    async fn search(&self, q: SearchQuery) -> Result<Vec<SearchHit>> {
        let Some(words) = fts_words(&q.q) else { return Ok(Vec::new()) };
        // Hits whose title holds every word first, then the rest; newest first in each.
        // (BM25 would read every match of a common word to weigh it: linear in the
        // index; these two walks stop after `limit` hits.)
        let in_title = match_expression("title", &words, &q);
        let anywhere = match_expression("{title body}", &words, &q);
        let limit = q.limit.clamp(1, 200);
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT d.id, d.kind, d.ref_id, d.title, d.actions, d.agents, d.failure_modes, d.at,
                            snippet(search_fts, 1, '', '', '…', 16)
                     FROM search_fts JOIN search_docs d ON d.id = search_fts.rowid
                     WHERE search_fts MATCH ?1 AND d.project = ?5 AND (?2 IS NULL OR d.at >= ?2) AND (?3 IS NULL OR d.at < ?3)
                     ORDER BY search_fts.rowid DESC LIMIT ?4",
                )
                .map_err(backend)?;
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(limit);
            for expr in [&in_title, &anywhere] {
                if out.len() >= limit {
                    break;
                }
                let rows = st
                    .query_map(params![expr, q.since.map(|t| t.0), q.until.map(|t| t.0), limit as i64, p], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, i64>(7)?,
                            r.get::<_, String>(8)?,
                        ))
                    })
                    .map_err(backend)?;
                for row in rows {
                    let (rowid, kind, id, title, actions, agents, failure_modes, at, snippet) = row.map_err(backend)?;
                    if out.len() >= limit || !seen.insert(rowid) {
                        continue;
                    }
                    out.push(SearchHit {
                        kind: SearchKind::parse(&kind)
                            .ok_or_else(|| StoreError::Corrupt(format!("unknown search document kind `{kind}`")))?,
                        id,
                        title,
                        snippet,
                        actions: strings(actions)?,
                        agents: strings(agents)?,
                        failure_modes: strings(failure_modes)?,
                        at: Timestamp(at),
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn offer_suggestions(&self, found: Vec<Suggestion>, now: Timestamp) -> Result<Vec<Suggestion>> {
        self.write(move |c, p| {
            for s in &found {
                let known: Option<(String, i64)> = c
                    .prepare_cached("SELECT state, expires_at FROM suggestions WHERE project = ?2 AND fingerprint = ?1")
                    .map_err(backend)?
                    .query_row([s.fingerprint.as_str(), p], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(backend)?;
                let body = serde_json::to_string(s).map_err(corrupt)?;
                match known {
                    None => {
                        c.prepare_cached(
                            "INSERT INTO suggestions (id, fingerprint, state, created_at, expires_at, body, project)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )
                        .map_err(backend)?
                        .execute(params![
                            s.id,
                            s.fingerprint,
                            s.state.as_str(),
                            s.created_at.0,
                            s.expires_at.0,
                            body,
                            p
                        ])
                        .map_err(backend)?;
                    }
                    // an expired suggestion (whatever became of it) may be offered again, with fresh numbers
                    Some((_, expires_at)) if expires_at <= now.0 => {
                        c.prepare_cached(
                            "UPDATE suggestions SET id = ?1, state = ?3, created_at = ?4, expires_at = ?5, body = ?6
                             WHERE project = ?7 AND fingerprint = ?2",
                        )
                        .map_err(backend)?
                        .execute(params![
                            s.id,
                            s.fingerprint,
                            s.state.as_str(),
                            s.created_at.0,
                            s.expires_at.0,
                            body,
                            p
                        ])
                        .map_err(backend)?;
                    }
                    Some(_) => {}
                }
            }
            load_bodies(
                c,
                "SELECT body FROM suggestions WHERE project = ?2 AND state = 'open' AND expires_at > ?1
                 ORDER BY created_at DESC, id",
                params![now.0, p],
            )
        })
        .await
    }

    async fn suggestions(&self, limit: usize) -> Result<Vec<Suggestion>> {
        self.read(move |c, p| {
            load_bodies(
                c,
                "SELECT body FROM suggestions WHERE project = ?2 ORDER BY created_at DESC, id LIMIT ?1",
                params![limit as i64, p],
            )
        })
        .await
    }

    async fn suggestion(&self, id: &str) -> Result<Option<Suggestion>> {
        let id = id.to_string();
        self.read(move |c, p| {
            let body: Option<String> = c
                .query_row("SELECT body FROM suggestions WHERE id = ?1 AND project = ?2", params![id, p], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
        })
        .await
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
        self.write(move |c, p| {
            let body: String = c
                .query_row("SELECT body FROM suggestions WHERE id = ?1 AND project = ?2", params![id, p], |r| r.get(0))
                .optional()
                .map_err(backend)?
                .ok_or_else(|| StoreError::NotFound(format!("suggestion {id}")))?;
            let mut s: Suggestion = serde_json::from_str(&body).map_err(corrupt)?;
            let (kind, data) = crate::rules::decide_suggestion(&mut s, state, draft_policy, &by, at)?;
            let body = serde_json::to_string(&s).map_err(corrupt)?;
            c.prepare_cached("UPDATE suggestions SET state = ?2, body = ?3 WHERE id = ?1")
                .map_err(backend)?
                .execute(params![id, s.state.as_str(), body])
                .map_err(backend)?;
            let e = append_event(c, p, About::NOTHING, kind, &by, at, data)?;
            queue_deliveries(c, p, &e)?;
            Ok(s)
        })
        .await
    }
}
