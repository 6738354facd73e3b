//! Case rows: the projection of each case's events, and the queries the queue and the sweeper need.

use super::*;

pub(super) fn load_case(conn: &Connection, p: &str, id: &str) -> Result<Option<Case>> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM cases WHERE id = ?1 AND project = ?2")
        .map_err(backend)?
        .query_row([id, p], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
}

const FIND_WHERE: &str = "SELECT c.seq, c.body FROM cases c LEFT JOIN decisions d ON d.id = c.decision_id
                     WHERE c.project = ?15 AND (?1 IS NULL OR c.kind = ?1)
                       AND (?2 = '[]' OR c.state IN (SELECT value FROM json_each(?2)))
                       AND (?3 IS NULL OR c.agent = ?3)
                       AND (?4 IS NULL OR COALESCE(d.action_name, json_extract(c.body, '$.action_name')) = ?4)
                       AND (?5 IS NULL OR d.subject = ?5)
                       AND (?6 IS NULL OR d.final_verdict = ?6)
                       AND (?7 IS NULL OR d.final_source = ?7)
                       AND (?8 IS NULL
                            OR EXISTS (SELECT 1 FROM json_each(c.body, '$.answers') a WHERE json_extract(a.value, '$.by') = ?8)
                            OR EXISTS (SELECT 1 FROM json_each(c.body, '$.review.entries') e WHERE json_extract(e.value, '$.by') = ?8))
                       AND (?9 IS NULL
                            OR EXISTS (SELECT 1 FROM json_each(c.body, '$.answers') a, json_each(a.value, '$.failure_modes') f WHERE f.value = ?9)
                            OR EXISTS (SELECT 1 FROM json_each(c.body, '$.review.entries') e, json_each(e.value, '$.findings') f
                                       WHERE json_extract(f.value, '$.kind') = ?9))
                       AND (?10 IS NULL OR c.updated_at >= ?10) AND (?11 IS NULL OR c.updated_at < ?11)
                       AND (?12 IS NULL OR c.id IN (SELECT sd.ref_id FROM search_fts JOIN search_docs sd ON sd.id = search_fts.rowid
                                                    WHERE search_fts MATCH ?12 AND sd.kind = 'review' AND sd.project = ?15)
                                         OR c.decision_id IN (SELECT sd.ref_id FROM search_fts JOIN search_docs sd ON sd.id = search_fts.rowid
                                                    WHERE search_fts MATCH ?12 AND sd.kind = 'decision' AND sd.project = ?15))
                       ";

