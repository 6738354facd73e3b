//! The hash-chained event log: appends, reads, and `audit verify` over events, decisions and cases.

use super::*;

pub(super) fn load_events(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Event>> {
    let mut st = conn.prepare_cached(sql).map_err(backend)?;
    let rows = st.query_map(params, row_event).map_err(backend)?;
    rows.map(|r| {
        let (mut ev, data) = r.map_err(backend)?;
        ev.data = serde_json::from_str(&data).map_err(corrupt)?;
        Ok(ev)
    })
    .collect()
}

/// What an event is about: its case and its decision, when it has them.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct About<'a> {
    pub case_id: Option<&'a str>,
    pub decision_id: Option<&'a str>,
}

impl About<'_> {
    /// An event of no case and no decision (a policy activation, a commitment, a drift episode).
    pub const NOTHING: About<'static> = About { case_id: None, decision_id: None };
}

/// Append one event to project `project`'s chain, linking it to its last one.
pub(super) fn append_event(
    conn: &Connection,
    project: &str,
    about: About<'_>,
    kind: &str,
    actor: &str,
    at: Timestamp,
    data: serde_json::Value,
) -> Result<Event> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM events WHERE project = ?1 ORDER BY seq DESC LIMIT 1")
        .map_err(backend)?
        .query_row([project], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    let (seq, prev_hash) =
        last.map_or_else(|| (1, arbiter_core::project::genesis_hash(project)), |(s, h)| (s as u64 + 1, h));
    let mut ev = Event {
        seq,
        case_id: about.case_id.map(str::to_string),
        decision_id: about.decision_id.map(str::to_string),
        kind: kind.to_string(),
        actor: actor.to_string(),
        at,
        data,
        prev_hash,
        hash: String::new(),
    };
    ev.hash = ev.compute_hash();
    conn.prepare_cached(
        "INSERT INTO events (seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .map_err(backend)?
    .execute(
        params![ev.seq as i64, ev.case_id, ev.decision_id, ev.kind, ev.actor, ev.at.0, ev.data.to_string(), ev.prev_hash, ev.hash, project],
    )
    .map_err(backend)?;
    Ok(ev)
}

pub(super) fn row_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Event, String)> {
    Ok((
        Event {
            seq: r.get::<_, i64>(0)? as u64,
            case_id: r.get(1)?,
            decision_id: r.get(2)?,
            kind: r.get(3)?,
            actor: r.get(4)?,
            at: Timestamp(r.get(5)?),
            data: serde_json::Value::Null,
            prev_hash: r.get(7)?,
            hash: r.get(8)?,
        },
        r.get::<_, String>(6)?,
    ))
}

/// The columns of an event row, as a literal for `concat!` (SQL text stays static).
macro_rules! event_cols {
    () => {
        "seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash"
    };
}

/// What `audit verify` reads of one project, from one SQLite read transaction.
struct Snapshot<'a>(&'a Connection, &'a str);

