//! Drift monitoring, run by the server: every `drift_interval` the
//! sequential tests of `arbiter_core::drift` run over the decisions (against
//! the same hour on earlier days, or the recent reference while history is
//! short), and their alarms live as **episodes**: each starts with one review
//! case (the evidence attached for contextual analysis), is updated when its
//! evidence doubles and ends once quiet; start, update and end are
//! `drift.episode.*` events in the audit log. People acknowledge, snooze and
//! restart the reference of an episode (`acknowledge`).

use crate::{ApiError, AppState};
pub use arbiter_api::drift::DriftStatus;
use arbiter_core::drift::episode::{self, Change, Episode};
use arbiter_core::drift::{self, Monitor};
use arbiter_core::review::{Review, ReviewSource};
use arbiter_core::{Case, Principal, Severity, Timestamp};
use arbiter_store::{EventRecord, StoreError};
use serde_json::json;

/// Who acts for the monitor in the audit log.
const ACTOR: &str = "drift-monitor";

/// Who works a drift review: the review team, and the reviewers the active
/// policy names for that action class (they know what normal looks like).
fn drift_reviewers(state: &AppState, action: &str) -> std::collections::BTreeSet<String> {
    let mut roles: std::collections::BTreeSet<String> =
        arbiter_core::review::DEFAULT_REVIEWERS.iter().map(|r| r.to_string()).collect();
    if let Some(p) = state.policy() {
        roles.extend(p.class_config(action).escalation.reviewers.iter().cloned());
    }
    roles
}

/// The lease the drift monitor of the default project holds while it evaluates.
pub const LEASE: &str = "drift-monitor";

/// The lease of `project`'s drift monitor (each project's is evaluated by one replica).
pub fn lease(project: &arbiter_core::ProjectId) -> String {
    if project.is_default() { LEASE.to_string() } else { format!("{LEASE}:{project}") }
}

/// How long the monitor's lease lasts: past the next evaluation, so the
/// holder keeps it while it runs; a replica that dies hands over within this.
pub fn lease_ms(interval: std::time::Duration) -> i64 {
    (2 * interval.as_millis() as i64).max(10_000) + 10_000
}

/// Evaluate drift if this replica holds the monitor's lease (one replica
/// evaluates; another takes over within [`lease_ms`] if it dies). `None` when another holds it.
pub async fn run_if_leader(state: &AppState) -> Result<Option<DriftStatus>, ApiError> {
    let now = state.clock.now();
    let name = lease(state.project());
    if !state.store.acquire_lease(&name, &state.instance, now, lease_ms(state.config.drift_interval)).await? {
        return Ok(None);
    }
    run_once(state).await.map(Some)
}

/// The drift status now, for `GET /v1/drift` on a replica that has none yet:
/// evaluated and acted on when this replica takes the monitor's lease;
/// otherwise only evaluated (the lease holder records alarms and opens the
/// cases, so several replicas asked at once never open a case twice).
pub async fn status_now(state: &AppState) -> Result<DriftStatus, ApiError> {
    match run_if_leader(state).await? {
        Some(s) => Ok(s),
        None => evaluate(state, false).await,
    }
}

/// Evaluate drift now; record alarms and open review cases. Returns the status.
pub async fn run_once(state: &AppState) -> Result<DriftStatus, ApiError> {
    evaluate(state, true).await
}

/// Evaluate drift now; with `act`, apply the episode changes (open cases, record events).
async fn evaluate(state: &AppState, act: bool) -> Result<DriftStatus, ApiError> {
    let cfg = state.config.drift.clone();
    let now = state.clock.now();
    let cur_from = now.plus_millis(-cfg.window_ms);
    let ref_from = cur_from.plus_millis(-cfg.reference_ms);
    // restarts are read from the recent episodes: one older than the seasonal reach no longer matters
    let recent = state.store.drift_episodes(false, 1000).await?;
    let mut open: Vec<Episode> = state.store.drift_episodes(true, 1000).await?;
    let restarts = episode::restarts(&recent);
    // live decisions at their receipt, replays at their event time (see `monitor_time`)
    let live_within = state.config.event_time_skew.unwrap_or(crate::DEFAULT_EVENT_TIME_SKEW).as_millis() as i64;
    let points = state.store.drift_points(Timestamp(drift::reach(now.0, &cfg)), now, live_within).await?;
    let timed: Vec<drift::Timed> = points
        .iter()
        .map(|p| drift::Timed { at: p.at.0, point: p.point.clone(), labelled_at: p.point.correct.map(|_| now.0) })
        .collect();
    let report = drift::evaluate(&mut Monitor::new(cfg.clone()), &timed, now.0, &restarts);
    let mut opened = Vec::new();
    if act {
        let changes =
            episode::step(&open, &report.tests, now, cfg.episode_quiet_ms, || uuid::Uuid::now_v7().to_string());
        for change in changes {
            let mut e = change.episode().clone();
            if let Change::Started(_) = change {
                let case = open_review(state, &e, &report, &points, (ref_from, cur_from, now)).await?;
                opened.push(case.clone());
                e.case_id = Some(case);
            }
            let event = change.event_kind().map(|kind| EventRecord {
                kind: kind.to_string(),
                actor: ACTOR.to_string(),
                at: now,
                data: episode_event(&e),
            });
            match state.store.save_drift_episode(e, event).await {
                Ok(saved) => episode::apply(&mut open, saved),
                // someone acknowledged it meanwhile: the next evaluation starts from theirs
                Err(StoreError::Conflict(m)) => tracing::info!("drift episode not updated: {m}"),
                Err(err) => return Err(err.into()),
            }
        }
        open.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| a.id.cmp(&b.id)));
    }
    let status = DriftStatus {
        evaluated_at: now,
        window: (cur_from, now),
        reference: (ref_from, cur_from),
        config: cfg,
        report,
        opened_reviews: opened,
        episodes: open,
    };
    state.set_drift_status(status.clone());
    Ok(status)
}

