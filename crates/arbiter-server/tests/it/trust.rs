//! Trust: a reviewer's modification is checked like a new action, and
//! approvals are bound to the exact arguments they approved.

use crate::support::{SOC_POLICY, TestServer};
use serde_json::{Value, json};

fn workstation_isolation() -> Value {
    json!({"name": "isolate_host", "confidence": 0.5,
           "args": {"host": "ws-042", "host_tags": ["workstation"]},
           "signals": {"alert_type": "malware", "alert_severity": "high"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modification_cannot_bypass_the_policy() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let alice = s.key("alice", "reviewer", &["soc_analyst"]).await;
    let carl = s.key("carl", "reviewer", &["soc_analyst"]).await;
    let lead = s.key("lena", "reviewer", &["soc_lead"]).await;
    let (did, case) = s.escalate(&agent, workstation_isolation()).await;
    let (_, c) = s.get(&alice, &format!("/v1/cases/{case}")).await;
    assert_eq!((c["escalation"]["approvals"].as_u64(), c["escalation"]["severity"].as_str()), (Some(1), Some("high")));

    // The modification of the repro: a domain controller and crown jewel, which,
    // proposed directly, needs two approvals from the leads and the identity team.
    let dc = json!({"host": "dc-01", "host_tags": ["crown_jewel", "domain_controller"]});
    let body = json!({"decision": "modify", "args": dc, "rationale": "the real source is the domain controller"});
    let (status, out) = s.post(&alice, &format!("/v1/cases/{case}/decision"), body).await;
    assert_eq!(status, 200, "{out}");
    assert!(out.get("decision").is_none(), "one analyst cannot allow it: {out}");
    let esc = &out["case"]["escalation"];
    assert_eq!(esc["approvals"], 2, "{out}");
    assert_eq!(esc["severity"], "critical");
    let roles: Vec<&str> = esc["reviewers"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(roles.contains(&"soc_lead") && roles.contains(&"identity_team"), "{roles:?}");
    let (_, d) = s.get(&agent, &format!("/v1/decisions/{did}")).await;
    assert_eq!(d["status"], "pending", "{d}");
    // the timeline says why
    let (_, events) = s.get(&s.admin, &format!("/v1/cases/{case}/events")).await;
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["case.opened", "case.requirements_raised", "case.answered"]);
    let raised = &events[1]["data"];
    assert!(raised["triggers"].as_array().unwrap().iter().any(|t| t == "isolate_domain_controller"), "{raised}");

    // A modification the policy denies is refused outright, naming the trigger.
    let ot = json!({"host": "plc-7", "host_tags": ["ot"]});
    let body = json!({"decision": "modify", "args": ot, "rationale": "isolate the PLC instead of the host"});
    let r =
        s.http.post(s.at(&format!("/v1/cases/{case}/decision"))).bearer_auth(&carl).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "modification_denied", "{p}");
    assert_eq!(p["triggers"], json!(["isolate_ot_device"]), "{p}");

    // The second approval of exactly those arguments decides; the agent receives them.
    let body = json!({"decision": "approve", "rationale": "confirmed with the identity team"});
    let (status, out) = s.post(&lead, &format!("/v1/cases/{case}/decision"), body).await;
    assert_eq!(status, 200, "{out}");
    let fin = &out["decision"]["final"];
    assert_eq!(fin["verdict"], "allow", "{out}");
    assert_eq!(fin["action"]["args"], dc);
    assert_eq!(fin["decided_by"], json!(["alice", "lena"]));
    assert_eq!(out["case"]["answers"][0]["args_digest"], out["case"]["answers"][1]["args_digest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_of_the_proposal_does_not_count_toward_a_modification() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    // crown jewels need two approvals in the test policy
    let (_, case) = s.escalate(&agent, crate::support::isolate("db-1", &["crown_jewel"], 0.9)).await;
    let ok = json!({"decision": "approve", "rationale": "confirmed on the EDR console"});
    assert_eq!(s.post(&ann, &format!("/v1/cases/{case}/decision"), ok.clone()).await.0, 200);
    let narrower = json!({"decision": "modify", "args": {"host": "db-1", "host_tags": ["crown_jewel"], "mode": "network_only"},
                          "rationale": "network isolation is enough"});
    let (status, out) = s.post(&bob, &format!("/v1/cases/{case}/decision"), narrower).await;
    assert_eq!(status, 200, "{out}");
    assert!(out.get("decision").is_none(), "ann approved other arguments: {out}");
    // ann approves again, now the modified arguments: that decides
    let (status, out) = s.post(&ann, &format!("/v1/cases/{case}/decision"), ok).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["decision"]["final"]["action"]["args"]["mode"], "network_only", "{out}");
    assert_eq!(out["decision"]["final"]["decided_by"], json!(["bob", "ann"]));
}