impl crate::audit::AuditSnapshot for Snapshot<'_> {
    fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<crate::audit::StoredEvent>> {
        use crate::audit::StoredEvent;
        let mut st = self
            .0
            .prepare_cached(concat!(
                "SELECT ",
                event_cols!(),
                " FROM events WHERE project = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(backend)?;
        let rows = st.query_map(params![after as i64, limit as i64, self.1], row_event).map_err(backend)?;
        rows.map(|r| {
            let (mut ev, data) = r.map_err(backend)?;
            Ok(match serde_json::from_str(&data) {
                Ok(v) => {
                    ev.data = v;
                    StoredEvent::Read(ev)
                }
                Err(e) => {
                    StoredEvent::Unreadable { seq: ev.seq, hash: ev.hash, why: format!("data is not valid JSON: {e}") }
                }
            })
        })
        .collect()
    }

    fn event_at(&mut self, seq: u64) -> Result<Option<Event>> {
        let at = load_events(
            self.0,
            concat!("SELECT ", event_cols!(), " FROM events WHERE project = ?2 AND seq = ?1"),
            params![seq as i64, self.1],
        )?;
        Ok(at.into_iter().next())
    }

    fn decisions_after(&mut self, after: i64, limit: usize) -> Result<Vec<crate::audit::DecisionRow>> {
        use crate::rules::column_name;
        let mut st = self
            .0
            .prepare_cached(
                "SELECT seq, id, body, agent, idempotency_key, action_name, confidence, verdict, status, final_verdict,
                 policy_hash, case_id, trace_id, received_at, event_time, session_id, outcome_correct, outcome_cost,
                 subject, final_source, overridden
                 FROM decisions WHERE project = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(backend)?;
        let mut rows = st.query(params![after, limit as i64, self.1]).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(backend)? {
            let text = |i: usize| -> Result<String> { r.get::<_, String>(i).map_err(backend) };
            let name = |i: usize| -> Result<Option<&'static str>> {
                Ok(r.get::<_, Option<String>>(i).map_err(backend)?.as_deref().map(column_name))
            };
            out.push(crate::audit::DecisionRow {
                seq: r.get(0).map_err(backend)?,
                id: text(1)?,
                body: text(2)?,
                columns: DecisionColumns {
                    agent: text(3)?,
                    idempotency_key: r.get(4).map_err(backend)?,
                    action_name: text(5)?,
                    confidence: r.get(6).map_err(backend)?,
                    verdict: column_name(&text(7)?),
                    status: column_name(&text(8)?),
                    final_verdict: name(9)?,
                    policy_hash: text(10)?,
                    case_id: r.get(11).map_err(backend)?,
                    trace_id: r.get(12).map_err(backend)?,
                    received_at: r.get(13).map_err(backend)?,
                    event_time: r.get(14).map_err(backend)?,
                    session_id: r.get(15).map_err(backend)?,
                    outcome_correct: r.get(16).map_err(backend)?,
                    outcome_cost: r.get(17).map_err(backend)?,
                    subject: r.get(18).map_err(backend)?,
                    final_source: name(19)?,
                    overridden: r.get(20).map_err(backend)?,
                },
            });
        }
        Ok(out)
    }

    fn cases_after(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, String, String)>> {
        let mut st = self
            .0
            .prepare_cached("SELECT seq, id, body FROM cases WHERE project = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(backend)?;
        let rows = st
            .query_map(params![after, limit as i64, self.1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }

    fn case_events(&mut self, case_id: &str) -> Result<Vec<Event>> {
        load_events(
            self.0,
            concat!("SELECT ", event_cols!(), " FROM events WHERE case_id = ?1 AND project = ?2 ORDER BY seq"),
            params![case_id, self.1],
        )
    }

    fn lesson_events(&mut self) -> Result<Vec<Event>> {
        load_events(
            self.0,
            concat!(
                "SELECT ",
                event_cols!(),
                " FROM events WHERE project = ?1 AND kind IN ('lesson.created', 'lesson.updated') ORDER BY seq"
            ),
            [self.1],
        )
    }

    fn lessons(&mut self) -> Result<Vec<(String, String)>> {
        let mut st =
            self.0.prepare_cached("SELECT id, body FROM lessons WHERE project = ?1 ORDER BY seq").map_err(backend)?;
        let rows = st.query_map([self.1], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
    }
}

#[async_trait]
impl crate::AuditStore for SqliteStore {
    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>> {
        let id = case_id.to_string();
        self.read(move |c, p| {
            load_events(
                c,
                concat!("SELECT ", event_cols!(), " FROM events WHERE case_id = ?1 AND project = ?2 ORDER BY seq"),
                params![id, p],
            )
        })
        .await
    }

    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c, p| {
            load_events(
                c,
                concat!("SELECT ", event_cols!(), " FROM events WHERE project = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after_seq as i64, limit as i64, p],
            )
        })
        .await
    }

    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event> {
        let (kind, actor) = (kind.to_string(), actor.to_string());
        self.write(move |c, p| {
            let e = append_event(c, p, About::NOTHING, &kind, &actor, at, data)?;
            queue_deliveries(c, p, &e)?;
            Ok(e)
        })
        .await
    }

    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport> {
        let project = self.project.clone();
        self.read(move |c, p| {
            // One read transaction: every check sees the same snapshot.
            let tx = c.unchecked_transaction().map_err(backend)?;
            crate::audit::verify(&mut Snapshot(&tx, p), &project, anchor.as_ref())
        })
        .await
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>> {
        self.read(|c, p| {
            c.query_row("SELECT seq, hash FROM events WHERE project = ?1 ORDER BY seq DESC LIMIT 1", [p], |r| {
                Ok(ChainHead { seq: r.get::<_, i64>(0)? as u64, hash: r.get(1)? })
            })
            .optional()
            .map_err(backend)
        })
        .await
    }
}