/// What an episode's audit event says.
fn episode_event(e: &Episode) -> serde_json::Value {
    json!({
        "episode": e.id,
        "action": e.action,
        "kind": e.kind.as_str(),
        "direction": e.direction.as_str(),
        "case": e.case_id,
        "started_at": e.started_at,
        "ended_at": e.ended_at,
        "end_reason": e.end_reason,
        "summary": e.test.summary(),
        "test": e.test,
        "peak_statistic": e.peak_statistic,
    })
}

/// Open the review case of a new episode; returns its id.
async fn open_review(
    state: &AppState,
    e: &Episode,
    report: &drift::DriftReport,
    points: &[arbiter_store::DriftPoint],
    (ref_from, cur_from, now): (Timestamp, Timestamp, Timestamp),
) -> Result<String, ApiError> {
    let summary = e.test.summary();
    let samples: Vec<String> = points
        .iter()
        .rev()
        .filter(|p| p.at >= cur_from && p.point.action == e.action)
        .take(10)
        .map(|p| p.decision_id.clone())
        .collect();
    let evidence = json!({
        "episode": e.id,
        "alarm": {"action": e.action, "kind": e.kind.as_str(), "direction": e.direction.as_str(), "summary": summary},
        "test": e.test,
        "statistics": report.classes.iter().find(|c| c.action == e.action),
        "window": {"from": cur_from, "to": now, "decisions": report.decisions},
        "reference": {"from": ref_from, "to": cur_from, "decisions": report.reference_decisions},
        "config": state.config.drift,
        "sample_decisions": samples,
    });
    let mut review = Review::new(format!("Drift: {summary}"), ReviewSource::DriftAlarm);
    review.description = format!(
        "Opened automatically by the drift monitor at {now}: the {} test on `{}` fired against {}. \
         Its evidence, the recent window's statistics and sample decisions are attached. Acknowledge the episode \
         ({}) with what you find; after an intervention, restart the class's reference at its activation.",
        e.test.test, e.action, e.test.baseline.description, e.id
    );
    review.decision_ids = samples;
    review.evidence = evidence;
    let case = Case::new_review(
        uuid::Uuid::now_v7().to_string(),
        review,
        e.action.clone(),
        String::new(),
        Severity::High,
        drift_reviewers(state, &e.action),
        now,
    );
    let case = state.store.open_case(case, ACTOR).await?;
    tracing::warn!(action = %e.action, kind = e.kind.as_str(), review = %case.id, episode = %e.id, "drift alarm: {summary}");
    Ok(case.id)
}

/// Acknowledge an episode (reviewers and admins): a reason, optionally a
/// snooze and a restart of the class's reference; recorded as
/// `drift.episode.acknowledged` (and `drift.episode.ended` when it restarts the reference).
pub async fn acknowledge(
    state: &AppState,
    who: &Principal,
    id: &str,
    req: arbiter_api::drift::AcknowledgeRequest,
) -> Result<Episode, ApiError> {
    let now = state.clock.now();
    let e = state.store.drift_episode(id).await?.ok_or_else(|| ApiError::NotFound(format!("drift episode {id}")))?;
    let ack = episode::Acknowledge {
        by: who.name.clone(),
        reason: req.reason,
        snooze_ms: req.snooze.map(|d| d.as_millis()),
        restart_at: req.restart_at,
    };
    let next = episode::acknowledge(&e, ack, now).map_err(|err| match err {
        episode::AcknowledgeError::Ended(..) => ApiError::Conflict(err.to_string()),
        episode::AcknowledgeError::NoReason => ApiError::Invalid { field: "reason".into(), message: err.to_string() },
        episode::AcknowledgeError::RestartOutOfRange { .. } => {
            ApiError::Invalid { field: "restart_at".into(), message: err.to_string() }
        }
    })?;
    let last = next.acknowledgements.last().cloned();
    let mut data = episode_event(&next);
    data["acknowledgement"] = json!(last);
    let kind = if next.is_open() { "drift.episode.acknowledged" } else { "drift.episode.ended" };
    let event = EventRecord { kind: kind.into(), actor: who.key_id.clone(), at: now, data };
    Ok(state.store.save_drift_episode(next, Some(event)).await?)
}
