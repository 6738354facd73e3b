//! Case rows: the projection of each case's events, and the queries the
//! queue, the sweeper and case search need.

use crate::{Sql, Tx, col, corrupt, load_bodies, load_body};
use arbiter_core::CaseCommand;
use arbiter_core::{Case, CaseKind, CaseState, Timestamp};
use arbiter_store::CaseUpdate;
use arbiter_store::writes;
use arbiter_store::{CaseFilter, CasePage, CaseQuery, Result, StoreError};

pub(crate) fn load_case(c: &mut impl Sql, p: &str, id: &str) -> Result<Option<Case>> {
    load_body(c, "SELECT body FROM cases WHERE id = $1 AND project = $2", &[&id, &p])
}

/// Insert a new case row, or (`insert: false`) rewrite an existing one.
pub(crate) fn save_case(t: &mut Tx<'_>, c: &Case, insert: bool) -> Result<()> {
    if insert {
        return insert_cases(t, &[c]);
    }
    let body = serde_json::to_string(c).map_err(corrupt)?;
    let p = t.project.clone();
    t.execute(
        "UPDATE cases SET kind = $2, state = $3, decision_id = $4, sla_deadline = $5, created_at = $6, updated_at = $7,
         body = $8, due_at = $9, trace_id = $10, agent = $11,
         ended_at = CASE WHEN $13::bigint IS NULL THEN NULL ELSE COALESCE(ended_at, $13) END
         WHERE id = $1 AND project = $12",
        &[
            &c.id,
            &c.kind.as_str(),
            &c.state.as_str(),
            &c.decision_id,
            &c.sla_deadline.0,
            &c.created_at.0,
            &c.updated_at.0,
            &body,
            &c.due_at().map(|t| t.0),
            &c.trace_id,
            &c.agent,
            &&*p,
            &c.ended_at(None).map(|t| t.0),
        ],
    )?;
    Ok(())
}

/// Insert new cases, in one statement.
pub(crate) fn insert_cases(t: &mut Tx<'_>, cases: &[&Case]) -> Result<()> {
    if cases.is_empty() {
        return Ok(());
    }
    let body = cases.iter().map(|c| serde_json::to_string(c).map_err(corrupt)).collect::<Result<Vec<_>>>()?;
    let id: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let kind: Vec<&str> = cases.iter().map(|c| c.kind.as_str()).collect();
    let state: Vec<&str> = cases.iter().map(|c| c.state.as_str()).collect();
    let decision: Vec<Option<&str>> = cases.iter().map(|c| c.decision_id.as_deref()).collect();
    let sla: Vec<i64> = cases.iter().map(|c| c.sla_deadline.0).collect();
    let created: Vec<i64> = cases.iter().map(|c| c.created_at.0).collect();
    let updated: Vec<i64> = cases.iter().map(|c| c.updated_at.0).collect();
    let due: Vec<Option<i64>> = cases.iter().map(|c| c.due_at().map(|t| t.0)).collect();
    let trace: Vec<Option<&str>> = cases.iter().map(|c| c.trace_id.as_deref()).collect();
    let agent: Vec<&str> = cases.iter().map(|c| c.agent.as_str()).collect();
    let ended: Vec<Option<i64>> = cases.iter().map(|c| c.ended_at(None).map(|t| t.0)).collect();
    let p = t.project.clone();
    t.execute(
        "INSERT INTO cases (id, kind, state, decision_id, sla_deadline, created_at, updated_at, body, due_at, trace_id, agent,
                            ended_at, project)
         SELECT *, $13::text FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                              $7::bigint[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::bigint[])",
        &[&id, &kind, &state, &decision, &sla, &created, &updated, &body, &due, &trace, &agent, &ended, &&*p],
    )?;
    Ok(())
}

fn states(s: &[CaseState]) -> Vec<String> {
    s.iter().map(|s| s.as_str().to_string()).collect()
}

pub(crate) fn list(c: &mut impl Sql, p: &str, f: &CaseFilter) -> Result<Vec<Case>> {
    load_bodies(
        c,
        "SELECT body FROM cases WHERE project = $4 AND ($1::text IS NULL OR kind = $1)
         AND (cardinality($2::text[]) = 0 OR state = ANY($2)) ORDER BY seq DESC LIMIT $3",
        &[&f.kind.map(|k| k.as_str()), &states(&f.states), &(f.limit.max(1) as i64), &p],
    )
}

/// The filters of a case search, before its cursor and order.
macro_rules! find_where {
    () => {
        "SELECT c.seq, c.body FROM cases c LEFT JOIN decisions d ON d.id = c.decision_id
         WHERE c.project = $15 AND ($1::text IS NULL OR c.kind = $1)
           AND (cardinality($2::text[]) = 0 OR c.state = ANY($2))
           AND ($3::text IS NULL OR c.agent = $3)
           AND ($4::text IS NULL OR COALESCE(d.action_name, c.body::jsonb ->> 'action_name') = $4)
           AND ($5::text IS NULL OR d.subject = $5)
           AND ($6::text IS NULL OR d.final_verdict = $6)
           AND ($7::text IS NULL OR d.final_source = $7)
           AND ($8::text IS NULL
                OR EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(c.body::jsonb -> 'answers', '[]')) a WHERE a ->> 'by' = $8)
                OR EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(c.body::jsonb #> '{review,entries}', '[]')) e WHERE e ->> 'by' = $8))
           AND ($9::text IS NULL
                OR EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(c.body::jsonb -> 'answers', '[]')) a,
                                         jsonb_array_elements_text(COALESCE(a -> 'failure_modes', '[]')) f WHERE f = $9)
                OR EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(c.body::jsonb #> '{review,entries}', '[]')) e,
                                         jsonb_array_elements(COALESCE(e -> 'findings', '[]')) f WHERE f ->> 'kind' = $9))
           AND ($10::bigint IS NULL OR c.updated_at >= $10) AND ($11::bigint IS NULL OR c.updated_at < $11)
           AND ($12::text IS NULL
                OR c.id IN (SELECT sd.ref_id FROM search_docs sd
                            WHERE sd.words @@ $12::text::tsquery AND sd.kind = 'review' AND sd.project = $15)
                OR c.decision_id IN (SELECT sd.ref_id FROM search_docs sd
                            WHERE sd.words @@ $12::text::tsquery AND sd.kind = 'decision' AND sd.project = $15))
           "
    };
}

