//! Background work beside the API, each loop stopping with the server: the
//! policy refresh (replicas converge on the active version), the SLA sweeper,
//! the webhook deliveries, the drift monitor and the rule-suggestion miner
//! (each only when it is on), and the relay that wakes agents waiting here on
//! decisions other replicas made final.

pub mod policy_refresh;
pub mod webhook_delivery;

use crate::AppState;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Run every background job until the server stops.
pub async fn run(state: Arc<AppState>) {
    let refresh = every(state.clone(), state.config.policy_refresh, policy_refresh::run_once);
    let sweep = every(state.clone(), state.config.sweep_interval, |s| {
        each_project(s, |p| async move {
            if let Err(e) = crate::app::sla::sweep_once(&p).await {
                tracing::warn!(project = %p.project(), error = %e, "the SLA sweep failed; retrying");
            }
        })
    });
    let client = webhook_delivery::client(state.config.webhook_timeout, Arc::new(state.config.outbound.clone()));
    let deliver = webhook_delivery::run(state.clone(), client);
    let monitor = async {
        if state.config.drift_interval.is_zero() {
            return; // turned off: no loop at all
        }
        if state.clock_control().is_some() {
            return; // a manual clock: moving it runs the monitor at its due times
        }
        every(state.clone(), state.config.drift_interval, |s| {
            each_project(s, |p| async move {
                if let Err(e) = crate::app::drift::run_if_leader(&p).await {
                    tracing::warn!(project = %p.project(), error = %e, "drift evaluation failed; retrying");
                }
            })
        })
        .await
    };
    let suggest = async {
        if state.config.suggest_interval.is_zero() {
            return;
        }
        every(state.clone(), state.config.suggest_interval, |s| {
            each_project(s, |p| async move {
                match crate::app::learning::refresh_suggestions(&p, None, None).await {
                    Ok(open) => tracing::info!(project = %p.project(), open = open.len(), "mined the review history for rule suggestions"),
                    Err(e) => {
                        e.log();
                        tracing::warn!(project = %p.project(), "mining rule suggestions failed; retrying at the next interval");
                    }
                }
            })
        })
        .await
    };
    let purge = async {
        if state.config.trace_purge_interval.is_zero() {
            return;
        }
        every(state.clone(), state.config.trace_purge_interval, |s| {
            each_project(s, |p| async move {
                match crate::app::traces::purge(&p).await {
                    Ok(n) if n > 0 => tracing::info!(project = %p.project(), spans = n, "purged spans past their retention"),
                    Ok(_) => {}
                    Err(e) => {
                        e.log();
                        tracing::warn!(project = %p.project(), "purging old spans failed; retrying at the next interval");
                    }
                }
            })
        })
        .await
    };
    let export = async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        crate::telemetry::export_loop(state.clone(), client).await
    };
    let relay = relay_finalized(state.clone());
    let slack = async {
        let Some(config) = &state.config.slack else { return };
        every(state.clone(), config.interval, |s| {
            each_project(s, |p| async move {
                if let Err(e) = crate::slack::sync_if_leader(&p).await {
                    tracing::warn!(project = %p.project(), error = %e, "bringing case events to Slack failed; retrying");
                }
            })
        })
        .await
    };
    tokio::join!(refresh, sweep, deliver, monitor, suggest, purge, export, relay, slack);
}

/// Wake the agents waiting here on decisions that another replica made
/// final (the store's feed; nothing to do for a store without one).
async fn relay_finalized(state: Arc<AppState>) {
    let Some(mut feed) = state.store.finalized_feed() else { return };
    let mut stop = state.stopping();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            got = feed.recv() => match got {
                Ok(id) if id == "*" => state.waiters.wake_all(),
                Ok(id) => state.waiters.wake(&id),
                // fell behind: some ids were dropped, so everyone looks again
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => state.waiters.wake_all(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Run `f` for every project in turn (the project list is read each time,
/// so a project created on another replica is picked up at the next run).
async fn each_project<F, Fut>(state: Arc<AppState>, mut f: F)
where
    F: FnMut(Arc<AppState>) -> Fut,
    Fut: Future<Output = ()>,
{
    match state.all_projects().await {
        Ok(projects) => {
            for p in projects {
                f(p).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list the projects; retrying at the next run"),
    }
}

/// Call `f` every `period` until the server stops, on a fixed schedule: each
/// run starts `period` after the start of the one before (a slow run does
/// not push the next ones later; a run longer than `period` is followed at once).
async fn every<F, Fut>(state: Arc<AppState>, period: Duration, mut f: F)
where
    F: FnMut(Arc<AppState>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stop = state.stopping();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => f(state.clone()).await,
        }
    }
}
