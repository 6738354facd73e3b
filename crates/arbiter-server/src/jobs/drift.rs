//! Drift monitoring, run by the server: every `drift_interval` the recent
//! window of decisions is compared with the reference window before it
//! (`arbiter_core::drift`). Each alarm is recorded as a `drift.alarm` event
//! and opens one review case per action class and alarm kind — none while
//! one is still open — with the evidence attached for contextual analysis.

use crate::{ApiError, AppState};
pub use arbiter_api::drift::DriftStatus;
use arbiter_core::drift::{self, Alarm};
use arbiter_core::review::{Review, ReviewSource};
use arbiter_core::{Case, CaseKind, CaseState, Severity, Timestamp};
use arbiter_store::CaseFilter;
use serde_json::json;

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

fn already_open(cases: &[Case], alarm: &Alarm) -> bool {
    cases.iter().any(|c| {
        c.review.as_ref().is_some_and(|r| {
            r.source == ReviewSource::DriftAlarm
                && r.evidence["alarm"]["action"] == alarm.action
                && r.evidence["alarm"]["kind"] == alarm.kind.as_str()
        })
    })
}

/// The lease the drift monitor holds while it evaluates.
pub const LEASE: &str = "drift-monitor";

/// How long the monitor's lease lasts: past the next evaluation, so the
/// holder keeps it while it runs; a replica that dies hands over within this.
pub fn lease_ms(interval: std::time::Duration) -> i64 {
    (2 * interval.as_millis() as i64).max(10_000) + 10_000
}

/// Evaluate drift if this replica holds the monitor's lease (one replica
/// evaluates; another takes over within [`lease_ms`] if it dies). `None` when another holds it.
pub async fn run_if_leader(state: &AppState) -> Result<Option<DriftStatus>, ApiError> {
    let now = state.clock.now();
    if !state.store.acquire_lease(LEASE, &state.instance, now, lease_ms(state.config.drift_interval)).await? {
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

/// Evaluate drift now; with `act`, record alarms and open review cases.
async fn evaluate(state: &AppState, act: bool) -> Result<DriftStatus, ApiError> {
    let cfg = state.config.drift.clone();
    let now = state.clock.now();
    let cur_from = now.plus_millis(-cfg.window_ms);
    let ref_from = cur_from.plus_millis(-cfg.reference_ms);
    let points = state.store.drift_points(Timestamp(drift::reach(now.0, &cfg)), now).await?;
    let split = points.partition_point(|p| p.at < cur_from);
    let timed: Vec<drift::Timed> = points
        .iter()
        .map(|p| drift::Timed { at: p.at.0, point: p.point.clone(), labelled_at: p.point.correct.map(|_| now.0) })
        .collect();
    let report = drift::evaluate(&mut drift::Monitor::new(cfg.clone()), &timed, now.0, &Default::default());
    let mut opened = Vec::new();
    if act && !report.alarms.is_empty() {
        let open_reviews = state
            .store
            .cases(CaseFilter {
                kind: Some(CaseKind::Review),
                states: vec![CaseState::Open, CaseState::Claimed],
                limit: 1000,
            })
            .await?;
        for alarm in &report.alarms {
            if already_open(&open_reviews, alarm) {
                continue;
            }
            let stats = report.classes.iter().find(|c| c.action == alarm.action);
            let samples: Vec<String> = points[split..]
                .iter()
                .rev()
                .filter(|p| p.point.action == alarm.action)
                .take(10)
                .map(|p| p.decision_id.clone())
                .collect();
            let evidence = json!({
                "alarm": {"action": alarm.action, "kind": alarm.kind.as_str(), "summary": alarm.summary},
                "statistics": stats,
                "window": {"from": cur_from, "to": now, "decisions": report.decisions},
                "reference": {"from": ref_from, "to": cur_from, "decisions": report.reference_decisions},
                "config": cfg,
                "sample_decisions": samples,
            });
            state.store.record_event("drift.alarm", "drift-monitor", now, evidence.clone()).await?;
            let mut review = Review::new(format!("Drift: {}", alarm.summary), ReviewSource::DriftAlarm);
            review.description = format!(
                "Opened automatically by the drift monitor at {now}. Compare the recent window ({cur_from} to {now}) with the reference before it; the evidence and sample decisions are attached."
            );
            review.decision_ids = samples;
            review.evidence = evidence;
            let case = Case::new_review(
                uuid::Uuid::now_v7().to_string(),
                review,
                alarm.action.clone(),
                String::new(),
                Severity::High,
                drift_reviewers(state, &alarm.action),
                now,
            );
            let case = state.store.open_case(case, "drift-monitor").await?;
            tracing::warn!(action = %alarm.action, kind = alarm.kind.as_str(), review = %case.id, "drift alarm: {}", alarm.summary);
            opened.push(case.id);
        }
    }
    let status = DriftStatus {
        evaluated_at: now,
        window: (cur_from, now),
        reference: (ref_from, cur_from),
        config: cfg,
        report,
        opened_reviews: opened,
    };
    *state.drift_status.write().unwrap_or_else(|e| e.into_inner()) = Some(status.clone());
    Ok(status)
}
