//! Rule suggestions on the policy side: a mined pattern
//! ([`arbiter_core::suggest::Pattern`]) as a trigger, written into the policy
//! file, and backtested on history against the policy it would change.

use crate::Policy;
use crate::cel::agent_value;
use crate::rewrite::{NewTrigger, RewriteError, with_trigger};
use arbiter_core::suggest::{Pattern, SuggestionBacktest};
use arbiter_core::{Decision, FinalSource, Verdict};
use sha2::{Digest, Sha256};

/// The trigger a pattern suggests (`window_days`: how much history it was mined from).
pub fn trigger_for(p: &Pattern, window_days: u32) -> NewTrigger {
    let tag = hex::encode(&Sha256::digest(p.fingerprint().as_bytes())[..4]);
    let verdict = p.verdict();
    NewTrigger {
        name: format!("suggested_{}_{}_{tag}", verdict.as_str(), p.action),
        description: format!("Suggested by Arbiter from review history: {} in {window_days} days.", p.describe()),
        actions: vec![p.action.clone()],
        when: p.condition(),
        verdict,
    }
}

/// The policy source with `trigger` added, and what that version would have
/// done on `decisions` compared with `current`: escalations it would have
/// answered, and those answers that go against what people decided.
pub fn backtest(
    current: &Policy,
    trigger: &NewTrigger,
    decisions: &[Decision],
) -> Result<(String, SuggestionBacktest), RewriteError> {
    let source = with_trigger(current.source(), trigger)?;
    let candidate = Policy::parse(&source).map_err(RewriteError::Invalid)?;
    let mut out = SuggestionBacktest::default();
    for d in decisions {
        let agent = agent_value(&d.agent, &d.agent_key_id);
        let env = crate::env_of(&d.action, &d.context, &agent, d.trace_id.as_deref());
        let (before, after) = (current.evaluate(&env).verdict, candidate.evaluate(&env).verdict);
        out.replayed += 1;
        if before != Verdict::Escalate || after == Verdict::Escalate {
            continue;
        }
        out.escalations_saved += 1;
        let human = d.final_verdict.as_ref().filter(|f| f.source == FinalSource::Review).map(|f| f.verdict);
        if human.is_some_and(|h| h != after) {
            out.against_reviewers += 1;
            if out.examples_against.len() < 5 {
                out.examples_against.push(d.id.clone());
            }
        }
    }
    Ok((source, out))
}
