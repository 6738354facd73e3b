//! Escalation settings and the documented rule for combining several of them.

use crate::duration::HumanDuration;
use crate::verdict::{Severity, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One step of the escalation ladder: who may answer, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Reviewer role tags that may answer during this tier.
    pub reviewers: BTreeSet<String>,
    /// How long this tier has before the case moves on.
    pub sla: HumanDuration,
}

/// Everything a case needs to know about who answers, how fast, and what
/// happens if nobody does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// How urgent the case is.
    pub severity: Severity,
    /// Reviewer role tags that may answer in the first tier.
    pub reviewers: BTreeSet<String>,
    /// Distinct approvals needed before the action goes ahead.
    pub approvals: u32,
    /// Time the first tier has to answer.
    pub sla: HumanDuration,
    /// Verdict applied when the last tier's time runs out (`allow` or `deny`).
    pub fallback: Verdict,
    /// Later tiers, tried in order after the first tier's SLA runs out.
    pub tiers: Vec<Tier>,
}

impl Escalation {
    /// Merge another escalation into this one so that the result is at least as
    /// strict as both: the highest severity, the shorter SLA, the union of
    /// reviewer roles, the most approvals, the stricter fallback (`deny` beats
    /// `allow`), and the later tiers of whichever side is more severe (ties keep
    /// the longer ladder, then this side's).
    ///
    /// The operation is commutative and associative on everything but `tiers`
    /// when severities and ladder lengths tie, so callers merge in a fixed
    /// (policy) order to stay deterministic.
    pub fn merge(&mut self, other: &Escalation) {
        let other_wins_tiers = (other.severity, other.tiers.len()) > (self.severity, self.tiers.len());
        if other_wins_tiers {
            self.tiers = other.tiers.clone();
        }
        self.severity = self.severity.max(other.severity);
        self.reviewers.extend(other.reviewers.iter().cloned());
        self.approvals = self.approvals.max(other.approvals);
        self.sla = self.sla.min(other.sla);
        self.fallback = self.fallback.max(other.fallback);
    }

    /// Total time across all tiers before the fallback applies.
    pub fn total_sla(&self) -> HumanDuration {
        HumanDuration(self.tiers.iter().fold(self.sla.0, |acc, t| acc.saturating_add(t.sla.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn esc(sev: Severity, roles: &[&str], approvals: u32, sla: u64, fallback: Verdict) -> Escalation {
        Escalation {
            severity: sev,
            reviewers: roles.iter().map(|s| s.to_string()).collect(),
            approvals,
            sla: HumanDuration(sla),
            fallback,
            tiers: vec![],
        }
    }

    #[test]
    fn merge_takes_the_strictest_of_each() {
        let mut a = esc(Severity::Low, &["soc_analyst"], 1, 1800, Verdict::Allow);
        let b = esc(Severity::High, &["soc_lead"], 2, 600, Verdict::Deny);
        a.merge(&b);
        assert_eq!(a.severity, Severity::High);
        assert_eq!(a.approvals, 2);
        assert_eq!(a.sla, HumanDuration(600));
        assert_eq!(a.fallback, Verdict::Deny);
        assert_eq!(a.reviewers.len(), 2);
    }

    fn arb_tier() -> impl Strategy<Value = Tier> {
        (proptest::collection::btree_set("[d-f]", 1..3), 1u64..5000)
            .prop_map(|(reviewers, sla)| Tier { reviewers, sla: HumanDuration(sla) })
    }

    fn arb() -> impl Strategy<Value = Escalation> {
        (
            0u8..4,
            proptest::collection::btree_set("[a-c]", 0..3),
            1u32..4,
            1u64..5000,
            any::<bool>(),
            proptest::collection::vec(arb_tier(), 0..3),
        )
            .prop_map(|(s, r, a, sla, deny, tiers)| Escalation {
                severity: [Severity::Low, Severity::Medium, Severity::High, Severity::Critical][s as usize],
                reviewers: r,
                approvals: a,
                sla: HumanDuration(sla),
                fallback: if deny { Verdict::Deny } else { Verdict::Allow },
                tiers,
            })
    }

    #[test]
    fn the_more_severe_side_brings_its_ladder() {
        let lead = Tier { reviewers: ["soc_lead".to_string()].into_iter().collect(), sla: HumanDuration(600) };
        let ic = Tier { reviewers: ["incident_commander".to_string()].into_iter().collect(), sla: HumanDuration(600) };
        let mut a = esc(Severity::High, &["soc_analyst"], 1, 900, Verdict::Deny);
        a.tiers = vec![lead.clone(), ic.clone()];
        let mut b = esc(Severity::Critical, &["soc_lead"], 2, 600, Verdict::Deny);
        b.tiers = vec![ic.clone()];
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.tiers, vec![ic.clone()], "critical beats high, although its ladder is shorter");
        // equal severity: the longer ladder wins, whichever side it is on
        let mut c = esc(Severity::Critical, &["x"], 1, 900, Verdict::Deny);
        c.tiers = vec![lead.clone(), ic.clone()];
        let (mut bc, mut cb) = (b.clone(), c.clone());
        bc.merge(&c);
        cb.merge(&b);
        assert_eq!((bc.tiers.len(), cb.tiers.len()), (2, 2));
        assert_eq!(m.total_sla(), HumanDuration(600 + 600));
    }

    proptest! {
        #[test]
        fn merge_is_commutative_but_for_tied_ladders(a in arb(), b in arb()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            let tie = (a.severity, a.tiers.len()) == (b.severity, b.tiers.len());
            if !tie || a.tiers == b.tiers {
                prop_assert_eq!(ab, ba);
            } else {
                // with a tie, each keeps its own ladder; everything else agrees
                prop_assert_eq!(&ab.tiers, &a.tiers);
                prop_assert_eq!(&ba.tiers, &b.tiers);
                ab.tiers.clear(); ba.tiers.clear();
                prop_assert_eq!(ab, ba);
            }
        }

        #[test]
        fn merge_is_never_looser(a in arb(), b in arb()) {
            let mut m = a.clone(); m.merge(&b);
            prop_assert!(m.severity >= a.severity && m.severity >= b.severity);
            prop_assert!(m.sla <= a.sla && m.sla <= b.sla);
            prop_assert!(m.approvals >= a.approvals && m.approvals >= b.approvals);
            prop_assert!(a.reviewers.is_subset(&m.reviewers) && b.reviewers.is_subset(&m.reviewers));
            // the fallback: deny if either side denies
            prop_assert!(m.fallback >= a.fallback && m.fallback >= b.fallback);
            prop_assert_eq!(m.fallback == Verdict::Deny, a.fallback == Verdict::Deny || b.fallback == Verdict::Deny);
            // the ladder is one of the two, the one of the more severe side
            prop_assert!(m.tiers == a.tiers || m.tiers == b.tiers);
            if a.severity != b.severity {
                let stricter = if a.severity > b.severity { &a } else { &b };
                prop_assert_eq!(&m.tiers, &stricter.tiers);
            }
        }

        #[test]
        fn merging_is_idempotent_and_associative(a in arb(), b in arb(), c in arb()) {
            let mut aa = a.clone(); aa.merge(&a);
            prop_assert_eq!(&aa, &a);
            let mut left = a.clone(); left.merge(&b); left.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut right = a.clone(); right.merge(&bc);
            left.tiers.clear(); right.tiers.clear();
            prop_assert_eq!(left, right);
        }
    }
}
