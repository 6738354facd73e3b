//! Simulated time: a server on a manual clock is moved by an admin, and the
//! drift monitor and the SLA sweeper run at their due times on the way — a
//! fixed schedule, whatever steps the harness takes. A server on the system
//! clock refuses; only admins move it; every move is in the audit log.

use crate::support::{POLICY, TestServer, isolate};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_manual_clock_runs_the_monitor_and_the_sweeper_at_their_due_times() {
    let s = TestServer::with(POLICY, |c| c.drift_interval = Duration::from_secs(15 * 60)).await;
    s.state.control_clock(s.clock.clone());
    let start = s.state.clock.now();
    let agent = s.key("triage-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let (_, d) = s.post(&agent, "/v1/decisions", json!({"action": isolate("ws-1", &["workstation"], 0.5)})).await;
    let id = d["id"].as_str().unwrap().to_string();

    // 1 h: the monitor runs at 15, 30, 45 and 60 min; the case's two tiers (15 + 10 min) run out on the way
    let (code, v) = s.post(&s.admin, "/v1/admin/clock", json!({"advance": "1h"})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!((v["drift_evaluations"].as_u64(), v["sweeps"].as_u64()), (Some(4), Some(5)), "{v}");
    assert_eq!(v["now"].as_str().unwrap().parse::<arbiter_core::Timestamp>().unwrap(), start.plus_millis(3_600_000));
    let (_, drift) = s.get(&ann, "/v1/drift").await;
    assert_eq!(drift["evaluated_at"], v["now"], "the last evaluation ran at 60 min");
    let (_, fin) = s.get(&agent, &format!("/v1/decisions/{id}")).await;
    assert_eq!(fin["final"]["source"], "sla_expired", "{fin}");
    // the schedule holds across small steps: nothing at 70 min, the next evaluation at 75
    let (_, v) = s.post(&s.admin, "/v1/admin/clock", json!({"advance": "10m"})).await;
    assert_eq!(v["drift_evaluations"], 0, "{v}");
    let to = start.plus_millis(80 * 60_000).to_string();
    let (_, v) = s.post(&s.admin, "/v1/admin/clock", json!({"to": to})).await;
    assert_eq!((v["drift_evaluations"].as_u64(), v["now"].as_str()), (Some(1), Some(to.as_str())), "{v}");

    // refusals
    let (code, e) = s.post(&s.admin, "/v1/admin/clock", json!({"to": start.to_string()})).await;
    assert_eq!((code, e["code"].as_str()), (422, Some("invalid_request")), "time only moves forward: {e}");
    let (code, _) = s.post(&s.admin, "/v1/admin/clock", json!({"advance": "1m", "to": to})).await;
    assert_eq!(code, 422);
    let (code, _) = s.post(&s.admin, "/v1/admin/clock", json!({})).await;
    assert_eq!(code, 422);
    assert_eq!(s.post(&ann, "/v1/admin/clock", json!({"advance": "1m"})).await.0, 403);
    let (_, events) = s.get(&s.admin, "/v1/audit/events?after=0&limit=10000").await;
    let moves = events.as_array().map_or(0, |e| e.iter().filter(|e| e["kind"] == "clock.advanced").count());
    assert_eq!(moves, 3, "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_the_system_clock_refuses_to_move_it() {
    let s = TestServer::start().await;
    let (code, e) = s.post(&s.admin, "/v1/admin/clock", json!({"advance": "1h"})).await;
    assert_eq!((code, e["code"].as_str()), (409, Some("conflict")), "{e}");
    assert!(e["detail"].as_str().unwrap().contains("--clock manual"), "{e}");
}

/// An agent's `event_time` is taken within ±5 min of the server's clock by
/// default (an agent with a skewed clock cannot move its decisions out of the
/// drift monitor's windows: 1971, +1 day, +10 years and 3 h back are
/// refused); a server that takes replays accepts any time and labels each
/// decision a default server would have refused with its skew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_times_are_bounded_unless_the_server_takes_replays() {
    let s = TestServer::start().await;
    let agent = s.key("triage-agent", "agent", &[]).await;
    let now = s.state.clock.now();
    let at = |ms: i64| json!({"action": {"name": "close_alert", "confidence": 0.95, "args": {}}, "event_time": now.plus_millis(ms)});
    for (offset, side) in [
        (-3 * 3_600_000, "before"),
        (86_400_000, "after"),
        (10 * 365 * 86_400_000, "after"),
        (-now.0 + 365 * 86_400_000, "before"),
    ] {
        let (code, e) = s.post(&agent, "/v1/decisions", at(offset)).await;
        assert_eq!((code, e["code"].as_str()), (422, Some("invalid_request")), "{offset}: {e}");
        let detail = e["detail"].as_str().unwrap();
        assert!(detail.contains("event_time") && detail.contains(side) && detail.contains("±5m"), "{detail}");
    }
    for offset in [-4 * 60_000, 0, 4 * 60_000] {
        let (code, d) = s.post(&agent, "/v1/decisions", at(offset)).await;
        assert_eq!(code, 201, "{offset}: {d}");
        assert!(d.get("event_time_skew_ms").is_none(), "{d}");
    }

    let replay = TestServer::with(crate::support::POLICY, |c| c.event_time_skew = None).await;
    let agent = replay.key("loader", "agent", &[]).await;
    let now = replay.state.clock.now();
    let (code, d) = replay
        .post(&agent, "/v1/decisions", json!({"action": {"name": "close_alert", "confidence": 0.95, "args": {}}, "event_time": now.plus_millis(-3 * 3_600_000)}))
        .await;
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["event_time_skew_ms"], -3 * 3_600_000, "{d}");
    let (_, d) = replay.post(&agent, "/v1/decisions", json!({"action": {"name": "close_alert", "confidence": 0.95, "args": {}}, "event_time": now.plus_millis(60_000)})).await;
    assert!(d.get("event_time_skew_ms").is_none(), "within what a default server takes: {d}");
}
