//! The simulated day, minute by minute: the agent proposes what arrived,
//! outcome labels come in 30 minutes after each proposal, the reviewer pool
//! works its queues, and the time-driven jobs (SLA sweeper, drift monitor)
//! run as the server would run them.

use super::reviewers::Pool;
use super::{HOUR, MIN, hhmm};
use crate::client::Client;
use crate::embedded::Embedded;
use anyhow::{Context, Result};
use arbiter_api::decisions::{DecisionRequest, OutcomeRequest};
use arbiter_core::drift::AlarmKind;
use arbiter_core::{ManualClock, Timestamp, Verdict};
use arbiter_tuning::soc::Proposal;
use futures_util::future::join_all;
use serde_json::json;
use std::collections::{BTreeMap, VecDeque};

/// How long after a proposal its outcome label arrives.
const LABEL_DELAY: i64 = 30 * MIN;
/// How often the demo runs the drift monitor.
const DRIFT_EVERY: i64 = 15 * MIN;

/// The replay's frame. Times are ms from the demo's first instant `start`.
pub struct Day {
    /// The demo's first instant.
    pub start: Timestamp,
    /// When this day begins, ms from `start` (the proposals' offsets count from here).
    pub begins: i64,
    /// Its length, ms.
    pub total: i64,
    /// When the drift starts, ms from `start`.
    pub drift_at: i64,
    /// The day's seed (part of every idempotency key).
    pub seed: u64,
}

/// A drift alarm, the first time the demo saw it.
pub struct SeenAlarm {
    /// When, ms from the start.
    pub at: i64,
    /// The action class.
    pub action: String,
    /// What drifted.
    pub kind: AlarmKind,
    /// The monitor's one-line summary.
    pub summary: String,
}

/// What the replay saw.
#[derive(Default)]
pub struct Summary {
    /// Decisions by verdict.
    pub by_verdict: BTreeMap<Verdict, u64>,
    /// (escalated, all) before the drift.
    pub escalated_before: (u64, u64),
    /// (escalated, all) from the drift on.
    pub escalated_after: (u64, u64),
    /// Drift alarms in the order they were first raised.
    pub alarms: Vec<SeenAlarm>,
    /// Review cases the drift monitor opened.
    pub reviews: Vec<String>,
    /// Wrong isolations the policy let run without a person: (before the drift, from it on).
    pub harmful_isolations: (u64, u64),
    /// Ids of the wrong isolations that ran unreviewed after the drift, oldest first (at most 50).
    pub harmful_ids: Vec<String>,
    /// Hosts they isolated.
    pub harmful_hosts: Vec<String>,
}

impl Day {
    /// Replay `proposals` through the server, moving `clock` a minute at a time.
    pub async fn replay(
        &self,
        server: &Embedded,
        clock: &ManualClock,
        agent: &Client,
        proposals: &[Proposal],
        pool: &mut Pool,
    ) -> Result<Summary> {
        let mut summary = Summary::default();
        // (due at, decision id, was the action right?)
        let mut labels: VecDeque<(i64, String, bool)> = VecDeque::new();
        let mut next = 0usize;
        let mut t = self.begins;
        let end_of_day = self.begins + self.total;
        while t < end_of_day {
            clock.set(Timestamp(self.start.0 + t));
            // 1. the agent proposes what arrived this minute
            let end = next + proposals[next..].partition_point(|p| self.begins + p.offset_ms < t + MIN);
            let batch = &proposals[next..end];
            next = end;
            let answers = join_all(batch.iter().map(|p| {
                let req = DecisionRequest {
                    action: p.action.clone(),
                    trace_id: Some(p.trace_id.clone()),
                    context: Some(json!({"alert_id": p.alert_id})),
                    event_time: Some(Timestamp(self.start.0 + self.begins + p.offset_ms)),
                };
                let idempotency_key = format!("{}-{}", p.alert_id, self.seed);
                async move { agent.propose(&req, Some(&idempotency_key)).await }
            }))
            .await;
            for (p, answer) in batch.iter().zip(answers) {
                let d = answer.context("the agent's proposal failed")?;
                *summary.by_verdict.entry(d.verdict).or_default() += 1;
                let after_drift = self.begins + p.offset_ms >= self.drift_at;
                if p.action.name == "isolate_host" && !p.correct && d.verdict == Verdict::Allow {
                    if after_drift {
                        summary.harmful_isolations.1 += 1;
                        if summary.harmful_ids.len() < 50 {
                            summary.harmful_ids.push(d.id.clone());
                            summary.harmful_hosts.extend(p.action.args["host"].as_str().map(str::to_string));
                        }
                    } else {
                        summary.harmful_isolations.0 += 1;
                    }
                }
                let slot = if !after_drift { &mut summary.escalated_before } else { &mut summary.escalated_after };
                slot.1 += 1;
                if d.verdict == Verdict::Escalate {
                    slot.0 += 1;
                    if let Some(case) = d.case_id {
                        pool.expect(case, p.correct, p.action.args.clone());
                    }
                }
                labels.push_back((self.begins + p.offset_ms + LABEL_DELAY, d.id, p.correct));
            }
            // 2. outcome labels arrive
            let mut due = Vec::new();
            while labels.front().is_some_and(|(at, _, _)| *at <= t) {
                due.extend(labels.pop_front());
            }
            for r in join_all(due.iter().map(|(_, id, correct)| async move {
                let label = if *correct { "confirmed" } else { "wrong_action" };
                agent
                    .report_outcome(
                        id,
                        &OutcomeRequest { correct: *correct, cost: None, label: Some(label.into()), note: None },
                    )
                    .await
            }))
            .await
            {
                r.context("posting an outcome label failed")?;
            }
            // 3. reviewers finish and pick up work from their queues
            pool.work(t).await?;
            // 4. time-driven work: SLA tiers and fallbacks, the drift monitor
            arbiter_server::app::sla::sweep_once(&server.state).await?;
            if t % DRIFT_EVERY == 0 && t > self.begins {
                let status = arbiter_server::app::drift::run_once(&server.state).await?;
                for a in status.report.alarms {
                    if !summary.alarms.iter().any(|x| x.action == a.action && x.kind == a.kind) {
                        println!("[{}] drift alarm: {}", hhmm(t), a.summary);
                        summary.alarms.push(SeenAlarm { at: t, action: a.action, kind: a.kind, summary: a.summary });
                    }
                }
                for id in status.opened_reviews {
                    println!("[{}] review case: {id} opened with the evidence attached", hhmm(t));
                    summary.reviews.push(id);
                }
            }
            if t % (4 * HOUR) == 0 {
                println!("[{}] {} proposals so far", hhmm(t), next);
            }
            t += MIN;
        }
        // the labels still due arrive with the day's end
        for (_, id, correct) in labels {
            let label = if correct { "confirmed" } else { "wrong_action" };
            let req = OutcomeRequest { correct, cost: None, label: Some(label.into()), note: None };
            agent.report_outcome(&id, &req).await.context("posting an outcome label failed")?;
        }
        clock.set(Timestamp(self.start.0 + end_of_day));
        arbiter_server::app::sla::sweep_once(&server.state).await?;
        Ok(summary)
    }
}
