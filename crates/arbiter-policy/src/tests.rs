//! Policy tests: the SOC example, error reporting, and properties of the
//! combination rule.

use crate::cel::Env;
use crate::{Evaluation, Policy};
use arbiter_core::{Severity, Verdict};
use proptest::prelude::*;
use serde_json::{Value, json};

const SOC: &str = include_str!("../../../examples/policies/soc.yaml");

fn eval(p: &Policy, name: &str, args: Value, confidence: Option<f64>, signals: Value) -> Evaluation {
    let ctx = json!({});
    let agent = json!({"name": "soc-agent", "key_id": "k"});
    p.evaluate(&Env { name, args: &args, confidence, signals: &signals, context: &ctx, agent: &agent, trace_id: None })
}

#[test]
fn soc_policy_compiles_with_forty_triggers() {
    let p = Policy::parse(SOC).unwrap();
    assert!(p.trigger_count() >= 40, "{}", p.trigger_count());
    assert_eq!(p.name(), "soc-triage");
    assert_eq!(p.hash().len(), 64);
}

#[test]
fn soc_policy_routes_to_its_reviewer_roles() {
    let roles = Policy::parse(SOC).unwrap().reviewer_roles();
    for r in ["soc_analyst", "soc_lead", "identity_team", "network_team", "data_protection"] {
        assert!(roles.contains(r), "{r} missing from {roles:?}");
    }
    assert!(!roles.contains("on_call"), "the built-in default is overridden by the policy's: {roles:?}");
}

#[test]
fn soc_routine_close_is_allowed() {
    let p = Policy::parse(SOC).unwrap();
    let e = eval(
        &p,
        "close_alert",
        json!({"alert_id": "A1", "resolution": "benign"}),
        Some(0.95),
        json!({"alert_severity": "low"}),
    );
    assert_eq!(e.verdict, Verdict::Allow, "{e:?}");
    assert!(e.triggers.is_empty());
}

#[test]
fn soc_crown_jewel_isolation_needs_two_leads() {
    let p = Policy::parse(SOC).unwrap();
    let e = eval(
        &p,
        "isolate_host",
        json!({"host": "db-1", "host_tags": ["server", "crown_jewel"]}),
        Some(0.99),
        json!({}),
    );
    assert_eq!(e.verdict, Verdict::Escalate);
    let esc = e.escalation.unwrap();
    assert_eq!(esc.approvals, 2);
    assert_eq!(esc.severity, Severity::Critical);
    assert!(esc.reviewers.contains("soc_lead"));
    assert_eq!(esc.sla.as_secs(), 600);
    let names: Vec<_> = e.triggers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["isolate_crown_jewel", "isolate_server"]);
}

#[test]
fn soc_admins_are_never_disabled_automatically() {
    let p = Policy::parse(SOC).unwrap();
    let e = eval(
        &p,
        "disable_user",
        json!({"user": "alice", "user_groups": ["domain_admins"], "is_admin": true}),
        Some(1.0),
        json!({}),
    );
    assert_eq!(e.verdict, Verdict::Escalate);
    assert_eq!(e.escalation.unwrap().approvals, 2);
    let e = eval(&p, "disable_user", json!({"user": "breakglass-1", "user_groups": []}), Some(1.0), json!({}));
    assert_eq!(e.verdict, Verdict::Deny);
}

#[test]
fn soc_low_confidence_escalates_and_unknown_classes_escalate() {
    let p = Policy::parse(SOC).unwrap();
    let e = eval(&p, "block_ip", json!({"ip": "203.0.113.9", "direction": "inbound"}), Some(0.5), json!({}));
    assert_eq!(e.verdict, Verdict::Escalate);
    assert!(e.explanation.contains("below auto_allow_at 0.92"), "{}", e.explanation);
    let e = eval(&p, "launch_missiles", json!({}), Some(1.0), json!({}));
    assert_eq!(e.verdict, Verdict::Escalate);
    assert!(e.explanation.contains("not listed"), "{}", e.explanation);
}

