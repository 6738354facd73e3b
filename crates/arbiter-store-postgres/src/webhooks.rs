//! Webhooks and their delivery outbox.

use crate::{Sql, Tx, col, corrupt};
use arbiter_core::Timestamp;
use arbiter_store::{
    Delivery, DeliveryAttempt, DeliveryStatus, DueDelivery, Event, Result, StoreError, Webhook, WebhookFormat,
};
use postgres::Row;

/// Queue `e` for every active webhook of the running job's project that
/// wants its kind (the outbox is written in the same transaction as the event).
pub(crate) fn queue_deliveries(t: &mut Tx<'_>, e: &Event) -> Result<()> {
    queue_deliveries_many(t, std::slice::from_ref(e))
}

/// [`queue_deliveries`] for several events, in one statement.
pub(crate) fn queue_deliveries_many(t: &mut Tx<'_>, events: &[Event]) -> Result<()> {
    let p = t.project.clone();
    if !t.hooks.contains_key(&p) {
        let mut hooks = Vec::new();
        for r in t.query("SELECT id, events FROM webhooks WHERE project = $1 AND active", &[&&*p])? {
            let kinds: std::collections::BTreeSet<String> =
                serde_json::from_str(&col::<String>(&r, 1)?).map_err(corrupt)?;
            hooks.push((col::<String>(&r, 0)?, kinds));
        }
        t.hooks.insert(p.clone(), hooks);
    }
    let (mut hook, mut seq, mut kind, mut at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in events {
        for (id, kinds) in &t.hooks[&p] {
            if arbiter_store::rules::webhook_wants(kinds, &e.kind) {
                hook.push(id.clone());
                seq.push(e.seq as i64);
                kind.push(e.kind.clone());
                at.push(e.at.0);
            }
        }
    }
    if !hook.is_empty() {
        t.execute(
            "INSERT INTO webhook_deliveries (webhook_id, event_seq, kind, status, next_attempt_at, created_at)
             SELECT h, s, k, 'pending', a, a FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[]) AS q(h, s, k, a)",
            &[&hook, &seq, &kind, &at],
        )?;
    }
    Ok(())
}

/// The columns of a delivery row, as a literal for `concat!` (SQL text stays static).
macro_rules! delivery_cols {
    () => {
        "d.id, d.webhook_id, d.event_seq, d.kind, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at"
    };
}

/// The columns of a webhook row, as a literal for `concat!`.
macro_rules! webhook_cols {
    () => {
        "w.id, w.url, w.events, w.format, w.secret, w.created_at, w.created_by, w.active, w.project, w.min_severity"
    };
}

fn row_delivery(r: &Row) -> Result<Delivery> {
    let status: String = col(r, 4)?;
    Ok(Delivery {
        id: col::<i64>(r, 0)? as u64,
        webhook_id: col(r, 1)?,
        event_seq: col::<i64>(r, 2)? as u64,
        kind: col(r, 3)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status `{status}`")))?,
        attempts: col::<i64>(r, 5)? as u32,
        next_attempt_at: col::<Option<i64>>(r, 6)?.map(Timestamp),
        last_status: col::<Option<i64>>(r, 7)?.map(|s| s as u16),
        last_error: col(r, 8)?,
        created_at: Timestamp(col(r, 9)?),
        delivered_at: col::<Option<i64>>(r, 10)?.map(Timestamp),
    })
}

fn row_webhook(r: &Row, at: usize) -> Result<Webhook> {
    let format: String = col(r, at + 3)?;
    Ok(Webhook {
        id: col(r, at)?,
        url: col(r, at + 1)?,
        events: serde_json::from_str(&col::<String>(r, at + 2)?).map_err(corrupt)?,
        format: WebhookFormat::parse(&format)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown webhook format `{format}`")))?,
        secret: col(r, at + 4)?,
        created_at: Timestamp(col(r, at + 5)?),
        created_by: col(r, at + 6)?,
        active: col(r, at + 7)?,
        project: arbiter_core::ProjectId::parse(&col::<String>(r, at + 8)?).map_err(StoreError::Corrupt)?,
        min_severity: col::<Option<String>>(r, at + 9)?.map(|s| s.parse().map_err(StoreError::Corrupt)).transpose()?,
    })
}

pub(crate) fn create(t: &mut Tx<'_>, w: &Webhook) -> Result<()> {
    let p = t.project.clone();
    arbiter_store::rules::same_project(&p, &w.project, "webhook")?;
    let events = serde_json::to_string(&w.events).map_err(corrupt)?;
    t.execute(
        "INSERT INTO webhooks (id, url, events, format, secret, created_at, created_by, active, project, min_severity)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &w.id,
            &w.url,
            &events,
            &w.format.as_str(),
            &w.secret,
            &w.created_at.0,
            &w.created_by,
            &w.active,
            &&*p,
            &w.min_severity.map(|s| s.as_str()),
        ],
    )?;
    t.hooks.remove(&p);
    Ok(())
}

pub(crate) fn list(c: &mut impl Sql, p: &str) -> Result<Vec<Webhook>> {
    let sql = concat!("SELECT ", webhook_cols!(), " FROM webhooks w WHERE w.project = $1 ORDER BY w.created_at, w.id");
    c.query(sql, &[&p])?.iter().map(|r| row_webhook(r, 0)).collect()
}

