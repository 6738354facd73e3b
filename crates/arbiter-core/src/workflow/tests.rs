use super::*;
use crate::duration::HumanDuration;
use crate::escalation::{Escalation, Tier};
use crate::queue;
use crate::review::*;
use crate::verdict::Severity;
use proptest::prelude::*;

const MIN: i64 = 60_000;

fn tags(t: &[&str]) -> BTreeSet<String> {
    t.iter().map(|s| s.to_string()).collect()
}

fn reviewer(name: &str, t: &[&str]) -> Actor {
    Actor { name: name.into(), key_id: format!("k-{name}"), tags: tags(t), is_admin: false }
}

fn admin() -> Actor {
    Actor { name: "root".into(), key_id: "k-root".into(), tags: tags(&[]), is_admin: true }
}

fn approval(approvals: u32) -> Case {
    Case {
        id: "c1".into(),
        kind: CaseKind::Approval,
        state: CaseState::Open,
        decision_id: Some("d1".into()),
        action_name: "isolate_host".into(),
        agent: "soc-agent".into(),
        escalation: Escalation {
            severity: Severity::High,
            reviewers: tags(&["soc_analyst"]),
            approvals,
            sla: HumanDuration(15 * 60),
            fallback: Verdict::Deny,
            tiers: vec![
                Tier { reviewers: tags(&["soc_lead"]), sla: HumanDuration(10 * 60) },
                Tier { reviewers: tags(&["incident_commander"]), sla: HumanDuration(10 * 60) },
            ],
        },
        tier: 0,
        sla_deadline: Timestamp(15 * MIN),
        answers: vec![],
        confidence: Some(0.8),
        trace_id: None,
        args_digest: Some(crate::canonical::args_digest(&serde_json::json!({"host": "ws-1"}))),
        claim: None,
        comments: vec![],
        review: None,
        subject: None,
        trigger: None,
        threshold: None,
        warn_before_ms: None,
        warned_tier: None,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

/// Run a command and fold its events, as the store does.
fn run(case: &mut Case, cmd: CaseCommand, now: i64) -> Result<Vec<CaseEvent>, CaseError> {
    let events = handle(case, &cmd, Timestamp(now))?;
    for e in &events {
        case.apply(e, Timestamp(now));
    }
    Ok(events)
}

fn answer(by: &Actor, verdict: Verdict, args: Option<serde_json::Value>) -> CaseCommand {
    CaseCommand::Answer {
        by: by.clone(),
        verdict,
        check: args.as_ref().map(|_| allowed()),
        modified_args: args,
        rationale: "checked the host's EDR timeline".into(),
        failure_modes: vec![],
        via: None,
    }
}

/// The policy allows the modified action outright (no stricter requirements).
fn allowed() -> ModificationCheck {
    ModificationCheck { verdict: Verdict::Allow, triggers: vec![], escalation: None }
}

fn modify(by: &Actor, args: serde_json::Value, check: ModificationCheck) -> CaseCommand {
    CaseCommand::Answer {
        by: by.clone(),
        verdict: Verdict::Allow,
        modified_args: Some(args),
        check: Some(check),
        rationale: "narrower action is enough here".into(),
        failure_modes: vec![],
        via: None,
    }
}

#[test]
fn claims_are_exclusive_expire_and_renew() {
    let mut c = approval(1);
    let ann = reviewer("ann", &["soc_analyst"]);
    let bob = reviewer("bob", &["soc_analyst"]);
    run(&mut c, CaseCommand::Claim { by: ann.clone(), lease_ms: 10 * MIN }, 0).unwrap();
    assert_eq!(c.state, CaseState::Claimed);
    assert!(matches!(
        run(&mut c, CaseCommand::Claim { by: bob.clone(), lease_ms: 10 * MIN }, MIN),
        Err(CaseError::HeldByOther { .. })
    ));
    assert!(matches!(run(&mut c, answer(&bob, Verdict::Allow, None), MIN), Err(CaseError::HeldByOther { .. })));
    // renewal by the holder
    let ev = run(&mut c, CaseCommand::Claim { by: ann.clone(), lease_ms: 10 * MIN }, 5 * MIN).unwrap();
    assert_eq!(
        ev,
        vec![CaseEvent::Claimed {
            claim: Claim { by: "ann".into(), key_id: "k-ann".into(), until: Timestamp(15 * MIN) },
            renewed: true
        }]
    );
    // the sweeper returns an expired lease to the queue
    assert_eq!(sweep(&c, Timestamp(14 * MIN)), vec![]);
    let mut c2 = c.clone();
    c2.sla_deadline = Timestamp(60 * MIN);
    run(&mut c2, CaseCommand::Sweep, 15 * MIN).unwrap();
    assert_eq!((c2.state, c2.claim.clone()), (CaseState::Open, None));
    run(&mut c2, CaseCommand::Claim { by: bob.clone(), lease_ms: 10 * MIN }, 15 * MIN).unwrap();
    // release: only the holder (or an admin)
    assert_eq!(run(&mut c2, CaseCommand::Release { by: ann.clone() }, 16 * MIN), Err(CaseError::NotHolder));
    run(&mut c2, CaseCommand::Release { by: bob.clone() }, 16 * MIN).unwrap();
    assert_eq!(c2.state, CaseState::Open);
    // reassign: admins only
    assert_eq!(
        run(&mut c2, CaseCommand::Reassign { by: ann.clone(), to: bob.clone(), lease_ms: MIN }, 17 * MIN),
        Err(CaseError::AdminOnly("reassign a case"))
    );
    run(&mut c2, CaseCommand::Reassign { by: admin(), to: bob.clone(), lease_ms: MIN }, 17 * MIN).unwrap();
    assert_eq!(c2.claim.as_ref().unwrap().by, "bob");
}

#[test]
fn two_approvals_need_two_distinct_reviewers_of_the_same_arguments() {
    let mut c = approval(2);
    let ann = reviewer("ann", &["soc_analyst"]);
    let bob = reviewer("bob", &["soc_analyst"]);
    run(&mut c, CaseCommand::Claim { by: ann.clone(), lease_ms: 10 * MIN }, 0).unwrap();
    let ev = run(&mut c, answer(&ann, Verdict::Allow, Some(serde_json::json!({"host": "a"}))), MIN).unwrap();
    assert_eq!(ev.len(), 1, "one approval of two does not decide");
    assert_eq!((c.state, c.claim.clone()), (CaseState::Open, None), "the approver's lease ends");
    assert_eq!(run(&mut c, answer(&ann, Verdict::Allow, None), MIN), Err(CaseError::AlreadyAnswered));
    assert_eq!(
        run(&mut c, CaseCommand::Claim { by: ann.clone(), lease_ms: MIN }, MIN),
        Err(CaseError::AlreadyAnswered)
    );
    // a plain approval approves the arguments as they stand: ann's modification
    let ev = run(&mut c, answer(&bob, Verdict::Allow, None), 2 * MIN).unwrap();
    assert_eq!(
        ev[1],
        CaseEvent::Decided {
            verdict: Verdict::Allow,
            modified_args: Some(serde_json::json!({"host": "a"})),
            decided_by: vec!["ann".into(), "bob".into()]
        }
    );
    assert_eq!(c.state, CaseState::Decided);
    assert!(matches!(
        run(&mut c, answer(&reviewer("cy", &["soc_analyst"]), Verdict::Allow, None), 3 * MIN),
        Err(CaseError::NotOpen(_))
    ));
}

#[test]
fn an_approval_never_counts_toward_other_arguments() {
    let mut c = approval(2);
    let ann = reviewer("ann", &["soc_analyst"]);
    let bob = reviewer("bob", &["soc_analyst"]);
    let cy = reviewer("cy", &["soc_analyst"]);
    run(&mut c, answer(&ann, Verdict::Allow, None), MIN).unwrap();
    assert_eq!(c.approvals(), 1);
    // bob changes the arguments: ann approved other ones, so only bob's approval counts
    let ev = run(&mut c, answer(&bob, Verdict::Allow, Some(serde_json::json!({"host": "b"}))), 2 * MIN).unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!((c.state, c.approvals(), c.approvers()), (CaseState::Open, 1, vec!["bob"]));
    assert_eq!(c.candidate_digest(), Some(crate::canonical::args_digest(&serde_json::json!({"host": "b"}))).as_deref());
    // ann may approve again, now the new arguments; that decides
    let ev = run(&mut c, answer(&ann, Verdict::Allow, None), 3 * MIN).unwrap();
    assert_eq!(
        ev.last().unwrap(),
        &CaseEvent::Decided {
            verdict: Verdict::Allow,
            modified_args: Some(serde_json::json!({"host": "b"})),
            decided_by: vec!["bob".into(), "ann".into()]
        }
    );
    // the same modification written differently (key order, spacing) is the same arguments
    let mut c = approval(2);
    run(&mut c, answer(&ann, Verdict::Allow, Some(serde_json::json!({"host": "b", "mode": "net"}))), MIN).unwrap();
    let same: serde_json::Value = serde_json::from_str(r#"{ "mode":"net", "host":"b" }"#).unwrap();
    let ev = run(&mut c, answer(&cy, Verdict::Allow, Some(same)), 2 * MIN).unwrap();
    assert!(matches!(ev.last(), Some(CaseEvent::Decided { .. })), "{ev:?}");
}

#[test]
fn a_modification_is_checked_like_a_new_action() {
    let ann = reviewer("ann", &["soc_analyst"]);
    let bob = reviewer("bob", &["soc_analyst"]);
    let lee = reviewer("lee", &["soc_lead"]);
    let dc = serde_json::json!({"host": "dc-01", "host_tags": ["domain_controller"]});
    // unchecked modifications are refused
    let mut c = approval(1);
    let unchecked = CaseCommand::Answer {
        by: ann.clone(),
        verdict: Verdict::Allow,
        modified_args: Some(dc.clone()),
        check: None,
        rationale: "looks fine to me".into(),
        failure_modes: vec![],
        via: None,
    };
    assert!(matches!(run(&mut c, unchecked, MIN), Err(CaseError::Invalid { .. })));
    // a modification the policy denies is refused, naming the triggers
    let denied =
        ModificationCheck { verdict: Verdict::Deny, triggers: vec!["isolate_ot_device".into()], escalation: None };
    assert_eq!(
        run(&mut c, modify(&ann, dc.clone(), denied), MIN),
        Err(CaseError::ModificationDenied { triggers: vec!["isolate_ot_device".into()] })
    );
    assert!(c.answers.is_empty());
    // stricter requirements raise the case's to the union; the case stays open
    let stricter = Escalation {
        severity: Severity::Critical,
        reviewers: tags(&["soc_lead", "identity_team"]),
        approvals: 2,
        sla: HumanDuration(10 * 60),
        fallback: Verdict::Deny,
        tiers: vec![],
    };
    let check = ModificationCheck {
        verdict: Verdict::Escalate,
        triggers: vec!["isolate_domain_controller".into()],
        escalation: Some(stricter),
    };
    let ev = run(&mut c, modify(&ann, dc.clone(), check), MIN).unwrap();
    assert!(
        matches!(&ev[0], CaseEvent::RequirementsRaised { triggers, .. } if triggers == &["isolate_domain_controller"])
    );
    assert_eq!(ev.len(), 2, "raised and answered, not decided: {ev:?}");
    assert_eq!(c.state, CaseState::Open);
    assert_eq!(c.escalation.approvals, 2);
    assert_eq!(c.escalation.severity, Severity::Critical);
    assert_eq!(c.escalation.reviewers, tags(&["identity_team", "soc_analyst", "soc_lead"]));
    // the second approval of those arguments decides, with the modified arguments
    let ev = run(&mut c, answer(&lee, Verdict::Allow, None), 2 * MIN).unwrap();
    assert!(matches!(ev.last(), Some(CaseEvent::Decided { modified_args: Some(a), .. }) if a == &dc));
    // a modification the policy allows outright keeps the case's requirements
    let mut c = approval(1);
    let ev = run(&mut c, modify(&bob, serde_json::json!({"host": "ws-1", "mode": "net"}), allowed()), MIN).unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(c.escalation.approvals, 1);
}

#[test]
fn roles_rejections_and_own_actions() {
    let mut c = approval(2);
    assert!(matches!(
        run(&mut c, answer(&reviewer("ux1", &["ux"]), Verdict::Allow, None), 0),
        Err(CaseError::WrongRole { .. })
    ));
    assert_eq!(
        run(&mut c, answer(&reviewer("soc-agent", &["soc_analyst"]), Verdict::Allow, None), 0),
        Err(CaseError::OwnAction)
    );
    assert!(matches!(
        run(&mut c, answer(&reviewer("ann", &["soc_analyst"]), Verdict::Deny, Some(serde_json::json!({}))), 0),
        Err(CaseError::Invalid { .. })
    ));
    let ev = run(&mut c, answer(&admin(), Verdict::Deny, None), 0).unwrap();
    assert_eq!(ev.last().unwrap().final_verdict(), Some(Verdict::Deny), "one rejection decides");
}

#[test]
fn an_unclaimed_case_is_announced_due_soon_once_per_tier() {
    // tier 0 ends at 15 min, tier 1 at 25 min; warn 5 minutes before
    let mut c = approval(1);
    c.warn_before_ms = Some(5 * MIN);
    assert_eq!(c.due_at(), Some(Timestamp(10 * MIN)), "the sweeper wakes at the warning");
    assert_eq!(sweep(&c, Timestamp(10 * MIN - 1)), vec![]);
    let ev = run(&mut c, CaseCommand::Sweep, 10 * MIN).unwrap();
    assert!(
        matches!(ev[..], [CaseEvent::DueSoon { tier: 0, sla_deadline: Timestamp(t), .. }] if t == 15 * MIN),
        "{ev:?}"
    );
    assert_eq!(ev[0].kind(), "case.due_soon");
    assert_eq!((c.warned_tier, c.due_at()), (Some(0), Some(Timestamp(15 * MIN))), "once per tier");
    assert_eq!(run(&mut c, CaseCommand::Sweep, 11 * MIN).unwrap(), vec![]);
    // the next tier is announced again, 5 minutes before its end
    run(&mut c, CaseCommand::Sweep, 15 * MIN).unwrap();
    assert_eq!(c.due_at(), Some(Timestamp(20 * MIN)));
    assert!(matches!(run(&mut c, CaseCommand::Sweep, 20 * MIN).unwrap()[..], [CaseEvent::DueSoon { tier: 1, .. }]));

    // a claimed case is being worked: no warning while the lease holds; when it runs out, the warning comes
    let mut c = approval(1);
    c.warn_before_ms = Some(5 * MIN);
    let ann = reviewer("ann", &["soc_analyst"]);
    run(&mut c, CaseCommand::Claim { by: ann, lease_ms: 12 * MIN }, 0).unwrap();
    assert_eq!(c.due_at(), Some(Timestamp(12 * MIN)));
    let ev = run(&mut c, CaseCommand::Sweep, 12 * MIN).unwrap();
    assert!(matches!(ev[..], [CaseEvent::LeaseExpired { .. }, CaseEvent::DueSoon { tier: 0, .. }]), "{ev:?}");
    // without a warning window, nothing changes (the old behaviour)
    let c = approval(1);
    assert_eq!((c.due_at(), c.warn_at()), (Some(Timestamp(15 * MIN)), None));
}

#[test]
fn sla_moves_through_tiers_then_applies_the_fallback() {
    let mut c = approval(1);
    let ann = reviewer("ann", &["soc_analyst"]);
    let lead = reviewer("lee", &["soc_lead"]);
    run(&mut c, CaseCommand::Claim { by: ann.clone(), lease_ms: 30 * MIN }, 0).unwrap();
    assert_eq!(sweep(&c, Timestamp(15 * MIN - 1)), vec![]);
    let ev = run(&mut c, CaseCommand::Sweep, 15 * MIN).unwrap();
    assert_eq!(
        ev,
        vec![CaseEvent::TierEscalated {
            from_tier: 0,
            to_tier: 1,
            reviewers: tags(&["soc_lead"]),
            sla_deadline: Timestamp(25 * MIN)
        }]
    );
    assert_eq!((c.tier, c.state, c.claim.is_none()), (1, CaseState::Open, true));
    // the first tier's reviewers no longer answer; the lead does
    assert!(matches!(
        run(&mut c.clone(), answer(&ann, Verdict::Allow, None), 16 * MIN),
        Err(CaseError::WrongRole { .. })
    ));
    assert!(run(&mut c.clone(), answer(&lead, Verdict::Allow, None), 16 * MIN).is_ok());
    // a sweeper away for a long time catches up in one pass: tier 3, then the fallback
    let ev = run(&mut c, CaseCommand::Sweep, 60 * MIN).unwrap();
    assert_eq!(ev.len(), 2);
    assert!(matches!(ev[0], CaseEvent::TierEscalated { to_tier: 2, .. }));
    assert_eq!(ev[1], CaseEvent::FallbackApplied { verdict: Verdict::Deny, reason: "sla_expired".into() });
    assert_eq!(c.state, CaseState::Decided);
    assert_eq!(c.due_at(), None);
    assert_eq!(sweep(&c, Timestamp(120 * MIN)), vec![]);
}

fn review_case() -> Case {
    let mut c = approval(1);
    c.id = "r1".into();
    c.kind = CaseKind::Review;
    c.review = Some(Review::new("Over-isolation of workstations".into(), ReviewSource::Manual));
    c
}

fn stage(by: &Actor, role: &str, record: StageRecord) -> CaseCommand {
    CaseCommand::RecordStage { by: by.clone(), role: role.into(), rationale: "based on the replay".into(), record }
}

#[test]
fn a_review_closes_only_with_every_stage_and_a_resolution() {
    let mut c = review_case();
    let eng = reviewer("eve", &["engineering"]);
    let ds = reviewer("dan", &["data_science"]);
    let close = |by: &Actor| CaseCommand::Close { by: by.clone(), reason: "done".into() };
    assert!(matches!(run(&mut c, close(&eng), 0), Err(CaseError::Incomplete(m)) if m.len() == 4));
    run(
        &mut c,
        stage(
            &eng,
            "engineering",
            StageRecord::ContextualAnalysis(ContextualAnalysis {
                reproduced: Reproduced::Partly,
                steps: vec!["replayed alert 8812 against prompt v12".into()],
                environment: "staging, model snapshot 2026-11-20".into(),
                links: vec![Link { decision_id: Some("d1".into()), ..Link::default() }],
                bundle_sha256: None,
                differences: None,
            }),
        ),
        0,
    )
    .unwrap();
    // speaking for a role one does not have
    assert!(matches!(
        run(&mut c, stage(&eng, "ux", StageRecord::TraceInspection(TraceInspection { findings: vec![] })), 0),
        Err(CaseError::NotYourRole { .. })
    ));
    assert!(matches!(
        run(&mut c, stage(&eng, "engineering", StageRecord::TraceInspection(TraceInspection { findings: vec![] })), 0),
        Err(CaseError::Invalid { .. })
    ));
    run(
        &mut c,
        stage(
            &eng,
            "engineering",
            StageRecord::TraceInspection(TraceInspection {
                findings: vec![Finding {
                    decision_id: "d1".into(),
                    span_id: Some("s7".into()),
                    kind: FindingKind::WrongAction,
                    note: "isolated instead of opening a ticket".into(),
                }],
            }),
        ),
        0,
    )
    .unwrap();
    run(
        &mut c,
        stage(
            &ds,
            "data_science",
            StageRecord::ImpactAssessment(ImpactAssessment {
                severity: ImpactSeverity::S2,
                scope: Scope { count: 37, entities: vec![Entity { kind: "host".into(), id: "ws-0042".into() }] },
                technical_correctness: "31 of 37 isolations were unnecessary".into(),
                user_experience: "37 employees lost network access for 2h".into(),
            }),
        ),
        0,
    )
    .unwrap();
    assert!(
        matches!(run(&mut c, close(&eng), 0), Err(CaseError::Incomplete(m)) if m == vec!["an entry for the resolution design".to_string()])
    );
    assert!(matches!(
        run(
            &mut c,
            stage(
                &eng,
                "engineering",
                StageRecord::ResolutionDesign(ResolutionDesign { interventions: vec![], no_intervention_needed: None })
            ),
            0
        ),
        Err(CaseError::Invalid { .. })
    ));
    run(
        &mut c,
        stage(
            &eng,
            "engineering",
            StageRecord::ResolutionDesign(ResolutionDesign {
                interventions: vec![InterventionSpec {
                    kind: InterventionKind::ToolChange,
                    description: "confirmation step before isolate_host on servers".into(),
                    owner: "eve".into(),
                    expected_effect: "no unconfirmed server isolations".into(),
                    policy_version: None,
                }],
                no_intervention_needed: None,
            }),
        ),
        0,
    )
    .unwrap();
    let r = c.review.as_ref().unwrap();
    assert_eq!(r.interventions.len(), 1);
    assert_eq!(r.missing(), ["intervention 0 (tool_change) linked to the policy version that carries it"]);
    let upd = |status| CaseCommand::UpdateIntervention { by: eng.clone(), index: 0, status, note: None };
    assert!(matches!(run(&mut c, upd(InterventionStatus::Verified), 1), Err(CaseError::Invalid { .. })));
    run(&mut c, upd(InterventionStatus::Done), 1).unwrap();
    run(&mut c, upd(InterventionStatus::Verified), 2).unwrap();
    // A tool change is carried by a policy version, backtested on the review's decisions before it closes.
    assert!(matches!(run(&mut c, close(&eng), 3), Err(CaseError::Incomplete(_))));
    let link = |v: &str| CaseCommand::LinkPolicyVersion { by: eng.clone(), index: 0, policy_version: v.into() };
    assert!(matches!(run(&mut c, link("v2"), 3), Err(CaseError::Invalid { .. })), "a full hash");
    let (v, other) = ("b".repeat(64), "c".repeat(64));
    run(&mut c, link(&v), 3).unwrap();
    let check = |version: &str, decisions: Vec<&str>, still: Vec<&str>| CaseCommand::RecordCheck {
        by: eng.clone(),
        index: 0,
        check: InterventionCheck {
            policy_version: version.into(),
            decisions: decisions.into_iter().map(String::from).collect(),
            still_allowed: still.into_iter().map(String::from).collect(),
            at: Timestamp(3),
            by: "eve".into(),
        },
    };
    assert!(
        matches!(run(&mut c, check(&other, vec!["d1"], vec![]), 3), Err(CaseError::Invalid { .. })),
        "another version"
    );
    run(&mut c, check(&v, vec![], vec![]), 3).unwrap();
    let missing = c.review.as_ref().unwrap().missing();
    assert!(missing[0].contains("decisions to check it against"), "{missing:?}");
    run(&mut c, check(&v, vec!["d1", "d2"], vec!["d2"]), 3).unwrap();
    assert!(matches!(run(&mut c, close(&eng), 3), Err(CaseError::Incomplete(_))), "d2 would still pass");
    run(&mut c, check(&v, vec!["d1", "d2"], vec![]), 3).unwrap();
    run(&mut c, close(&eng), 3).unwrap();
    assert_eq!(c.state, CaseState::Closed);
    assert!(run(&mut c, close(&eng), 3).is_err());
    run(&mut c, CaseCommand::Reopen { by: eng.clone(), reason: "the drift came back".into() }, 4).unwrap();
    assert_eq!(c.state, CaseState::Open);
}

#[test]
fn comments_speak_only_for_the_authors_roles() {
    let mut c = review_case();
    let pm = reviewer("pat", &["product"]);
    run(
        &mut c,
        CaseCommand::Comment { by: pm.clone(), role: Some("product".into()), text: "customers noticed".into() },
        0,
    )
    .unwrap();
    assert!(matches!(
        run(&mut c, CaseCommand::Comment { by: pm.clone(), role: Some("ux".into()), text: "x".into() }, 0),
        Err(CaseError::NotYourRole { .. })
    ));
    assert_eq!(c.comments.len(), 1);
}

#[test]
fn events_round_trip_through_their_stored_form() {
    let mut c = approval(1);
    let ann = reviewer("ann", &["soc_analyst"]);
    let events = run(&mut c, CaseCommand::Claim { by: ann.clone(), lease_ms: MIN }, 0).unwrap();
    for e in events {
        assert_eq!(CaseEvent::from_parts(e.kind(), &e.data()).unwrap(), e);
    }
}

fn arb_cmd() -> impl Strategy<Value = (u8, u8, i64)> {
    (0u8..8, 0u8..4, 0i64..90)
}

proptest! {
    /// Whatever commands arrive, in any order and timing: replaying the event
    /// log rebuilds exactly the case the projection holds, and no two
    /// reviewers ever hold the case at once.
    #[test]
    fn replay_equals_projection(cmds in proptest::collection::vec(arb_cmd(), 0..40), approvals in 1u32..3) {
        let people = [reviewer("ann", &["soc_analyst"]), reviewer("bob", &["soc_analyst", "soc_lead"]), reviewer("lee", &["soc_lead", "incident_commander"]), admin()];
        let mut c = approval(approvals);
        let opened = CaseEvent::Opened { case: Box::new(c.clone()) };
        let mut log = vec![(opened, Timestamp(0))];
        let mut now = 0;
        for (op, who, dt) in cmds {
            now += dt * 30_000;
            let by = people[who as usize].clone();
            let cmd = match op {
                0 => CaseCommand::Claim { by, lease_ms: 10 * MIN },
                1 => CaseCommand::Release { by },
                2 => answer(&by, Verdict::Allow, None),
                3 => answer(&by, Verdict::Allow, Some(serde_json::json!({"n": now}))),
                4 => answer(&by, Verdict::Deny, None),
                5 => CaseCommand::Reassign { by: admin(), to: by, lease_ms: 5 * MIN },
                // the proposing agent takes it back (rarely: most runs should reach a verdict)
                6 if dt % 8 == 0 => CaseCommand::Withdraw {
                    by: Actor { name: "soc-agent".into(), key_id: "k-agent".into(), tags: tags(&[]), is_admin: false },
                    reason: "cancelled".into(),
                },
                _ => CaseCommand::Sweep,
            };
            let before = c.clone();
            if let Ok(events) = handle(&c, &cmd, Timestamp(now)) {
                for e in events {
                    c.apply(&e, Timestamp(now));
                    log.push((e, Timestamp(now)));
                }
            }
            if let (Some(a), Some(b)) = (before.held_at(Timestamp(now)), c.held_at(Timestamp(now))) {
                prop_assert!(a.key_id == b.key_id || matches!(cmd, CaseCommand::Reassign { .. }), "a live lease was taken over");
            }
            // Open cases lack approvals of their current arguments; an approved
            // case has exactly enough approvals of the arguments it runs.
            if c.is_active() {
                prop_assert!(c.approvals() < c.escalation.approvals as usize);
            }
            if let Some(CaseEvent::Decided { verdict: Verdict::Allow, .. }) = log.last().map(|(e, _)| e) {
                prop_assert_eq!(c.approvals(), c.escalation.approvals as usize);
            }
        }
        let rebuilt = Case::replay(log.iter().map(|(e, t)| (e, *t))).unwrap();
        let mut expected = c.clone();
        expected.updated_at = log.last().unwrap().1;
        prop_assert_eq!(rebuilt, expected);
    }
}

#[test]
fn queue_orders_by_due_soon_severity_time_left_confidence_age() {
    let now = Timestamp(100 * MIN);
    let mk = |id: &str, sev: Severity, deadline_min: i64, conf: Option<f64>, created_min: i64| {
        let mut c = approval(1);
        c.id = id.into();
        c.escalation.severity = sev;
        c.sla_deadline = Timestamp(deadline_min * MIN);
        c.confidence = conf;
        c.created_at = Timestamp(created_min * MIN);
        c
    };
    let cases = vec![
        mk("low-due-soon", Severity::Low, 103, Some(0.9), 90),
        mk("critical", Severity::Critical, 130, Some(0.9), 95),
        mk("high-later", Severity::High, 140, Some(0.9), 95),
        mk("high-sooner", Severity::High, 120, Some(0.9), 95),
        mk("high-sooner-unsure", Severity::High, 120, Some(0.4), 95),
        mk("high-sooner-unsure-older", Severity::High, 120, Some(0.4), 80),
        mk("overdue", Severity::Medium, 99, None, 50),
    ];
    let q = queue::order(cases, now);
    let ids: Vec<&str> = q.iter().map(|i| i.case.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "overdue",
            "low-due-soon",
            "critical",
            "high-sooner-unsure-older",
            "high-sooner-unsure",
            "high-sooner",
            "high-later"
        ]
    );
    assert_eq!(q[0].reasons[0], "SLA overdue by 1m");
    assert_eq!(q[1].reasons[0], "due soon: 3m left on the SLA");
    assert_eq!(q[2].reasons[..2], ["severity critical".to_string(), "30m left on the SLA".to_string()]);
    assert_eq!(q[3].reasons[2..], ["agent confidence 0.40".to_string(), "waiting 20m".to_string()]);
    assert_eq!(q.iter().map(|i| i.position).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
}

#[test]
fn queue_visibility() {
    let now = Timestamp(0);
    let mut c = approval(1);
    let soc = tags(&["soc_analyst"]);
    assert!(queue::visible_to(&c, "ann", "k-ann", &soc, false, now));
    assert!(!queue::visible_to(&c, "ann", "k-ann", &tags(&["ux"]), false, now));
    assert!(queue::visible_to(&c, "root", "k-root", &tags(&[]), true, now));
    assert!(!queue::visible_to(&c, "soc-agent", "k-x", &soc, false, now), "never one's own agent");
    c.claim = Some(Claim { by: "bob".into(), key_id: "k-bob".into(), until: Timestamp(MIN) });
    assert!(!queue::visible_to(&c, "ann", "k-ann", &soc, false, now), "held by someone else");
    assert!(queue::visible_to(&c, "bob", "k-bob", &soc, false, now), "the holder still sees it");
    assert!(
        queue::visible_to(&c, "ann", "k-ann", &soc, false, Timestamp(MIN)),
        "an expired lease is back in the queue"
    );
}

/// The proposing agent (or an admin) withdraws an open approval case: it ends,
/// the decision is denied; nobody else may, and an ended case cannot be withdrawn.
#[test]
fn the_proposing_agent_withdraws_its_open_case() {
    let agent = Actor { name: "soc-agent".into(), key_id: "k-agent".into(), tags: tags(&[]), is_admin: false };
    let mut case = approval(1);
    let t = Timestamp(1_000);
    let withdraw = |by: &Actor, reason: &str| CaseCommand::Withdraw { by: by.clone(), reason: reason.into() };
    assert!(matches!(
        handle(&case, &withdraw(&reviewer("ana", &["soc_analyst"]), "not mine"), t),
        Err(CaseError::Invalid { .. })
    ));
    assert!(matches!(handle(&case, &withdraw(&agent, "  "), t), Err(CaseError::Invalid { .. })));
    let ev = handle(&case, &withdraw(&agent, "the client cancelled the call"), t).unwrap();
    assert_eq!(ev, [CaseEvent::Withdrawn { by: "soc-agent".into(), reason: "the client cancelled the call".into() }]);
    assert_eq!(ev[0].final_verdict(), Some(Verdict::Deny));
    assert_eq!(ev[0].kind(), "case.withdrawn");
    assert_eq!(CaseEvent::from_parts("case.withdrawn", &ev[0].data()).unwrap(), ev[0], "stored and read back");
    case.apply(&ev[0], t);
    assert_eq!(case.state, CaseState::Decided);
    assert!(matches!(handle(&case, &withdraw(&agent, "again"), t), Err(CaseError::NotOpen(CaseState::Decided))));
    assert!(handle(&approval(1), &withdraw(&admin(), "admin cleans up"), t).is_ok(), "an admin may withdraw any");
}

fn audit() -> Case {
    let mut c = approval(1);
    c.kind = CaseKind::Audit;
    c.escalation.tiers.clear();
    c.escalation.fallback = Verdict::Allow;
    c
}

#[test]
fn an_audit_is_claimed_and_labelled_never_answered_and_never_falls_back() {
    let ana = reviewer("ana", &["soc_analyst"]);
    let bob = reviewer("bob", &["soc_analyst"]);
    let mut c = audit();
    // long past its SLA: nothing happens to it (it waits, overdue); its decision stands
    assert_eq!(sweep(&c, Timestamp(1000 * MIN)), vec![]);
    assert_eq!(c.due_at(), None, "the sweeper has nothing to do with an unclaimed audit");
    run(&mut c, CaseCommand::Claim { by: ana.clone(), lease_ms: 10 * MIN }, MIN).unwrap();
    assert_eq!(c.due_at(), Some(Timestamp(11 * MIN)), "only the lease runs out");
    let answer = CaseCommand::Answer {
        by: ana.clone(),
        verdict: Verdict::Allow,
        modified_args: None,
        check: None,
        rationale: "fine".into(),
        failure_modes: vec![],
        via: None,
    };
    assert!(matches!(run(&mut c, answer, 2 * MIN), Err(CaseError::WrongKind(CaseKind::Audit, _))));
    let label = |by: &Actor, correct| CaseCommand::Label { by: by.clone(), correct, note: Some("  ".into()) };
    assert!(matches!(run(&mut c, label(&bob, true), 2 * MIN), Err(CaseError::HeldByOther { .. })));
    assert!(matches!(
        run(&mut c, label(&reviewer("fin", &["finance"]), true), 2 * MIN),
        Err(CaseError::WrongRole { .. })
    ));
    let events = run(&mut c, label(&ana, false), 3 * MIN).unwrap();
    assert_eq!(events, vec![CaseEvent::Labelled { by: "ana".into(), correct: false, note: None }]);
    assert_eq!((c.state, c.claim.as_ref()), (CaseState::Closed, None));
    assert!(matches!(run(&mut c, label(&ana, true), 4 * MIN), Err(CaseError::NotOpen(CaseState::Closed))));
    // an expired lease returns it to the queue, as on approval cases
    let mut c = audit();
    run(&mut c, CaseCommand::Claim { by: ana.clone(), lease_ms: MIN }, 0).unwrap();
    assert_eq!(sweep(&c, Timestamp(2 * MIN)), vec![CaseEvent::LeaseExpired { holder: "ana".into() }]);
    // approval cases are not labelled
    let mut a = approval(1);
    assert!(matches!(run(&mut a, label(&ana, true), MIN), Err(CaseError::WrongKind(CaseKind::Approval, _))));
}

/// Regressions only downstream crates caught before (the sabotage run):
/// the strictest verdict wins (deny over escalate over allow), a deny
/// fallback's event gives the decision a final deny, and a past answer keeps
/// its rationale through everything that happens to the case after it.
#[test]
fn verdict_precedence_fallback_verdict_and_past_rationale() {
    use Verdict::{Allow, Deny, Escalate};
    for (verdicts, strictest) in [
        (vec![Allow, Escalate], Escalate),
        (vec![Escalate, Deny, Allow], Deny),
        (vec![Allow, Allow], Allow),
        (vec![Deny, Escalate], Deny),
    ] {
        assert_eq!(verdicts.iter().copied().max(), Some(strictest), "{verdicts:?}");
    }
    let mut stricter = approval(1).escalation;
    stricter.fallback = Allow;
    let mut deny = approval(1).escalation;
    deny.fallback = Deny;
    stricter.merge(&deny);
    assert_eq!(stricter.fallback, Deny, "merging escalations keeps the stricter fallback");

    let fallback = CaseEvent::FallbackApplied { verdict: Deny, reason: "sla_expired".into() };
    assert_eq!(fallback.final_verdict(), Some(Deny));
    let withdrawn = CaseEvent::Withdrawn { by: "soc-agent".into(), reason: "cancelled".into() };
    assert_eq!(withdrawn.final_verdict(), Some(Deny));
    assert_eq!(CaseEvent::Closed { by: "eve".into(), reason: "done".into() }.final_verdict(), None);

    let mut c = approval(2);
    let ann = reviewer("ann", &["soc_analyst"]);
    run(&mut c, answer(&ann, Allow, None), MIN).unwrap();
    let kept = c.answers[0].rationale.clone();
    assert_eq!(kept, "checked the host's EDR timeline");
    let lee = reviewer("lee", &["soc_analyst"]);
    run(&mut c, CaseCommand::Claim { by: lee.clone(), lease_ms: 5 * MIN }, 2 * MIN).unwrap();
    run(&mut c, CaseCommand::Sweep, 16 * MIN).unwrap();
    run(&mut c, CaseCommand::Sweep, 60 * MIN).unwrap();
    assert_eq!(c.state, CaseState::Decided);
    assert_eq!(c.answers.len(), 1);
    assert_eq!(c.answers[0].rationale, kept, "the past answer keeps its rationale");
}
