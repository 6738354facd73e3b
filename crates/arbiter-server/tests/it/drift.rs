use crate::support::TestServer;
use arbiter_core::soc::{DriftMode, Soc, SocConfig};
use arbiter_core::{Clock, Timestamp};
use arbiter_server::jobs::drift::{run_once, status_now};
use serde_json::{Value, json};
use std::time::Duration;

const HOUR: i64 = 3_600_000;

/// A server on the SOC policy with 17 h of simulated SOC traffic, over-isolating
/// from hour 15, replayed with their event times (a server that takes replays:
/// `--event-time-skew off`); the clock at the start of the traffic. Returns (start, drift_at).
async fn over_isolation_history() -> (TestServer, i64, i64) {
    let s = TestServer::with(crate::support::POLICY, |c| c.event_time_skew = None).await;
    let soc_policy = include_str!("../../../../examples/policies/soc.yaml");
    let r = s
        .http
        .put(s.at("/v1/policy"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/yaml")
        .body(soc_policy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let agent = s.loader("soc-triage-agent").await;
    let start = s.clock.now().0;
    let drift_at = 15 * HOUR;
    let proposals = Soc::run(
        SocConfig {
            seed: 3,
            alerts_per_hour: 300.0,
            drift: DriftMode::OverIsolation,
            drift_at_ms: drift_at,
            ..Default::default()
        },
        drift_at + 2 * HOUR,
    );
    let mut tasks = Vec::new();
    for chunk in proposals.chunks(proposals.len() / 8 + 1) {
        let (http, url, agent) = (s.http.clone(), s.at("/v1/decisions"), agent.clone());
        let bodies: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"action": p.action, "trace_id": p.trace_id, "event_time": Timestamp(start + p.offset_ms)}))
            .collect();
        tasks.push(tokio::spawn(async move {
            for b in bodies {
                let r = http.post(&url).bearer_auth(&agent).json(&b).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (s, start, drift_at)
}

/// Replicas share one store: evaluations asked of all of them at once open one
/// review case, because only the holder of the monitor's lease acts on alarms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_evaluating_at_once_open_one_review_case() {
    let (s, start, drift_at) = over_isolation_history().await;
    s.clock.set(Timestamp(start + drift_at + HOUR));
    let mut states = vec![s.state.clone()];
    for _ in 0..2 {
        let config = s.state.config.clone();
        states.push(arbiter_server::AppState::new(s.state.store.clone(), config, s.clock.clone()).await.unwrap());
    }
    let (a, b, c) = tokio::join!(status_now(&states[0]), status_now(&states[1]), status_now(&states[2]));
    let statuses = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert!(statuses.iter().all(|st| st.report.alarms.iter().any(|a| a.action == "isolate_host")));
    let opened: usize = statuses.iter().map(|st| st.opened_reviews.len()).sum();
    let by: Vec<&Vec<String>> = statuses.iter().map(|st| &st.opened_reviews).collect();
    assert_eq!(opened, 1, "one review case, opened by the lease holder: {by:?}");
    let (_, reviews) = s.get(&s.admin, "/v1/cases?kind=review").await;
    assert_eq!(reviews.as_array().unwrap().len(), 1, "{reviews}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_isolation_raises_one_alarm_and_one_review_case() {
    let (s, start, drift_at) = over_isolation_history().await;
    // Before the drift: quiet.
    s.clock.set(Timestamp(start + drift_at));
    let quiet = run_once(&s.state).await.unwrap();
    assert!(quiet.report.alarms.is_empty(), "{:?}", quiet.report.alarms);
    // One hour into the over-isolation: an alarm on isolate_host, and a review case with evidence.
    s.advance(Duration::from_secs(3600));
    let status = run_once(&s.state).await.unwrap();
    assert!(status.report.alarms.iter().any(|a| a.action == "isolate_host"), "{:?}", status.report.alarms);
    assert_eq!(status.opened_reviews.len(), 1, "one review case for the alarm: {:?}", status.opened_reviews);
    let (_, review) = s.get(&s.admin, &format!("/v1/reviews/{}", status.opened_reviews[0])).await;
    assert_eq!(review["case"]["review"]["source"], "drift_alarm");
    assert_eq!(review["case"]["action_name"], "isolate_host");
    assert!(review["case"]["review"]["evidence"]["statistics"]["share"]["rate"].as_f64().unwrap() > 0.0);
    assert_eq!(review["case"]["review"]["evidence"]["sample_decisions"].as_array().unwrap().len(), 10);
    assert_eq!(review["chain"].as_array().unwrap().len(), 10, "the sample decisions are the chain");
    // Evaluating again while the review is open opens nothing new.
    s.advance(Duration::from_secs(900));
    let again = run_once(&s.state).await.unwrap();
    assert!(!again.report.alarms.is_empty());
    assert!(again.opened_reviews.is_empty(), "no duplicate review while one is open");
    // GET /v1/drift shows the latest statistics; the alarms are in the audit log.
    let (code, d) = s.get(&s.admin, "/v1/drift").await;
    assert_eq!(code, 200);
    assert!(d["report"]["classes"].as_array().unwrap().iter().any(|c| c["action"] == "isolate_host"));
    let (_, events) = s.get(&s.admin, "/v1/audit/events?after=0&limit=10000").await;
    let alarms = events.as_array().unwrap().iter().filter(|e| e["kind"] == "drift.alarm").count();
    assert_eq!(alarms, 1, "exactly one drift.alarm event");
    let (_, reviews) = s.get(&s.admin, "/v1/cases?kind=review").await;
    assert_eq!(reviews.as_array().unwrap().len(), 1, "exactly one review case: {reviews}");
}
