use crate::support::TestServer;
use arbiter_core::{Clock, Timestamp};
use arbiter_server::app::drift::{run_once, status_now};
use arbiter_tuning::soc::{DriftMode, Soc, SocConfig};
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

/// Replicas share one store: evaluations asked of all of them at once open
/// one review case per episode, because only the holder of the monitor's lease acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_evaluating_at_once_open_one_review_case_per_episode() {
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
    let (_, episodes) = s.get(&s.admin, "/v1/drift/episodes").await;
    let episodes = episodes["episodes"].as_array().unwrap().clone();
    assert!(!episodes.is_empty());
    assert_eq!(opened, episodes.len(), "one review case per episode, opened by the lease holder");
    let (_, reviews) = s.get(&s.admin, "/v1/cases?kind=review").await;
    assert_eq!(reviews.as_array().unwrap().len(), episodes.len(), "{reviews}");
}

async fn events_of(s: &TestServer, kind: &str) -> Vec<Value> {
    let (_, events) = s.get(&s.admin, "/v1/audit/events?after=0&limit=10000").await;
    events.as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_isolation_is_an_episode_with_one_review_case_until_its_reference_restarts() {
    let (s, start, drift_at) = over_isolation_history().await;
    // Before the drift: quiet.
    s.clock.set(Timestamp(start + drift_at));
    let quiet = run_once(&s.state).await.unwrap();
    assert!(quiet.report.alarms.is_empty(), "{:?}", quiet.report.alarms);
    // One hour into the over-isolation: an episode on isolate_host's share, with a review case and its evidence.
    s.advance(Duration::from_secs(3600));
    let status = run_once(&s.state).await.unwrap();
    let alarm = status.report.alarms.iter().find(|a| a.action == "isolate_host" && a.kind.as_str() == "share").unwrap();
    assert_eq!(alarm.test.test, "bernoulli_cusum");
    assert!(alarm.test.statistic >= alarm.test.threshold && alarm.test.p_value < 1.0);
    assert!(alarm.test.false_alarms_per_week > 0.0);
    assert!(
        alarm.summary.contains("CUSUM") && alarm.summary.contains("expected from the 12.0 h before"),
        "{}",
        alarm.summary
    );
    let episode = status.episodes.iter().find(|e| e.action == "isolate_host" && e.kind.as_str() == "share").unwrap();
    assert_eq!(status.opened_reviews.len(), status.episodes.len(), "one review case per episode");
    let case = episode.case_id.clone().unwrap();
    let (_, review) = s.get(&s.admin, &format!("/v1/reviews/{case}")).await;
    assert_eq!(review["case"]["review"]["source"], "drift_alarm");
    assert_eq!(review["case"]["action_name"], "isolate_host");
    let evidence = &review["case"]["review"]["evidence"];
    assert_eq!(evidence["episode"], episode.id.as_str());
    assert_eq!(evidence["test"]["test"], "bernoulli_cusum");
    assert!(evidence["test"]["baseline"]["description"].as_str().unwrap().contains(" h before "), "{evidence}");
    assert!(evidence["statistics"]["share"]["rate"].as_f64().unwrap() > 0.0);
    assert_eq!(evidence["sample_decisions"].as_array().unwrap().len(), 10);
    assert_eq!(review["chain"].as_array().unwrap().len(), 10, "the sample decisions are the chain");
    // The team works the review through its stages and closes it while the drift goes on (the
    // outside evaluation's repro: each closed review was followed by a new one for the same ramp).
    let eng = s.key("eve", "reviewer", &["engineering", "soc_analyst"]).await;
    for body in [
        json!({"stage": "contextual_analysis", "reproduced": "yes", "steps": ["replayed the last hour"], "environment": "staging"}),
        json!({"stage": "trace_inspection", "findings": [{"decision_id": evidence["sample_decisions"][0], "kind": "misread_intent", "note": "isolates on benign alerts"}]}),
        json!({"stage": "impact_assessment", "severity": "S2", "scope": {"count": 10, "entities": []}, "technical_correctness": "wrong action", "user_experience": "hosts offline"}),
        json!({"stage": "resolution_design", "interventions": [
            {"kind": "prompt_refinement", "description": "Isolate only on confirmed malware.", "owner": "eve", "expected_effect": "fewer isolations"}]}),
    ] {
        let mut body = body;
        body["role"] = json!("engineering");
        body["rationale"] = json!("from the drift evidence");
        let (code, e) = s.post(&eng, &format!("/v1/reviews/{case}/stages"), body).await;
        assert_eq!(code, 201, "{e}");
    }
    let (code, e) = s.post(&eng, &format!("/v1/reviews/{case}/interventions/0"), json!({"status": "done"})).await;
    assert_eq!(code, 200, "{e}");
    let (code, e) =
        s.post(&eng, &format!("/v1/reviews/{case}/close"), json!({"reason": "the prompt is being changed"})).await;
    assert_eq!(code, 200, "{e}");
    // Evaluating again while the drift goes on continues the episodes: nothing new opens.
    s.advance(Duration::from_secs(900));
    let again = run_once(&s.state).await.unwrap();
    assert!(!again.report.alarms.is_empty());
    assert!(again.opened_reviews.is_empty(), "the episodes go on, closed review or not: no new review");
    assert!(again.episodes.iter().any(|e| e.id == episode.id), "closing the review did not end its episode");
    let started = events_of(&s, "drift.episode.started").await;
    assert_eq!(started.len(), status.episodes.len(), "one start event per episode");
    assert!(started.iter().any(|e| e["data"]["episode"] == episode.id.as_str() && e["data"]["case"] == case.as_str()));
    // GET /v1/drift shows the latest statistics and the open episodes.
    let (code, d) = s.get(&s.admin, "/v1/drift").await;
    assert_eq!(code, 200);
    assert!(d["report"]["classes"].as_array().unwrap().iter().any(|c| c["action"] == "isolate_host"));
    assert!(d["report"]["tests"].as_array().unwrap().len() > 10);
    assert_eq!(d["episodes"].as_array().unwrap().len(), status.episodes.len());

    // Acknowledging: a reason is required; agents may not; unknown episodes are 404.
    let ack = format!("/v1/drift/episodes/{}/acknowledge", episode.id);
    let (code, e) = s.post(&s.admin, &ack, json!({"reason": "  "})).await;
    assert_eq!((code, e["code"].as_str()), (422, Some("invalid_request")), "{e}");
    let agent = s.key("agent", "agent", &[]).await;
    assert_eq!(s.post(&agent, &ack, json!({"reason": "x"})).await.0, 403);
    assert_eq!(s.post(&s.admin, "/v1/drift/episodes/nope/acknowledge", json!({"reason": "x"})).await.0, 404);
    let (code, e) = s.post(&s.admin, &ack, json!({"reason": "x", "restart_at": Timestamp(start + 30 * HOUR)})).await;
    assert_eq!(code, 422, "a restart in the future: {e}");
    // Snoozed with a reason: still open, recorded.
    let (code, snoozed) =
        s.post(&s.admin, &ack, json!({"reason": "looking into it with the SOC lead", "snooze": "6h"})).await;
    assert_eq!(code, 200, "{snoozed}");
    assert!(snoozed["ended_at"].is_null() && !snoozed["snoozed_until"].is_null());
    assert_eq!(events_of(&s, "drift.episode.acknowledged").await.len(), 1);
    // The intervention (say, a prompt rollback) activated at the drift's start: the reference restarts there.
    let restart = json!({"reason": "prompt v12 rolled back to v11", "restart_at": Timestamp(start + drift_at)});
    let (code, ended) = s.post(&s.admin, &ack, restart.clone()).await;
    assert_eq!(code, 200, "{ended}");
    assert!(!ended["ended_at"].is_null());
    assert!(ended["end_reason"].as_str().unwrap().contains("prompt v12 rolled back"), "{ended}");
    let ends = events_of(&s, "drift.episode.ended").await;
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["data"]["acknowledgement"]["reason"], "prompt v12 rolled back to v11");
    let (code, e) = s.post(&s.admin, &ack, restart).await;
    assert_eq!((code, e["code"].as_str()), (409, Some("conflict")), "an ended episode takes no acknowledgement: {e}");
    // The class's tests now start from the restart: the same shift is not detected again.
    s.advance(Duration::from_secs(900));
    let after = run_once(&s.state).await.unwrap();
    assert!(
        after.episodes.iter().all(|e| e.action != "isolate_host" || e.started_at < after.evaluated_at),
        "no new isolate_host episode"
    );
    assert!(
        after
            .report
            .tests
            .iter()
            .filter(|t| t.action == "isolate_host")
            .all(|t| t.baseline.restarted_at.is_some() && !t.alarm),
        "{:?}",
        after.report.tests.iter().filter(|t| t.action == "isolate_host").collect::<Vec<_>>()
    );
    assert!(after.episodes.iter().all(|e| e.id != episode.id), "the ended episode is not open");
    let (_, open) = s.get(&s.admin, "/v1/drift/episodes?open=true").await;
    assert!(open["episodes"].as_array().unwrap().iter().all(|e| e["id"] != episode.id.as_str()));
    let (code, one) = s.get(&s.admin, &format!("/v1/drift/episodes/{}", episode.id)).await;
    assert_eq!((code, one["acknowledgements"].as_array().unwrap().len()), (200, 2));
    let (code, _) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(code, 200);
}