#[test]
fn naive_baseline_agrees_with_the_indexed_engine() {
    let p = Policy::parse(SOC).unwrap();
    let cases = [
        (
            "isolate_host",
            json!({"host": "web-1", "host_tags": ["server"]}),
            Some(0.97),
            json!({"alert_severity": "low"}),
        ),
        (
            "close_alert",
            json!({"alert_id": "1", "resolution": "benign"}),
            Some(0.91),
            json!({"alert_type": "malware", "asset_type": "server"}),
        ),
        ("disable_user", json!({"user": "bob", "user_groups": []}), Some(0.1), json!({})),
        ("unknown", json!({}), None, json!({})),
    ];
    for (name, args, conf, signals) in cases {
        let ctx = json!({});
        let agent = json!({"name": "a"});
        let env = Env {
            name,
            args: &args,
            confidence: conf,
            signals: &signals,
            context: &ctx,
            agent: &agent,
            trace_id: None,
        };
        assert_eq!(p.evaluate(&env), p.evaluate_naive(&env), "{name}");
    }
}

#[test]
fn check_reports_every_error_with_position_and_field() {
    let src = "\
policy: broken
defaults:
  sla: soon
  fallback: escalate
actions:
  close_alert:
    auto_allow_at: 1.5
    colour: blue
triggers:
  - name: t1
    when: 'args.x ==='
    verdict: deny
  - name: t1
    when: 'nme == \"x\"'
    verdict: escalate
  - name: t3
    when: 'true'
    verdict: deny
    approvals: 2
  - when: 'true'
";
    let errs = Policy::parse(src).unwrap_err().0;
    let fields: Vec<_> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert!(fields.contains(&(3, "defaults.sla")), "{errs:#?}");
    assert!(fields.contains(&(4, "defaults.fallback")), "{errs:#?}");
    assert!(fields.contains(&(7, "actions.close_alert.auto_allow_at")), "{errs:#?}");
    assert!(fields.contains(&(8, "actions.close_alert.colour")), "{errs:#?}");
    assert!(fields.contains(&(11, "triggers[0].when")), "{errs:#?}");
    assert!(fields.contains(&(14, "triggers[1].when")), "{errs:#?}");
    assert!(fields.iter().any(|(_, f)| *f == "triggers[1].name"), "{errs:#?}");
    assert!(fields.contains(&(19, "triggers[2].approvals")), "{errs:#?}");
    assert!(fields.iter().any(|(_, f)| *f == "triggers[3].name"), "{errs:#?}");
    // The condition error points into the expression: the stray third `=` is at column 21.
    let when = errs.iter().find(|e| e.field == "triggers[0].when").unwrap();
    assert_eq!(when.col, 21, "{when:?}");
    assert!(fields.contains(&(1, "version")), "a policy without `version` is refused: {errs:#?}");
    let rendered = crate::PolicyErrors(errs).render("broken.yaml");
    assert!(rendered.starts_with("broken.yaml:1:1: version: missing"), "{rendered}");
    assert!(rendered.contains("broken.yaml:3:8: defaults.sla:"), "{rendered}");
}

#[test]
fn an_empty_document_is_not_a_policy() {
    for src in ["{}", "actions: {}\n"] {
        let errs = Policy::parse(src).unwrap_err().0;
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"version") && fields.contains(&"policy"), "{src:?}: {errs:?}");
    }
}

#[test]
fn check_warns_about_allow_triggers_the_agent_controls() {
    let src = "version: 1\npolicy: p\ntriggers:
  - name: dry_run
    when: 'has(context.dry_run) && context.dry_run'
    verdict: allow
  - name: sandbox_dry_run
    when: 'agent.name == \"sandbox\" && context.dry_run == true'
    verdict: allow
  - name: deny_by_signal
    when: 'signals.x == 1'
    verdict: deny
";
    let p = Policy::parse(src).unwrap();
    let w: Vec<&str> = p.warnings().iter().map(|w| w.field.as_str()).collect();
    assert_eq!(w, ["triggers.dry_run.when"]);
    assert_eq!(p.warnings()[0].line, 4);
    assert!(Policy::parse(SOC).unwrap().warnings().is_empty(), "{:?}", Policy::parse(SOC).unwrap().warnings());
}

/// docs/mcp.md promised this lint and it did not exist (the trust review):
/// an `allow` that reads MCP hints trusts the tool server's word about itself.
#[test]
fn check_warns_about_allow_triggers_that_read_mcp_hints() {
    let src = "version: 1\npolicy: p\ntriggers:
  - name: read_only_tools_pass
    when: 'agent.name == \"ide-agent\" && signals.mcp_hints.read_only == true'
    verdict: allow
  - name: hinted_by_index
    when: 'agent.name == \"ide-agent\" && has(signals.mcp_hints) && signals[\"mcp_hints\"].idempotent'
    verdict: allow
  - name: destructive_waits
    when: 'signals.mcp_hints.destructive == true'
    verdict: escalate
  - name: named_reads
    actions: [fs.read_text_file]
    when: 'agent.name == \"ide-agent\" && signals.other == 1'
    verdict: allow
";
    let p = Policy::parse(src).unwrap();
    let w: Vec<&str> = p.warnings().iter().map(|w| w.field.as_str()).collect();
    assert_eq!(w, ["triggers.read_only_tools_pass.when", "triggers.hinted_by_index.when"], "{:?}", p.warnings());
    assert!(p.warnings()[0].message.contains("mcp_hints"));
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let errs = Policy::parse("triggers:\n  - name: x\n   when: [\n").unwrap_err().0;
    assert_eq!(errs.len(), 1);
    assert!(errs[0].line >= 2, "{errs:?}");
}

