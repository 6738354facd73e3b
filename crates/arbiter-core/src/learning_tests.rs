//! Tests of the learning loop's pure parts: lessons from reviews, guidance,
//! datasets, similarity and the blast radius, rule mining, recurrence.

use crate::case::{Answer, Case};
use crate::decision::{Decision, DecisionStatus, FinalSource, FinalVerdict, FiredTrigger, Outcome};
use crate::escalation::Escalation;
use crate::insight::{self, Activity, AgentTotals, Features};
use crate::lesson::{GuidanceKind, HumanAnswer, Lesson, LessonPatch, guidance, guidance_prompt};
use crate::recurrence::{Labelled, RecurrenceStatus, measure};
use crate::review::*;
use crate::suggest::{Observation, Unanimous, atoms, mine};
use crate::{Action, HumanDuration, Severity, Timestamp, Verdict};
use serde_json::json;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn decision(id: &str, name: &str, args: serde_json::Value, signals: serde_json::Value) -> Decision {
    Decision {
        id: id.into(),
        agent: "soc-agent".into(),
        agent_key_id: "k".into(),
        idempotency_key: None,
        action: Action { name: name.into(), args, confidence: Some(0.9), signals },
        trace_id: None,
        context: json!({"alert": "beaconing to a known bad domain"}),
        verdict: Verdict::Escalate,
        status: DecisionStatus::Final,
        triggers: vec![FiredTrigger { name: "isolate_server".into(), verdict: Verdict::Escalate, reason: "r".into() }],
        explanation: "escalated".into(),
        escalation: None,
        policy_hash: "p1".into(),
        case_id: Some(format!("c-{id}")),
        received_at: Timestamp(0),
        event_time: Timestamp(0),
        eval_micros: 1,
        final_verdict: None,
        condition_errors: vec![],
        outcome: None,
        tool_result: None,
        subject: None,
        threshold: None,
        audit: None,
        event_time_skew_ms: None,
    }
}

fn reviewed(mut d: Decision, verdict: Verdict, modified: Option<serde_json::Value>, rationale: &str) -> Decision {
    d.final_verdict = Some(FinalVerdict {
        verdict,
        source: FinalSource::Review,
        action: modified.map(|args| Action { args, ..d.action.clone() }),
        decided_by: vec!["lee".into()],
        rationale: rationale.into(),
        decided_at: Timestamp(1),
        receipt: None,
    });
    d
}

fn review_case() -> Case {
    let mut r = Review::new("Servers isolated on weak evidence".into(), ReviewSource::Case);
    r.decision_ids = vec!["d0".into(), "d1".into()];
    let entry = |record| StageEntry {
        by: "eve".into(),
        role: "engineering".into(),
        rationale: "why".into(),
        at: Timestamp(5),
        record,
    };
    r.record(entry(StageRecord::TraceInspection(TraceInspection {
        findings: vec![Finding {
            decision_id: "d1".into(),
            span_id: None,
            kind: FindingKind::WrongAction,
            note: "isolated a server for one process".into(),
        }],
    })));
    r.record(entry(StageRecord::ImpactAssessment(ImpactAssessment {
        severity: ImpactSeverity::S2,
        scope: Scope { count: 3, entities: vec![] },
        technical_correctness: "over-broad containment".into(),
        user_experience: "an outage".into(),
    })));
    r.record(entry(StageRecord::ResolutionDesign(ResolutionDesign {
        interventions: vec![
            InterventionSpec {
                kind: InterventionKind::ToolChange,
                description: "confirm before isolating a server".into(),
                owner: "eve".into(),
                expected_effect: "x".into(),
                policy_version: Some("v2".into()),
            },
            InterventionSpec {
                kind: InterventionKind::PromptRefinement,
                description: "Prefer network-only containment for servers.".into(),
                owner: "eve".into(),
                expected_effect: "x".into(),
                policy_version: None,
            },
        ],
        no_intervention_needed: None,
    })));
    let mut c = Case::new_review(
        "r1".into(),
        r,
        "isolate_host".into(),
        "soc-agent".into(),
        Severity::High,
        Default::default(),
        Timestamp(0),
    );
    c.id = "r1".into();
    c
}

fn answer_case(d: &Decision, modes: &[&str]) -> Case {
    let esc = Escalation {
        severity: Severity::High,
        reviewers: Default::default(),
        approvals: 1,
        sla: HumanDuration(60),
        fallback: Verdict::Deny,
        tiers: vec![],
    };
    let mut c = Case::new_approval(d.case_id.clone().unwrap(), d, esc, Timestamp(0));
    c.answers.push(Answer {
        by: "lee".into(),
        key_id: "k".into(),
        verdict: Verdict::Deny,
        rationale: "r".into(),
        modified_args: None,
        failure_modes: modes.iter().map(|m| m.to_string()).collect(),
        args_digest: None,
        at: Timestamp(1),
        via: None,
    });
    c
}

