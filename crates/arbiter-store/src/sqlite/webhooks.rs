//! Webhooks and their delivery outbox.

use super::*;

/// Queue `e` for every active webhook that wants its kind (the outbox is
/// written in the same transaction as the event).
pub(super) fn queue_deliveries(conn: &Connection, p: &str, e: &Event) -> Result<()> {
    let hooks: Vec<(String, String)> = conn
        .prepare_cached("SELECT id, events FROM webhooks WHERE project = ?1 AND active = 1")
        .map_err(backend)?
        .query_map([p], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)?;
    for (id, events) in hooks {
        let kinds: std::collections::BTreeSet<String> = serde_json::from_str(&events).map_err(corrupt)?;
        if crate::rules::webhook_wants(&kinds, &e.kind) {
            conn.prepare_cached(
                "INSERT INTO webhook_deliveries (webhook_id, event_seq, kind, status, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            )
            .map_err(backend)?
            .execute(params![id, e.seq as i64, e.kind, e.at.0])
            .map_err(backend)?;
        }
    }
    Ok(())
}

/// The columns of a delivery row, as a literal for `concat!` (SQL text stays static).
macro_rules! delivery_cols {
    () => {
        "d.id, d.webhook_id, d.event_seq, d.kind, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at"
    };
}

pub(super) fn row_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = r.get(4)?;
    Ok(Delivery {
        id: r.get::<_, i64>(0)? as u64,
        webhook_id: r.get(1)?,
        event_seq: r.get::<_, i64>(2)? as u64,
        kind: r.get(3)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| unknown_text(4, "delivery status", &status))?,
        attempts: r.get::<_, i64>(5)? as u32,
        next_attempt_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
        last_status: r.get::<_, Option<i64>>(7)?.map(|s| s as u16),
        last_error: r.get(8)?,
        created_at: Timestamp(r.get(9)?),
        delivered_at: r.get::<_, Option<i64>>(10)?.map(Timestamp),
    })
}

/// The columns of a webhook row, as a literal for `concat!` (SQL text stays static).
macro_rules! webhook_cols {
    () => {
        "w.id, w.url, w.events, w.format, w.secret, w.created_at, w.created_by, w.active, w.project, w.min_severity"
    };
}

