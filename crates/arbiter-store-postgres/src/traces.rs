//! Spans of agents' runs, each kept for the principal that sent it.

use crate::{Sql, Tx, col, corrupt, load_bodies};
use arbiter_core::Timestamp;
use arbiter_core::trace::Span;
use arbiter_store::Result;

pub(crate) fn insert_spans(t: &mut Tx<'_>, p: &str, sender: &str, spans: &[Span], at: Timestamp) -> Result<u64> {
    let mut written = 0;
    for s in spans {
        let s = Span { sender: Some(sender.to_string()), ..s.clone() };
        let body = serde_json::to_string(&s).map_err(corrupt)?;
        // a span stored for another sender (or project) is never replaced (the WHERE leaves it alone)
        written += t.execute(
            "INSERT INTO spans (trace_id, span_id, start_ns, received_at, tool_call_id, body, sender, project)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (trace_id, span_id) DO UPDATE SET start_ns = EXCLUDED.start_ns, received_at = EXCLUDED.received_at,
                 tool_call_id = EXCLUDED.tool_call_id, body = EXCLUDED.body
             WHERE spans.sender = EXCLUDED.sender AND spans.project = EXCLUDED.project",
            &[&s.trace_id, &s.span_id, &s.start_ns, &at.0, &s.tool_call_id(), &body, &sender, &p],
        )?;
    }
    Ok(written)
}

pub(crate) fn trace_spans(
    c: &mut impl Sql,
    p: &str,
    trace_id: &str,
    sender: Option<&str>,
    limit: usize,
) -> Result<Vec<Span>> {
    load_bodies(
        c,
        "SELECT body FROM spans WHERE trace_id = $1 AND project = $4 AND ($2::TEXT IS NULL OR sender = $2)
         ORDER BY start_ns, span_id LIMIT $3",
        &[&trace_id.to_ascii_lowercase(), &sender, &(limit as i64), &p],
    )
}

pub(crate) fn trace_of_tool_call(c: &mut impl Sql, p: &str, sender: &str, id: &str) -> Result<Option<String>> {
    c.query_opt(
        "SELECT trace_id FROM spans WHERE tool_call_id = $1 AND sender = $2 AND project = $3
         ORDER BY received_at DESC LIMIT 1",
        &[&id, &sender, &p],
    )?
    .map(|r| col(&r, 0))
    .transpose()
}

pub(crate) fn purge_spans(t: &mut Tx<'_>, p: &str, before: Timestamp, keep: &[String]) -> Result<u64> {
    let keep: Vec<String> = keep.iter().map(|k| k.to_ascii_lowercase()).collect();
    t.execute(
        "DELETE FROM spans WHERE project = $3 AND received_at < $1 AND NOT (trace_id = ANY($2))",
        &[&before.0, &keep, &p],
    )
}

#[async_trait::async_trait]
impl arbiter_store::TraceStore for crate::PostgresStore {
    async fn insert_spans(&self, sender: &str, spans: Vec<Span>, at: Timestamp) -> Result<u64> {
        let (sender, p) = (sender.to_string(), self.project.shared());
        // spans are not chained: no project's chain head is taken for them
        self.write_global(move |t| insert_spans(t, &p, &sender, &spans, at)).await
    }

    async fn trace_spans(&self, trace_id: &str, sender: Option<&str>, limit: usize) -> Result<Vec<Span>> {
        let (id, sender) = (trace_id.to_string(), sender.map(str::to_string));
        self.read(move |c, p| trace_spans(c, p, &id, sender.as_deref(), limit)).await
    }

    async fn trace_of_tool_call(&self, sender: &str, tool_call_id: &str) -> Result<Option<String>> {
        let (sender, id) = (sender.to_string(), tool_call_id.to_string());
        self.read(move |c, p| trace_of_tool_call(c, p, &sender, &id)).await
    }

    async fn purge_spans(&self, before: Timestamp, keep: Vec<String>) -> Result<u64> {
        let p = self.project.shared();
        self.write_global(move |t| purge_spans(t, &p, before, &keep)).await
    }
}