pub(crate) fn find(c: &mut impl Sql, p: &str, q: &CaseQuery) -> Result<CasePage> {
    let text = match &q.text {
        Some(t) => Some(
            crate::learning::tsquery(t)
                .ok_or_else(|| StoreError::Conflict("the text filter has no word to search for".into()))?,
        ),
        None => None,
    };
    let limit = q.limit.clamp(1, 1000);
    // only ended cases asked for (decided, closed): newest ending first
    let sql = if arbiter_store::rules::lists_ended_cases(&q.states) {
        concat!(
            find_where!(),
            "AND ($13::bigint IS NULL OR (c.ended_at, c.seq) < ((SELECT x.ended_at FROM cases x WHERE x.seq = $13), $13))
             ORDER BY c.ended_at DESC, c.seq DESC LIMIT $14"
        )
    } else {
        concat!(find_where!(), "AND ($13::bigint IS NULL OR c.seq < $13) ORDER BY c.seq DESC LIMIT $14")
    };
    let rows = c.query(
        sql,
        &[
            &q.kind.map(|k| k.as_str()),
            &states(&q.states),
            &q.agent,
            &q.action,
            &q.subject,
            &q.verdict.map(|v| v.as_str()),
            &q.source.map(|s| s.as_str()),
            &q.reviewer,
            &q.failure_mode,
            &q.since.map(|t| t.0),
            &q.until.map(|t| t.0),
            &text,
            &q.after.map(|s| s as i64),
            // one more than asked tells whether there is a next page
            &(limit as i64 + 1),
            &p,
        ],
    )?;
    let mut page = CasePage::default();
    let mut last = None;
    for r in &rows {
        if page.cases.len() == limit {
            page.next = last;
            break;
        }
        page.cases.push(serde_json::from_str(&col::<String>(r, 1)?).map_err(corrupt)?);
        last = Some(col::<i64>(r, 0)? as u64);
    }
    Ok(page)
}

pub(crate) fn active_approval(c: &mut impl Sql, p: &str) -> Result<Vec<Case>> {
    load_bodies(
        c,
        "SELECT body FROM cases WHERE project = $4 AND kind = $1 AND state IN ($2, $3)",
        &[&CaseKind::Approval.as_str(), &CaseState::Open.as_str(), &CaseState::Claimed.as_str(), &p],
    )
}

pub(crate) fn due(c: &mut impl Sql, p: &str, now: Timestamp, limit: usize) -> Result<Vec<String>> {
    c.query(
        "SELECT id FROM cases WHERE project = $3 AND due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2",
        &[&now.0, &(limit as i64), &p],
    )?
    .iter()
    .map(|r| col(r, 0))
    .collect()
}

pub(crate) fn open_count(c: &mut impl Sql, p: &str, kind: Option<CaseKind>) -> Result<u64> {
    let kind = kind.map(CaseKind::as_str);
    let r = c.query_one(
        "SELECT COUNT(*) FROM cases WHERE project = $2 AND state IN ('open', 'claimed') AND ($1::TEXT IS NULL OR kind = $1)",
        &[&kind, &p],
    )?;
    Ok(col::<i64>(&r, 0)? as u64)
}

#[async_trait::async_trait]
impl arbiter_store::CaseStore for crate::PostgresStore {
    async fn case(&self, id: &str) -> Result<Option<Case>> {
        let id = id.to_string();
        self.read(move |c, p| load_case(c, p, &id)).await
    }

    async fn open_case(&self, case: Case, actor: &str) -> Result<Case> {
        let actor = actor.to_string();
        self.write(move |t| writes::open_case(t, case.clone(), &actor)).await
    }

    async fn update_case(&self, id: &str, command: CaseCommand, now: Timestamp) -> Result<CaseUpdate> {
        let id = id.to_string();
        self.write(move |t| writes::update_case(t, &id, &command, now)).await
    }

    async fn cases(&self, filter: CaseFilter) -> Result<Vec<Case>> {
        self.read(move |c, p| list(c, p, &filter)).await
    }

    async fn find_cases(&self, query: CaseQuery) -> Result<CasePage> {
        if query.text.as_deref().is_some_and(|t| crate::learning::tsquery(t).is_none()) {
            return Err(StoreError::Conflict("the text filter has no word to search for".into()));
        }
        self.read(move |c, p| find(c, p, &query)).await
    }

    async fn active_approval_cases(&self) -> Result<Vec<Case>> {
        self.read(active_approval).await
    }

    async fn due_cases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        self.read(move |c, p| due(c, p, now, limit)).await
    }

    async fn open_case_count(&self, kind: Option<arbiter_core::CaseKind>) -> Result<u64> {
        self.read(move |c, p| open_count(c, p, kind)).await
    }
}