pub(super) fn row_webhook(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<(Webhook, String, String)> {
    let format: String = r.get(at + 3)?;
    Ok((
        Webhook {
            id: r.get(at)?,
            url: r.get(at + 1)?,
            events: Default::default(),
            format: WebhookFormat::parse(&format).ok_or_else(|| unknown_text(at + 3, "webhook format", &format))?,
            secret: r.get(at + 4)?,
            created_at: Timestamp(r.get(at + 5)?),
            created_by: r.get(at + 6)?,
            active: r.get::<_, i64>(at + 7)? != 0,
            project: Default::default(),
            min_severity: match r.get::<_, Option<String>>(at + 9)? {
                Some(s) => Some(s.parse().map_err(|_| unknown_text(at + 9, "severity", &s))?),
                None => None,
            },
        },
        r.get(at + 2)?,
        r.get(at + 8)?,
    ))
}

pub(super) fn finish_webhook((mut w, events, project): (Webhook, String, String)) -> Result<Webhook> {
    w.events = serde_json::from_str(&events).map_err(corrupt)?;
    w.project = ProjectId::parse(&project).map_err(StoreError::Corrupt)?;
    Ok(w)
}

#[async_trait]
impl crate::WebhookStore for SqliteStore {
    async fn create_webhook(&self, w: Webhook) -> Result<()> {
        self.write(move |c, p| {
            crate::rules::same_project(p, &w.project, "webhook")?;
            let events = serde_json::to_string(&w.events).map_err(corrupt)?;
            let format = w.format.as_str();
            c.execute(
                "INSERT INTO webhooks (id, url, events, format, secret, created_at, created_by, active, project, min_severity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    w.id,
                    w.url,
                    events,
                    format,
                    w.secret,
                    w.created_at.0,
                    w.created_by,
                    w.active,
                    p,
                    w.min_severity.map(|s| s.as_str())
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(|c, p| {
            let mut st = c
                .prepare(concat!(
                    "SELECT ",
                    webhook_cols!(),
                    " FROM webhooks w WHERE w.project = ?1 ORDER BY w.created_at, w.id"
                ))
                .map_err(backend)?;
            let rows = st.query_map([p], |r| row_webhook(r, 0)).map_err(backend)?;
            rows.map(|r| finish_webhook(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c, p| {
            let n = c
                .execute("UPDATE webhooks SET active = 0 WHERE id = ?1 AND project = ?2 AND active = 1", params![id, p])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
        per_webhook: usize,
        in_flight: std::collections::HashMap<String, usize>,
    ) -> Result<Vec<DueDelivery>> {
        // every project's deliveries: one worker sends them all
        self.write(move |c, _| {
            // Oldest first within each webhook, at most `per_webhook` each; the
            // ones in flight use up their webhook's share.
            let sql = concat!("SELECT ", delivery_cols!(), ", ", webhook_cols!(), ", e.seq, e.case_id, e.decision_id, e.kind, e.actor, e.at, e.data, e.prev_hash, e.hash, q.rn
                 FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS rn
                       FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1) q
                 JOIN webhook_deliveries d ON d.id = q.id JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.project = w.project AND e.seq = d.event_seq
                 WHERE q.rn <= ?2 ORDER BY d.next_attempt_at, d.id");
            let mut st = c.prepare_cached(sql).map_err(backend)?;
            let rows = st
                .query_map(params![now.0, per_webhook as i64], |r| {
                    let d = row_delivery(r)?;
                    let w = row_webhook(r, 11)?;
                    let ev = Event {
                        seq: r.get::<_, i64>(21)? as u64,
                        case_id: r.get(22)?,
                        decision_id: r.get(23)?,
                        kind: r.get(24)?,
                        actor: r.get(25)?,
                        at: Timestamp(r.get(26)?),
                        data: serde_json::Value::Null,
                        prev_hash: r.get(28)?,
                        hash: r.get(29)?,
                    };
                    Ok((d, w, ev, r.get::<_, String>(27)?, r.get::<_, i64>(30)? as usize))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (delivery, w, mut event, data, rank) = row.map_err(backend)?;
                if out.len() >= limit {
                    break;
                }
                if rank + in_flight.get(&delivery.webhook_id).copied().unwrap_or(0) > per_webhook {
                    continue;
                }
                event.data = serde_json::from_str(&data).map_err(corrupt)?;
                out.push(DueDelivery { delivery, webhook: finish_webhook(w)?, event });
            }
            drop(st);
            let until = now.plus_millis(lease_ms);
            for d in &mut out {
                c.prepare_cached("UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1")
                    .map_err(backend)?
                    .execute(params![d.delivery.id as i64, until.0])
                    .map_err(backend)?;
                d.delivery.attempts += 1;
                d.delivery.next_attempt_at = Some(until);
            }
            Ok(out)
        })
        .await
    }

    async fn record_delivery_attempt(&self, id: u64, a: DeliveryAttempt) -> Result<()> {
        self.write(move |c, _| {
            let ok = a.succeeded();
            let (status, next, delivered) = match (ok, a.retry_at) {
                (true, _) => (DeliveryStatus::Delivered, None, Some(a.at.0)),
                (false, Some(t)) => (DeliveryStatus::Pending, Some(t.0), None),
                (false, None) => (DeliveryStatus::Failed, None, None),
            };
            let n = c
                .execute(
                    "UPDATE webhook_deliveries SET status = ?2, next_attempt_at = ?3, last_status = ?4,
                     last_error = ?5, delivered_at = ?6 WHERE id = ?1",
                    params![id as i64, status.as_str(), next, a.status.map(i64::from), a.error, delivered],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("delivery {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>> {
        let id = webhook_id.to_string();
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(concat!(
                    "SELECT ",
                    delivery_cols!(),
                    " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                      WHERE d.webhook_id = ?1 AND w.project = ?3 ORDER BY d.id DESC LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = st.query_map(params![id, limit as i64, p], row_delivery).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn slack_messages(&self, case_id: &str) -> Result<Vec<(String, String)>> {
        let id = case_id.to_string();
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT channel, ts FROM slack_messages WHERE project = ?1 AND case_id = ?2 ORDER BY channel",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![p, id], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn record_slack_message(&self, case_id: &str, channel: &str, ts: &str) -> Result<()> {
        let (id, channel, ts) = (case_id.to_string(), channel.to_string(), ts.to_string());
        self.write(move |c, p| {
            c.execute(
                "INSERT INTO slack_messages (project, case_id, channel, ts) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project, case_id, channel) DO NOTHING",
                params![p, id, channel, ts],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
