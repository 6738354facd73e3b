//! Policy evaluation of `examples/policies/soc.yaml`: the indexed engine
//! against a naive baseline (every trigger evaluated in order, no index by
//! action class), measured in the same run.
//!
//! `cargo bench -p arbiter-policy --bench evaluate`

use arbiter_policy::Policy;
use arbiter_policy::cel::Env;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;

const SOC: &str = include_str!("../../../examples/policies/soc.yaml");

/// A realistic mix of proposals: (name, confidence, args, signals, context).
fn mix() -> Vec<(String, Option<f64>, Value, Value, Value)> {
    vec![
        (
            "close_alert".into(),
            Some(0.97),
            json!({"alert_id": "A-1", "resolution": "benign"}),
            json!({"alert_type": "benign_noise", "alert_severity": "low", "anomaly_score": 0.1, "signature_known_benign": true}),
            json!({}),
        ),
        (
            "close_alert".into(),
            Some(0.6),
            json!({"alert_id": "A-2", "resolution": "false_positive"}),
            json!({"alert_type": "phishing", "alert_severity": "medium"}),
            json!({}),
        ),
        (
            "open_ticket".into(),
            Some(0.8),
            json!({"title": "Suspicious login", "priority": "p3", "queue": "soc", "body": "user reported odd MFA prompts"}),
            json!({"alert_type": "brute_force"}),
            json!({}),
        ),
        (
            "isolate_host".into(),
            Some(0.93),
            json!({"host": "srv-db-01", "host_tags": ["server", "crown_jewel"], "business_unit": "finance"}),
            json!({"alert_type": "malware", "alert_severity": "high", "hosts_isolated_last_hour": 2}),
            json!({"change_freeze": false}),
        ),
        (
            "block_ip".into(),
            Some(0.95),
            json!({"ip": "203.0.113.7", "direction": "inbound", "duration_hours": 24}),
            json!({"alert_type": "brute_force", "ip_reputation": "malicious", "ip_internal": false}),
            json!({}),
        ),
        (
            "disable_user".into(),
            Some(0.99),
            json!({"user": "jdoe", "user_groups": ["staff", "domain_admins"], "is_admin": true}),
            json!({"alert_type": "impossible_travel", "repeat_count": 1}),
            json!({}),
        ),
        ("reset_password".into(), Some(0.91), json!({"user": "asmith"}), json!({}), json!({})),
        ("unknown_tool".into(), None, json!({}), json!({}), json!({})),
    ]
}

fn bench(c: &mut Criterion) {
    let policy = Policy::parse(SOC).expect("soc.yaml compiles");
    let actions = mix();
    let agent = json!({"name": "soc-triage-agent", "key_id": "0123456789ab"});
    let envs: Vec<Env<'_>> = actions
        .iter()
        .map(|(name, confidence, args, signals, context)| Env {
            name,
            args,
            confidence: *confidence,
            signals,
            context,
            agent: &agent,
            trace_id: Some("trace-1"),
        })
        .collect();
    // Both engines must agree before their speeds are compared.
    for env in &envs {
        assert_eq!(policy.evaluate(env), policy.evaluate_naive(env), "engines disagree on {}", env.name);
    }
    let n = envs.len() as u32;
    let mut group =
        c.benchmark_group(format!("soc.yaml ({} triggers), per action over a mix of {n}", policy.trigger_count()));
    group.bench_function("indexed", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                for env in &envs {
                    black_box(policy.evaluate(black_box(env)));
                }
            }
            start.elapsed() / n
        })
    });
    group.bench_function("naive baseline", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                for env in &envs {
                    black_box(policy.evaluate_naive(black_box(env)));
                }
            }
            start.elapsed() / n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
