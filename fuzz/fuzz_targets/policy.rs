//! Any text as a policy file: parsing never panics, and a policy that
//! compiles evaluates a few actions, with the indexed engine agreeing with
//! the naive one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let Ok(policy) = arbiter_policy::Policy::parse(src) else { return };
    let _ = policy.warnings();
    let none = serde_json::json!({});
    let args = serde_json::json!({"host": "web-17", "host_tags": ["server", "crown_jewel"], "user": "admin"});
    let signals = serde_json::json!({"alert_type": "malware", "anomaly_score": 0.9});
    for (name, confidence) in [("isolate_host", Some(0.9)), ("close_alert", None), ("unlisted", Some(0.1))] {
        let env = arbiter_policy::cel::Env {
            name,
            args: &args,
            confidence,
            signals: &signals,
            context: &none,
            agent: &none,
            trace_id: None,
        };
        assert_eq!(policy.evaluate(&env), policy.evaluate_naive(&env));
    }
});