// ------------------------------------------------------------- properties

#[derive(Debug, Clone)]
struct GenTrigger {
    verdict: Verdict,
    fires: bool,
    scoped: bool,
    severity: Severity,
    approvals: u32,
    sla_min: u32,
}

fn gen_trigger() -> impl Strategy<Value = GenTrigger> {
    (0u8..3, any::<bool>(), any::<bool>(), 0u8..4, 1u32..4, 1u32..120).prop_map(
        |(v, fires, scoped, s, approvals, sla_min)| GenTrigger {
            verdict: [Verdict::Allow, Verdict::Escalate, Verdict::Deny][v as usize],
            fires,
            scoped,
            severity: [Severity::Low, Severity::Medium, Severity::High, Severity::Critical][s as usize],
            approvals,
            sla_min,
        },
    )
}

fn render(triggers: &[(usize, GenTrigger)], threshold: f64) -> String {
    let mut s = format!(
        "version: 1\npolicy: generated\nactions:\n  act:\n    auto_allow_at: {threshold}\n    reviewers: [base]\ntriggers:\n"
    );
    for (i, t) in triggers {
        let cond = if t.fires { "confidence >= 0.0" } else { "confidence > 1.0" };
        s += &format!("  - name: t{i}\n    when: '{cond}'\n    verdict: {}\n", t.verdict);
        if t.scoped {
            s += "    actions: [act]\n";
        }
        if t.verdict == Verdict::Escalate {
            s += &format!(
                "    severity: {}\n    approvals: {}\n    sla: {}m\n    reviewers: [r{i}]\n",
                t.severity, t.approvals, t.sla_min
            );
        }
    }
    s
}

fn run(src: &str, confidence: f64) -> Evaluation {
    let p = Policy::parse(src).unwrap();
    eval(&p, "act", json!({}), Some(confidence), json!({}))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_firing_deny_always_wins(ts in proptest::collection::vec(gen_trigger(), 1..8), conf in 0.0f64..1.0, th in 0.0f64..1.0) {
        let ts: Vec<_> = ts.into_iter().enumerate().collect();
        let e = run(&render(&ts, th), conf);
        let any_deny = ts.iter().any(|(_, t)| t.fires && t.verdict == Verdict::Deny);
        let any_esc = ts.iter().any(|(_, t)| t.fires && t.verdict == Verdict::Escalate);
        let any_allow = ts.iter().any(|(_, t)| t.fires && t.verdict == Verdict::Allow);
        let expected = if any_deny { Verdict::Deny } else if any_esc { Verdict::Escalate }
            else if any_allow || conf >= th { Verdict::Allow } else { Verdict::Escalate };
        prop_assert_eq!(e.verdict, expected);
        prop_assert_eq!(e.triggers.len(), ts.iter().filter(|(_, t)| t.fires).count());
    }

    #[test]
    fn verdict_does_not_depend_on_trigger_order(ts in proptest::collection::vec(gen_trigger(), 1..8), conf in 0.0f64..1.0, seed in any::<u64>()) {
        let ts: Vec<_> = ts.into_iter().enumerate().collect();
        let mut shuffled = ts.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = run(&render(&ts, 0.5), conf);
        let b = run(&render(&shuffled, 0.5), conf);
        prop_assert_eq!(a.verdict, b.verdict);
        let mut an: Vec<_> = a.triggers.iter().map(|t| t.name.clone()).collect();
        let mut bn: Vec<_> = b.triggers.iter().map(|t| t.name.clone()).collect();
        an.sort(); bn.sort();
        prop_assert_eq!(an, bn);
        match (a.escalation, b.escalation) {
            (Some(x), Some(y)) => {
                prop_assert_eq!(x.severity, y.severity);
                prop_assert_eq!(x.reviewers, y.reviewers);
                prop_assert_eq!(x.approvals, y.approvals);
                prop_assert_eq!(x.sla, y.sla);
                prop_assert_eq!(x.fallback, y.fallback);
            }
            (None, None) => {}
            (x, y) => prop_assert!(false, "{x:?} vs {y:?}"),
        }
    }

    #[test]
    fn escalation_is_the_strictest_of_the_fired_triggers(ts in proptest::collection::vec(gen_trigger(), 1..8)) {
        let ts: Vec<_> = ts.into_iter().enumerate().collect();
        let e = run(&render(&ts, 0.0), 0.9);
        let esc: Vec<_> = ts.iter().filter(|(_, t)| t.fires && t.verdict == Verdict::Escalate).collect();
        if e.verdict == Verdict::Escalate {
            let got = e.escalation.unwrap();
            prop_assert_eq!(got.approvals, esc.iter().map(|(_, t)| t.approvals).max().unwrap());
            prop_assert_eq!(got.severity, esc.iter().map(|(_, t)| t.severity).max().unwrap());
            prop_assert_eq!(got.sla.as_secs(), esc.iter().map(|(_, t)| t.sla_min as u64 * 60).min().unwrap());
            prop_assert_eq!(got.reviewers.len(), esc.len());
        }
    }

}