pub(crate) fn delete(t: &mut Tx<'_>, id: &str) -> Result<bool> {
    let p = t.project.clone();
    let n = t.execute("UPDATE webhooks SET active = FALSE WHERE id = $1 AND project = $2 AND active", &[&id, &&*p])?;
    t.hooks.remove(&p);
    Ok(n > 0)
}

/// The advisory lock that keeps two replicas from claiming deliveries at
/// once ("arbiterw" in ASCII); held until the batch commits.
const CLAIM_LOCK: i64 = 0x6172_6269_7465_7277;

/// Take due deliveries of every project: the transaction holds the claim
/// lock, so no other replica claims at the same time.
pub(crate) fn claim_due(
    t: &mut Tx<'_>,
    now: Timestamp,
    lease_ms: i64,
    limit: usize,
    per_webhook: usize,
    in_flight: &std::collections::HashMap<String, usize>,
) -> Result<Vec<DueDelivery>> {
    t.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])?;
    let sql = concat!(
        "SELECT ",
        delivery_cols!(),
        ", ",
        webhook_cols!(),
        ", e.seq, e.case_id, e.decision_id, e.kind, e.actor, e.at, e.data, e.prev_hash, e.hash, q.rn
         FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS rn
               FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1) q
         JOIN webhook_deliveries d ON d.id = q.id JOIN webhooks w ON w.id = d.webhook_id
         JOIN events e ON e.project = w.project AND e.seq = d.event_seq
         WHERE q.rn <= $2 ORDER BY d.next_attempt_at, d.id"
    );
    let rows = t.query(sql, &[&now.0, &(per_webhook as i64)])?;
    let mut out = Vec::new();
    for r in &rows {
        if out.len() >= limit {
            break;
        }
        let delivery = row_delivery(r)?;
        let rank = col::<i64>(r, 30)? as usize;
        if rank + in_flight.get(&delivery.webhook_id).copied().unwrap_or(0) > per_webhook {
            continue;
        }
        let webhook = row_webhook(r, 11)?;
        let event = crate::audit::row_event(r, 21)?;
        out.push(DueDelivery { delivery, webhook, event });
    }
    let until = now.plus_millis(lease_ms);
    let ids: Vec<i64> = out.iter().map(|d| d.delivery.id as i64).collect();
    if !ids.is_empty() {
        t.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2 WHERE id = ANY($1)",
            &[&ids, &until.0],
        )?;
    }
    for d in &mut out {
        d.delivery.attempts += 1;
        d.delivery.next_attempt_at = Some(until);
    }
    Ok(out)
}

pub(crate) fn record_attempt(t: &mut Tx<'_>, id: u64, a: &DeliveryAttempt) -> Result<()> {
    let ok = a.succeeded();
    let (status, next, delivered) = match (ok, a.retry_at) {
        (true, _) => (DeliveryStatus::Delivered, None, Some(a.at.0)),
        (false, Some(t)) => (DeliveryStatus::Pending, Some(t.0), None),
        (false, None) => (DeliveryStatus::Failed, None, None),
    };
    let n = t.execute(
        "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, last_status = $4,
             last_error = $5, delivered_at = $6 WHERE id = $1",
        &[&(id as i64), &status.as_str(), &next, &a.status.map(i64::from), &a.error, &delivered],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("delivery {id}")));
    }
    Ok(())
}

pub(crate) fn deliveries(c: &mut impl Sql, p: &str, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>> {
    let sql = concat!(
        "SELECT ",
        delivery_cols!(),
        " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
          WHERE d.webhook_id = $1 AND w.project = $3 ORDER BY d.id DESC LIMIT $2"
    );
    c.query(sql, &[&webhook_id, &(limit as i64), &p])?.iter().map(row_delivery).collect()
}

#[async_trait::async_trait]
impl arbiter_store::WebhookStore for crate::PostgresStore {
    async fn create_webhook(&self, webhook: Webhook) -> Result<()> {
        self.write(move |t| create(t, &webhook)).await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(list).await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |t| delete(t, &id)).await
    }

    async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
        per_webhook: usize,
        in_flight: std::collections::HashMap<String, usize>,
    ) -> Result<Vec<DueDelivery>> {
        self.write_global(move |t| claim_due(t, now, lease_ms, limit, per_webhook, &in_flight)).await
    }

    async fn record_delivery_attempt(&self, id: u64, attempt: DeliveryAttempt) -> Result<()> {
        self.write_global(move |t| record_attempt(t, id, &attempt)).await
    }

    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>> {
        let id = webhook_id.to_string();
        self.read(move |c, p| deliveries(c, p, &id, limit)).await
    }

    async fn slack_messages(&self, case_id: &str) -> Result<Vec<(String, String)>> {
        let id = case_id.to_string();
        self.read(move |c, p| {
            c.query(
                "SELECT channel, ts FROM slack_messages WHERE project = $1 AND case_id = $2 ORDER BY channel",
                &[&p, &id],
            )?
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect()
        })
        .await
    }

    async fn record_slack_message(&self, case_id: &str, channel: &str, ts: &str) -> Result<()> {
        let (id, channel, ts) = (case_id.to_string(), channel.to_string(), ts.to_string());
        self.write(move |t| {
            let p = t.project.clone();
            t.execute(
                "INSERT INTO slack_messages (project, case_id, channel, ts) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (project, case_id, channel) DO NOTHING",
                &[&&*p, &id, &channel, &ts],
            )?;
            Ok(())
        })
        .await
    }
}
