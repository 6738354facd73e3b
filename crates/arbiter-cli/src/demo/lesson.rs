//! The lesson the demo's team learns from the over-isolation review, as a
//! policy change, and the counterfactual that measures it: the same day of
//! proposals under the old policy and under the new version.

use anyhow::{Result, anyhow};
use arbiter_core::Verdict;
use arbiter_policy::Policy;
use arbiter_policy::cel::agent_value;
use arbiter_policy::rewrite::{NewTrigger, with_trigger};
use arbiter_tuning::soc::Proposal;

/// Automatic isolation only where it is the right call most of the time:
/// high or critical malware and exfiltration alerts. Everything else waits
/// for an analyst.
pub fn lesson_trigger() -> NewTrigger {
    NewTrigger {
        name: "isolate_only_for_severe_malware".into(),
        description: "Lesson from the over-isolation review: isolation runs by itself only for high or critical \
                      malware and data-exfiltration alerts; everything else waits for an analyst."
            .into(),
        actions: vec!["isolate_host".into()],
        when: r#"!(has(signals.alert_type) && signals.alert_type in ["malware", "data_exfiltration"] && has(signals.alert_severity) && signals.alert_severity in ["high", "critical"])"#.into(),
        verdict: Verdict::Escalate,
    }
}

/// The SOC example policy with the lesson's trigger.
pub fn lesson_policy_source() -> Result<String> {
    with_trigger(arbiter_tuning::soc::POLICY, &lesson_trigger())
        .map_err(|e| anyhow!("the lesson's trigger does not fit the SOC policy: {e}"))
}

/// What one policy does with a day of proposals: wrong isolations it lets run
/// without a person, and how many proposals it escalates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUnder {
    /// Wrong `isolate_host` proposals the policy allows.
    pub harmful_isolations: u64,
    /// Proposals escalated.
    pub escalated: u64,
    /// Proposals.
    pub proposals: u64,
}

/// Evaluate `proposals` under `policy` (the demo agent's key).
pub fn day_under(policy: &Policy, proposals: &[Proposal]) -> DayUnder {
    let (agent, context) = (agent_value("soc-triage-agent", ""), serde_json::json!({}));
    let mut out = DayUnder::default();
    for p in proposals {
        let v = policy.evaluate(&arbiter_policy::env_of(&p.action, &context, &agent, Some(&p.trace_id))).verdict;
        out.proposals += 1;
        out.escalated += u64::from(v == Verdict::Escalate);
        out.harmful_isolations += u64::from(p.action.name == "isolate_host" && !p.correct && v == Verdict::Allow);
    }
    out
}