/// A threshold the tuner chose, written into a policy the way `tune --out`
/// writes it, allows exactly the confidences the tuner counted as
/// auto-allowed (`bin(c) >= j`).
#[test]
fn tuned_thresholds_mean_to_the_policy_what_they_meant_to_the_tuner() {
    use arbiter_tuning::bin;
    let base = "version: 1\npolicy: t\nactions:\n  a:\n    auto_allow_at: 0.5\n    below_threshold: deny\n";
    let mut rng = arbiter_core::rng::Rng::new(11);
    for grid in [100u32, 1000] {
        for j in (0..=grid).step_by(7) {
            let t = j as f64 / grid as f64;
            let thresholds = [("a".to_string(), Some(t))].into_iter().collect();
            let p = Policy::parse(&crate::rewrite::with_thresholds(base, &thresholds).unwrap()).unwrap();
            for _ in 0..200 {
                // confidences as agents send them: a few decimals, and the exact grid points
                let c = if rng.chance(0.3) { (rng.uniform() * 10_000.0).round() / 10_000.0 } else { t };
                let allowed = eval(&p, "a", json!({}), Some(c), json!({})).verdict == Verdict::Allow;
                assert_eq!(allowed, bin(c, grid) >= j as usize, "grid {grid}, threshold {t}, confidence {c}");
            }
        }
    }
}

#[test]
fn a_class_names_its_subject_and_the_evaluation_carries_the_threshold() {
    let p = Policy::parse(
        "version: 1\npolicy: s\nactions:\n  reset_password:\n    subject: [args.account.id, args.user]\n    auto_allow_at: 0.9\n  close_alert:\n    auto_allow_at: never\n",
    )
    .unwrap();
    let (empty, agent) = (json!({}), json!({}));
    let env = |name: &'static str, args: &'static Value| Env {
        name,
        args,
        confidence: Some(0.5),
        signals: &empty,
        context: &empty,
        agent: &agent,
        trace_id: None,
    };
    let nested: &'static Value = Box::leak(Box::new(json!({"account": {"id": 42}, "user": "jdoe"})));
    let flat: &'static Value = Box::leak(Box::new(json!({"user": "jdoe"})));
    let host: &'static Value = Box::leak(Box::new(json!({"host": "ws-1"})));
    assert_eq!(p.subject(&env("reset_password", nested)).as_deref(), Some("id:42"), "the first path that is set");
    assert_eq!(p.subject(&env("reset_password", flat)).as_deref(), Some("user:jdoe"));
    assert_eq!(p.subject(&env("isolate_host", host)).as_deref(), Some("host:ws-1"), "undeclared: the default names");
    assert_eq!(p.evaluate(&env("reset_password", flat)).threshold, Some(0.9));
    assert_eq!(p.evaluate(&env("close_alert", flat)).threshold, None, "`never` is no threshold");
    let errs = Policy::parse("version: 1\npolicy: s\nactions:\n  x:\n    subject: host\n").unwrap_err();
    assert!(errs.0.iter().any(|e| e.field == "actions.x.subject" && e.message.contains("args.host")), "{errs:?}");
}

const MCP: &str = include_str!("../../../examples/policies/mcp.yaml");