pub(super) fn save_case(conn: &Connection, p: &str, c: &Case, insert: bool) -> Result<()> {
    let body = serde_json::to_string(c).map_err(corrupt)?;
    let sql = if insert {
        "INSERT INTO cases (id, kind, state, decision_id, sla_deadline, created_at, updated_at, body, due_at, trace_id, agent, project,
                            ended_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    } else {
        "UPDATE cases SET kind = ?2, state = ?3, decision_id = ?4, sla_deadline = ?5, created_at = ?6, updated_at = ?7,
         body = ?8, due_at = ?9, trace_id = ?10, agent = ?11,
         ended_at = CASE WHEN ?13 IS NULL THEN NULL ELSE COALESCE(ended_at, ?13) END
         WHERE id = ?1 AND project = ?12"
    };
    conn.prepare_cached(sql)
        .map_err(backend)?
        .execute(params![
            c.id,
            c.kind.as_str(),
            c.state.as_str(),
            c.decision_id,
            c.sla_deadline.0,
            c.created_at.0,
            c.updated_at.0,
            body,
            c.due_at().map(|t| t.0),
            c.trace_id,
            c.agent,
            p,
            c.ended_at(None).map(|t| t.0)
        ])
        .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl crate::CaseStore for SqliteStore {
    async fn case(&self, id: &str) -> Result<Option<Case>> {
        let id = id.to_string();
        self.read(move |c, p| load_case(c, p, &id)).await
    }

    async fn open_case(&self, case: Case, actor: &str) -> Result<Case> {
        let actor = actor.to_string();
        self.write_chained(move |conn, project, chain| {
            crate::writes::open_case(&mut SqliteTx { conn, project, chain }, case, &actor)
        })
        .await
    }

    async fn update_case(&self, id: &str, command: CaseCommand, now: Timestamp) -> Result<CaseUpdate> {
        let id = id.to_string();
        self.write_chained(move |conn, project, chain| {
            crate::writes::update_case(&mut SqliteTx { conn, project, chain }, &id, &command, now)
        })
        .await
    }

    async fn cases(&self, f: CaseFilter) -> Result<Vec<Case>> {
        self.read(move |c, p| {
            // Every filter is a bound parameter; the state list travels as one JSON array.
            let states: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
            let states = serde_json::to_string(&states).map_err(corrupt)?;
            load_bodies(
                c,
                "SELECT body FROM cases WHERE project = ?4 AND (?1 IS NULL OR kind = ?1)
                 AND (?2 = '[]' OR state IN (SELECT value FROM json_each(?2))) ORDER BY seq DESC LIMIT ?3",
                params![f.kind.map(|k| k.as_str()), states, f.limit.max(1) as i64, p],
            )
        })
        .await
    }

    async fn find_cases(&self, q: crate::CaseQuery) -> Result<crate::CasePage> {
        let states: Vec<&str> = q.states.iter().map(|s| s.as_str()).collect();
        let states = serde_json::to_string(&states).map_err(corrupt)?;
        let text = match &q.text {
            Some(t) => Some(
                crate::rules::fts_words(t)
                    .map(|w| format!("{{title body}} : ({w})"))
                    .ok_or_else(|| StoreError::Conflict("the text filter has no word to search for".into()))?,
            ),
            None => None,
        };
        let limit = q.limit.clamp(1, 1000);
        // only ended cases asked for (decided, closed): newest ending first
        let by_end = crate::rules::lists_ended_cases(&q.states);
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    &if by_end {
                    format!(
                        "{}{}",
                        FIND_WHERE,
                        "AND (?13 IS NULL OR (c.ended_at, c.seq) < ((SELECT x.ended_at FROM cases x WHERE x.seq = ?13), ?13))
                         ORDER BY c.ended_at DESC, c.seq DESC LIMIT ?14"
                    )
                } else {
                    format!("{}{}", FIND_WHERE, "AND (?13 IS NULL OR c.seq < ?13) ORDER BY c.seq DESC LIMIT ?14")
                },
                )
                .map_err(backend)?;
            let rows = st
                .query_map(
                    params![
                        q.kind.map(|k| k.as_str()),
                        states,
                        q.agent,
                        q.action,
                        q.subject,
                        q.verdict.map(|v| v.as_str()),
                        q.source.map(|s| s.as_str()),
                        q.reviewer,
                        q.failure_mode,
                        q.since.map(|t| t.0),
                        q.until.map(|t| t.0),
                        text,
                        q.after.map(|s| s as i64),
                        // one more than asked tells whether there is a next page
                        limit as i64 + 1,
                        p
                    ],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(backend)?;
            let mut page = crate::CasePage::default();
            let mut last = None;
            for row in rows {
                let (seq, body) = row.map_err(backend)?;
                if page.cases.len() == limit {
                    page.next = last;
                    break;
                }
                page.cases.push(serde_json::from_str(&body).map_err(corrupt)?);
                last = Some(seq as u64);
            }
            Ok(page)
        })
        .await
    }

    async fn active_approval_cases(&self) -> Result<Vec<Case>> {
        self.read(|c, p| {
            load_bodies(
                c,
                "SELECT body FROM cases WHERE project = ?4 AND kind = ?1 AND state IN (?2, ?3)",
                params![CaseKind::Approval.as_str(), CaseState::Open.as_str(), CaseState::Claimed.as_str(), p],
            )
        })
        .await
    }

    async fn due_cases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT id FROM cases WHERE project = ?3 AND due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![now.0, limit as i64, p], |r| r.get::<_, String>(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn open_case_count(&self, kind: Option<CaseKind>) -> Result<u64> {
        self.read(move |c, p| {
            c.query_row(
                "SELECT COUNT(*) FROM cases WHERE project = ?2 AND state IN ('open', 'claimed') AND (?1 IS NULL OR kind = ?1)",
                params![kind.map(CaseKind::as_str), p],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }
}
