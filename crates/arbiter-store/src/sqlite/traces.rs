//! Spans: the agents' OpenTelemetry runs, stored by (trace, span) id, read per
//! trace, found by tool call id, and purged by age.

use super::*;
use arbiter_core::trace::Span;

#[async_trait]
impl crate::TraceStore for SqliteStore {
    async fn insert_spans(&self, sender: &str, spans: Vec<Span>, at: Timestamp) -> Result<u64> {
        let sender = sender.to_string();
        self.write(move |c, p| {
            // a span stored for another sender (or project) is never replaced:
            // the WHERE leaves the row alone and the statement changes nothing
            let mut st = c
                .prepare_cached(
                    "INSERT INTO spans (trace_id, span_id, start_ns, received_at, tool_call_id, body, sender, project)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (trace_id, span_id) DO UPDATE SET start_ns = ?3, received_at = ?4,
                         tool_call_id = ?5, body = ?6
                     WHERE spans.sender = ?7 AND spans.project = ?8",
                )
                .map_err(backend)?;
            let mut written = 0u64;
            for s in spans {
                let s = Span { sender: Some(sender.clone()), ..s };
                let body = serde_json::to_string(&s).map_err(corrupt)?;
                written += st
                    .execute(params![s.trace_id, s.span_id, s.start_ns, at.0, s.tool_call_id(), body, sender, p])
                    .map_err(backend)? as u64;
            }
            Ok(written)
        })
        .await
    }

    async fn trace_spans(&self, trace_id: &str, sender: Option<&str>, limit: usize) -> Result<Vec<Span>> {
        let trace_id = trace_id.to_ascii_lowercase();
        let sender = sender.map(str::to_string);
        self.read(move |c, p| {
            load_bodies(
                c,
                "SELECT body FROM spans WHERE trace_id = ?1 AND project = ?4 AND (?2 IS NULL OR sender = ?2)
                 ORDER BY start_ns, span_id LIMIT ?3",
                params![trace_id, sender, limit as i64, p],
            )
        })
        .await
    }

    async fn trace_of_tool_call(&self, sender: &str, tool_call_id: &str) -> Result<Option<String>> {
        let (sender, id) = (sender.to_string(), tool_call_id.to_string());
        self.read(move |c, p| {
            c.prepare_cached(
                "SELECT trace_id FROM spans WHERE tool_call_id = ?1 AND sender = ?2 AND project = ?3
                 ORDER BY received_at DESC LIMIT 1",
            )
            .map_err(backend)?
            .query_row([id.as_str(), sender.as_str(), p], |r| r.get(0))
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn purge_spans(&self, before: Timestamp, keep: Vec<String>) -> Result<u64> {
        self.write(move |c, p| {
            c.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS keep_traces (trace_id TEXT PRIMARY KEY); DELETE FROM keep_traces;",
            )
            .map_err(backend)?;
            {
                let mut st =
                    c.prepare_cached("INSERT OR IGNORE INTO keep_traces (trace_id) VALUES (?1)").map_err(backend)?;
                for t in &keep {
                    st.execute([t.to_ascii_lowercase()]).map_err(backend)?;
                }
            }
            let n = c
                .execute(
                    "DELETE FROM spans WHERE project = ?2 AND received_at < ?1
                     AND trace_id NOT IN (SELECT trace_id FROM keep_traces)",
                    params![before.0, p],
                )
                .map_err(backend)?;
            c.execute_batch("DELETE FROM keep_traces;").map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}