#[test]
fn mcp_example_compiles_without_warnings_and_allows_only_named_reads() {
    let p = Policy::parse(MCP).unwrap();
    assert!(p.warnings().is_empty(), "{:?}", p.warnings());
    let agent = json!({"name": "ide-agent", "key_id": "k"});
    let other = json!({"name": "someone-else", "key_id": "k2"});
    let ctx = json!({});
    let no_hints = json!({"mcp_hints": {}});
    let run = |name: &str, args: Value, signals: &Value, agent: &Value| {
        p.evaluate(&Env { name, args: &args, confidence: None, signals, context: &ctx, agent, trace_id: None }).verdict
    };
    assert_eq!(run("fs.read_text_file", json!({"path": "/srv/a.txt"}), &no_hints, &agent), Verdict::Allow);
    assert_eq!(run("fs.read_text_file", json!({"path": "/srv/a.txt"}), &no_hints, &other), Verdict::Escalate);
    assert_eq!(run("fs.read_text_file", json!({"path": "/home/u/.ssh/id_ed25519"}), &no_hints, &agent), Verdict::Deny);
    assert_eq!(run("fs.read_multiple_files", json!({"paths": ["/a", "/srv/.env"]}), &no_hints, &agent), Verdict::Deny);
    assert_eq!(
        run("fs.write_file", json!({"path": "/srv/a.txt", "content": "x"}), &no_hints, &agent),
        Verdict::Escalate
    );
    // A tool server's hint tightens: a destructive hint escalates to a lead even a tool listed as routine.
    let destructive = json!({"mcp_hints": {"destructive": true}});
    let e = p.evaluate(&Env {
        name: "everything.echo",
        args: &json!({}),
        confidence: None,
        signals: &destructive,
        context: &ctx,
        agent: &agent,
        trace_id: None,
    });
    assert_eq!(e.verdict, Verdict::Escalate);
    assert!(e.escalation.unwrap().reviewers.contains("engineering_lead"));
}

#[test]
fn always_denies_is_true_only_when_no_call_can_pass() {
    let p = Policy::parse(MCP).unwrap();
    assert!(p.always_denies("everything.get-env"));
    for open in ["fs.read_text_file", "fs.write_file", "everything.echo", "unlisted.tool"] {
        assert!(!p.always_denies(open), "{open}");
    }
    let src = r#"
version: 1
policy: t
defaults: {below_threshold: deny}
actions:
  threshold_allows: {auto_allow_at: 0.9}
  escalates_sometimes: {}
  named_deny: {below_threshold: escalate}
  conditional_deny: {below_threshold: escalate}
triggers:
  - {name: maybe, actions: [escalates_sometimes], when: 'args.x == 1', verdict: escalate}
  - {name: never_this, when: 'name == "named_deny"', verdict: deny}
  - {name: if_big, actions: [conditional_deny], when: 'args.size > 10', verdict: deny}
  - {name: agent_bound, actions: [conditional_deny], when: 'agent.name == "x"', verdict: deny}
"#;
    let p = Policy::parse(src).unwrap();
    assert!(p.always_denies("unlisted"), "defaults deny and nothing can allow");
    assert!(p.always_denies("named_deny"), "a deny trigger on the name alone");
    assert!(!p.always_denies("threshold_allows"));
    assert!(!p.always_denies("escalates_sometimes"));
    assert!(!p.always_denies("conditional_deny"));
}

#[test]
fn audit_sampling_applies_to_allowed_decisions_with_the_class_or_default_settings() {
    let src = "version: 1\npolicy: a\ndefaults:\n  audit_sla: 4h\nactions:\n  close_alert:\n    auto_allow_at: 0.9\n    audit_sample: 0.02\n  tag_alert:\n    auto_allow_at: 0.5\n";
    let p = Policy::parse(src).unwrap();
    let allowed = eval(&p, "close_alert", json!({}), Some(0.95), json!({}));
    let plan = allowed.audit.expect("an allowed close_alert is sampled");
    assert_eq!((plan.sample, plan.sla.to_string()), (0.02, "4h".to_string()), "the SLA comes from the defaults");
    assert_eq!(eval(&p, "close_alert", json!({}), Some(0.5), json!({})).audit, None, "an escalation is not audited");
    assert_eq!(eval(&p, "tag_alert", json!({}), Some(0.9), json!({})).audit, None, "no audit_sample, no audit");
    let no_sla =
        Policy::parse("version: 1\npolicy: a\nactions:\n  x:\n    auto_allow_at: 0.1\n    audit_sample: 1\n").unwrap();
    assert_eq!(eval(&no_sla, "x", json!({}), Some(0.9), json!({})).audit.unwrap().sla.to_string(), "1d");
    let errs = Policy::parse("version: 1\npolicy: a\nactions:\n  x:\n    audit_sample: 2\n").unwrap_err();
    assert!(errs.to_string().contains("audit_sample must be between 0 and 1"), "{errs}");
}