#[test]
fn a_closed_review_becomes_a_lesson_with_its_facts() {
    let d1 = reviewed(
        decision("d1", "isolate_host", json!({"host": "srv-1"}), json!({})),
        Verdict::Deny,
        None,
        "a server for one process is too much",
    );
    let case = review_case();
    assert_eq!(
        case.review.as_ref().unwrap().failing_decisions(),
        ["d1"],
        "the trace inspection's decisions come first"
    );
    let l = Lesson::from_review(
        "L1".into(),
        &case,
        std::slice::from_ref(&d1),
        &[answer_case(&d1, &["wrong_target"])],
        "confirmation step added",
        "eve",
        Timestamp(9),
    );
    assert_eq!(l.title, "Servers isolated on weak evidence");
    assert!(
        l.summary.starts_with("confirmation step added\nImpact (S2, 3 affected): over-broad containment"),
        "{}",
        l.summary
    );
    assert_eq!(l.root_cause, "isolated a server for one process");
    assert_eq!(l.failure_modes, ["wrong_action", "wrong_target"]);
    assert_eq!(
        (l.action_classes.clone(), l.agents.clone(), l.triggers.clone()),
        (vec!["isolate_host".to_string()], vec!["soc-agent".to_string()], vec!["isolate_server".to_string()])
    );
    assert_eq!(l.policy_versions, ["p1", "v2"], "the deciding version and the intervention's");
    assert_eq!(l.guidance, ["Prefer network-only containment for servers."], "prompt refinements become guidance");
    assert_eq!(l.answers.len(), 1);
    assert!(l.answers[0].overrode());
    assert!(!l.publish && l.revision == 1);
}

#[test]
fn edits_record_what_changed_and_a_refresh_keeps_them() {
    let case = review_case();
    let mut l = Lesson::from_review("L1".into(), &case, &[], &[], "done", "eve", Timestamp(9));
    assert!(l.apply(&LessonPatch::default(), "ann", Timestamp(10)).is_empty());
    assert_eq!(l.revision, 1, "no change, no revision");
    let changed = l.apply(
        &LessonPatch {
            title: Some("  New title ".into()),
            publish: Some(true),
            summary: Some("done".into()),
            ..Default::default()
        },
        "ann",
        Timestamp(11),
    );
    assert_eq!(changed, ["title", "summary", "publish"]);
    assert_eq!((l.title.as_str(), l.revision, l.updated_by.as_str()), ("New title", 2, "ann"));
    let d = decision("d1", "isolate_host", json!({}), json!({}));
    l.refresh(&case, &[d], &[], "eve", Timestamp(12));
    assert_eq!((l.title.as_str(), l.publish, l.revision), ("New title", true, 3));
    assert_eq!(l.decision_ids, ["d1"]);
    assert!(LessonPatch { title: Some(" ".into()), ..Default::default() }.validate().is_err());
    assert!(LessonPatch { failure_modes: Some(vec!["not a tag".into()]), ..Default::default() }.validate().is_err());
}

#[test]
fn guidance_comes_from_published_lessons_and_cites_them() {
    let case = review_case();
    let refused = reviewed(
        decision("d1", "isolate_host", json!({"host": "srv-1"}), json!({})),
        Verdict::Deny,
        None,
        "one process does not justify a server",
    );
    let modified = reviewed(
        decision("d2", "isolate_host", json!({"host": "srv-2", "mode": "full"}), json!({})),
        Verdict::Allow,
        Some(json!({"host": "srv-2", "mode": "network_only"})),
        "keep it reachable",
    );
    let mut a = Lesson::from_review("La".into(), &case, &[refused.clone(), modified], &[], "x", "eve", Timestamp(1));
    let mut b = Lesson::from_review("Lb".into(), &case, &[refused], &[], "x", "eve", Timestamp(1));
    assert!(guidance(&[a.clone()], None).is_empty(), "unpublished lessons give nothing");
    for l in [&mut a, &mut b] {
        l.publish = true;
    }
    a.interventions[0].status = InterventionStatus::Done;
    let items = guidance(&[a, b], Some("isolate_host"));
    let kinds: Vec<GuidanceKind> = items.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        [GuidanceKind::RequiredStep, GuidanceKind::Rejected, GuidanceKind::Modified, GuidanceKind::Instruction]
    );
    assert_eq!(items[1].lessons, ["La", "Lb"], "the same line from two lessons cites both");
    assert!(items[2].text.contains("mode: \"full\" -> \"network_only\""), "{}", items[2].text);
    assert!(guidance(&[], Some("isolate_host")).is_empty());
    let text = guidance_prompt(&items);
    assert!(
        text.contains("Before `isolate_host`:\n- Required: confirm before isolating a server [lesson La]"),
        "{text}"
    );
    assert!(guidance_prompt(&[]).contains("(none yet)"));
}