/// The trust review's demo: a draft tuned from the version before a lesson
/// drops the trigger the lesson made; the comparison names it, and a version
/// that keeps or tightens everything names nothing.
#[test]
fn loosening_is_named_per_class() {
    let lesson = Policy::parse(
        "version: 1\npolicy: p\nactions:\n  isolate_host:\n    auto_allow_at: 0.95\n  close_alert:\n    auto_allow_at: 0.9\ntriggers:
  - name: isolate_only_for_severe_malware
    actions: [isolate_host]
    when: 'signals.alert_severity != \"critical\"'
    verdict: escalate
",
    )
    .unwrap();
    let tuned = Policy::parse(
        "version: 1\npolicy: p\nactions:\n  isolate_host:\n    auto_allow_at: 0.9\n  close_alert:\n    auto_allow_at: 0.95\n",
    )
    .unwrap();
    let loosened = lesson.loosened_in(&tuned, "isolate_host");
    assert_eq!(loosened.len(), 2, "{loosened:?}");
    assert!(loosened[0].contains("isolate_only_for_severe_malware"), "{loosened:?}");
    assert!(loosened[1].contains("from 0.95 to 0.9"), "{loosened:?}");
    assert!(lesson.loosened_in(&tuned, "close_alert").is_empty(), "a stricter threshold loosens nothing");
    assert!(lesson.loosened_in(&lesson, "isolate_host").is_empty());
    let allow = Policy::parse(
        &lesson
            .source()
            .replace("verdict: escalate", "verdict: allow\n    actions: [isolate_host]")
            .replace("    actions: [isolate_host]\n    when", "    when"),
    )
    .unwrap();
    assert!(lesson.loosened_in(&allow, "isolate_host").iter().any(|l| l.contains("from escalate to allow")));
}

/// `policy check` names what cannot match: the trust review's typos.
#[test]
fn names_that_match_nothing_are_warned_about() {
    let src = "version: 1\npolicy: p\ndefaults:\n  reviewers: [soc_analyst]\nactions:
  isolate_host:
    auto_allow_at: 0.9
  isolate_hots:
    reviewers: [soc_analsyt]
";
    let p = Policy::parse(src).unwrap();
    let offline = p.name_warnings(None, None);
    assert!(offline.iter().any(|w| w.contains("`isolate_host` and `isolate_hots`")), "{offline:?}");
    assert!(offline.iter().any(|w| w.contains("`soc_analsyt` and `soc_analyst`")), "{offline:?}");
    let seen: std::collections::BTreeSet<String> = ["isolate_host".to_string()].into();
    let held: std::collections::BTreeSet<String> = ["soc_analyst".to_string()].into();
    let w = p.name_warnings(Some(&seen), Some(&held));
    assert!(w.iter().any(|w| w.contains("`isolate_hots` was never proposed; did you mean `isolate_host`")), "{w:?}");
    assert!(
        w.iter().any(|w| w.contains("`soc_analsyt` is held by no active key; did you mean `soc_analyst`")),
        "{w:?}"
    );
    assert!(Policy::parse(SOC).unwrap().name_warnings(None, None).is_empty(), "the example is clean");
}

/// Found by the policy fuzzer: an invalid condition whose error points inside
/// a multi-byte character made locating the error panic (a byte offset that
/// is not a character boundary). The error is reported, with a position.
#[test]
fn an_error_at_a_multibyte_character_is_located_not_a_panic() {
    for when in [r#"args.ip.start---"\朜C0"#, "args.x == \"\\é", "朜 ==", "args.y ~ é"] {
        let src = format!(
            "version: 1\npolicy: p\ndefaults:\n  reviewers: [r]\n  sla: 1m\n  fallback: deny\ntriggers:\n  - name: t\n    verdict: deny\n    when: '{}'\n",
            when.replace('\'', "''")
        );
        let e = Policy::parse(&src).expect_err(when);
        let text = e.render("p.yaml");
        assert!(text.contains("invalid condition") && text.contains("p.yaml:10:"), "{when}: {text}");
    }
}