#[test]
fn datasets_hold_only_what_people_decided() {
    let plain = decision("d0", "isolate_host", json!({"host": "a"}), json!({}));
    assert!(crate::dataset::example(&plain, None).is_none());
    let d = reviewed(
        decision("d1", "isolate_host", json!({"host": "a", "mode": "full"}), json!({})),
        Verdict::Allow,
        Some(json!({"host": "a", "mode": "network_only"})),
        "keep it reachable",
    );
    let e = crate::dataset::example(&d, Some(&answer_case(&d, &["wrong_arguments"]))).unwrap();
    assert_eq!(
        (e.label.verdict, e.label.modified_args.clone()),
        (Verdict::Allow, Some(json!({"host": "a", "mode": "network_only"})))
    );
    assert_eq!(e.label.failure_modes, ["wrong_arguments"]);
    assert_eq!(e.policy.verdict, Verdict::Escalate);
    let chat = crate::dataset::chat(&e, crate::dataset::DEFAULT_SYSTEM_PROMPT);
    let msgs = chat["messages"].as_array().unwrap();
    assert_eq!(msgs.iter().map(|m| m["role"].as_str().unwrap()).collect::<Vec<_>>(), ["system", "user", "assistant"]);
    let answer: serde_json::Value = serde_json::from_str(msgs[2]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"verdict": "allow", "rationale": "keep it reachable", "args": {"host": "a", "mode": "network_only"}})
    );
    let user: serde_json::Value = serde_json::from_str(msgs[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(user["action"]["name"], "isolate_host");
}

#[test]
fn similarity_follows_its_documented_weights() {
    let base = decision("d0", "isolate_host", json!({"host": "ws-1", "host_tags": ["workstation"]}), json!({}));
    let f = Features::of_decision(&base);
    assert_eq!(insight::similarity(&f, &f), 1.0, "a decision is fully similar to itself");
    let mut other_host = base.clone();
    other_host.action.args = json!({"host": "ws-2", "host_tags": ["workstation"]});
    let s = insight::similarity(&f, &Features::of_decision(&other_host));
    assert!((s - (0.40 + 0.25 + 0.10 + 0.15)).abs() < 1e-9, "same group, not the same subject: {s}");
    let mut other_class = base.clone();
    other_class.action.name = "block_ip".into();
    other_class.triggers.clear();
    other_class.context = json!({});
    other_class.action.args = json!({"ip": "1.2.3.4"});
    assert_eq!(insight::similarity(&f, &Features::of_decision(&other_class)), 0.0);
    assert_eq!(insight::subject(&base.action).as_deref(), Some("host:ws-1"));
    assert_eq!(
        insight::subject(&Action { name: "x".into(), args: json!({"ip": 7}), confidence: None, signals: json!({}) })
            .as_deref(),
        Some("ip:7")
    );
    // ranking: never itself, best first, at most three, only above the floor
    let mut c = vec![base.clone(), other_class.clone()];
    for i in 0..5 {
        let mut d = other_host.clone();
        d.id = format!("h{i}");
        d.event_time = Timestamp(i);
        c.push(d);
    }
    let top = insight::similar_cases(&base, &c);
    assert_eq!(top.iter().map(|s| s.decision_id.as_str()).collect::<Vec<_>>(), ["h4", "h3", "h2"]);
}

#[test]
fn the_blast_radius_counts_the_agent_and_the_subject() {
    let now = Timestamp(30 * 24 * HOUR);
    let mut target = decision("t", "isolate_host", json!({"host": "ws-9"}), json!({}));
    target.event_time = now;
    // 3 per day for the week before (spread over the day), then 14 in the last hour
    let mut activity: Vec<Activity> = (1..=7)
        .flat_map(|day| {
            (0..3).map(move |k| Activity {
                at: Timestamp(now.0 - day * 24 * HOUR - (k + 2) * HOUR),
                subject: Some(format!("host:h{k}")),
            })
        })
        .collect();
    activity.extend(
        (0..14).map(|k| Activity { at: Timestamp(now.0 - (k + 1) * MIN), subject: Some(format!("host:n{}", k % 10)) }),
    );
    let earlier = reviewed(
        decision("e1", "isolate_host", json!({"host": "ws-9"}), json!({})),
        Verdict::Deny,
        None,
        "false positive",
    );
    let totals = AgentTotals { decisions: 100, escalated: 20, reviewed: 10, overridden: 4 };
    let b = insight::blast_radius(&target, now, &activity, &[earlier], 3, totals);
    assert_eq!((b.last_hour, b.last_day, b.distinct_subjects_hour), (14, 14, 10));
    assert_eq!(b.daily_median_7d, 3.0);
    assert_eq!(b.hourly_median_7d, 0.0, "most hours are quiet");
    assert_eq!((b.subject.as_deref(), b.subject_total), (Some("host:ws-9"), 3));
    assert_eq!(b.subject_history[0].verdict, Some(Verdict::Deny));
    assert_eq!((b.escalation_rate_7d, b.override_rate_7d), (0.2, Some(0.4)));
    assert!(b.summary.contains("14 time(s) in the last hour"), "{}", b.summary);
    let none = insight::blast_radius(&target, now, &[], &[], 0, AgentTotals::default());
    assert_eq!(none.override_rate_7d, None);
}

#[test]
fn mining_finds_what_people_always_answer_the_same_way() {
    let mut ds = Vec::new();
    for i in 0..25 {
        // ransomware on workstations: always approved unchanged
        ds.push(reviewed(
            decision(
                &format!("a{i}"),
                "isolate_host",
                json!({"host": format!("ws-{i}"), "host_tags": ["workstation"]}),
                json!({"alert_type": "ransomware"}),
            ),
            Verdict::Allow,
            None,
            "ok",
        ));
        // phishing on workstations: refused
        ds.push(reviewed(
            decision(
                &format!("b{i}"),
                "isolate_host",
                json!({"host": format!("ws-{i}"), "host_tags": ["workstation"]}),
                json!({"alert_type": "phishing"}),
            ),
            Verdict::Deny,
            None,
            "no",
        ));
    }
    ds.push(reviewed(
        decision(
            "m",
            "isolate_host",
            json!({"host": "ws-x", "host_tags": ["workstation"]}),
            json!({"alert_type": "ransomware"}),
        ),
        Verdict::Allow,
        Some(json!({"host": "ws-x", "mode": "network_only"})),
        "narrowed",
    ));
    let obs: Vec<Observation<'_>> = ds.iter().filter_map(Observation::of).collect();
    assert!(
        atoms(&ds[0].action.args, &ds[0].action.signals).iter().all(|a| a.field != "host"),
        "subjects are not conditions"
    );
    let found = mine(&obs, 20, 10);
    let described: Vec<String> = found.iter().map(|p| p.describe()).collect();
    // ransomware alone is not unanimous (one modification): no pattern for it; phishing alone is.
    assert_eq!(
        described,
        [r#"`isolate_host` with alert_type == "phishing" was refused 25 of 25 times"#],
        "{described:?}"
    );
    assert_eq!(found[0].answer, Unanimous::Rejected);
    assert_eq!(found[0].condition(), r#"(has(signals.alert_type) && signals.alert_type == "phishing")"#);
    // without the modification the approvals are unanimous too, and an allow rule keeps to the confidence seen
    let obs: Vec<Observation<'_>> = ds[..50].iter().filter_map(Observation::of).collect();
    let found = mine(&obs, 20, 10);
    let allow = found.iter().find(|p| p.answer == Unanimous::Approved).expect("the approvals");
    assert!(allow.condition().ends_with("confidence != null && confidence >= 0.9"), "{}", allow.condition());
    assert!(mine(&obs, 26, 10).is_empty(), "below the support nothing is suggested");
}

#[test]
fn recurrence_compares_equal_windows_and_says_when_it_cannot_tell() {
    let act = Timestamp(100 * HOUR);
    let point = |h: i64, harmful: bool| Labelled {
        at: Timestamp(act.0 + h * HOUR),
        source: Some(FinalSource::Policy),
        verdict: Some(Verdict::Allow),
        correct: !harmful,
    };
    // before: 40 of 100 harmful; after: 2 of 100
    let mut pts: Vec<Labelled> = (0..100).map(|i| point(-1 - (i % 40), i < 40)).collect();
    pts.extend((0..100).map(|i| point(i % 40, i < 2)));
    let r = measure("v2", vec!["isolate_host".into()], act, Timestamp(act.0 + 48 * HOUR), &pts);
    assert_eq!(r.status, RecurrenceStatus::Reduced, "{}", r.summary);
    assert_eq!((r.test.reference_events, r.test.reference_trials, r.test.events, r.test.trials), (40, 100, 2, 100));
    // an hour after activation: the windows are an hour long, with too little in them
    let early = measure("v2", vec![], act, Timestamp(act.0 + HOUR), &pts);
    assert_eq!(early.status, RecurrenceStatus::NotEnoughData, "{}", early.summary);
    assert!(early.summary.starts_with("not enough data yet"));
    // reviewed or right decisions are not failures
    let fine = Labelled { at: act, source: Some(FinalSource::Review), verdict: Some(Verdict::Allow), correct: false };
    assert!(!fine.harmful_unreviewed());
    let _ = Outcome { correct: true, cost: None, label: None, note: None, recorded_at: act, recorded_by: "x".into() };
    let _ = HumanAnswer::of(&decision("z", "x", json!({}), json!({})), None);
}
