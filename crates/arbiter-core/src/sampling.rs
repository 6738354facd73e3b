//! Audit sampling: a set share of the decisions a class auto-allows is drawn
//! at random for a person to label afterwards. The agent is never held; the
//! labels form a probability sample of the auto-allowed region, the one
//! place where outcomes otherwise arrive only when something went wrong.
//!
//! The draw is a pure function of the decision's id (server-generated and
//! unpredictable to the agent) and the share, so anyone can check from the
//! audit log that an item was or was not drawn, and every decision records
//! the inclusion probability π it was drawn with: tuning weights each label
//! by 1 / π (Horvitz–Thompson).

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the policy asks for a decision it allows: audit this share of the class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AuditPlan {
    /// The inclusion probability π (the class's `audit_sample`), in (0, 1].
    pub sample: f64,
    /// How soon a drawn decision should be labelled (the audit's SLA).
    pub sla: HumanDuration,
}

/// The draw made for one allowed decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AuditDraw {
    /// The inclusion probability π the decision was drawn with.
    pub probability: f64,
    /// Whether it was drawn: an audit case asks a person to label it.
    pub selected: bool,
}

/// The draw for decision `id` at inclusion probability `probability`: the
/// first 53 bits of SHA-256(`arbiter.audit-sample\n` ‖ id) as a uniform number
/// u in [0, 1); drawn when u < π. Independent across decisions whose ids are
/// independent, and the same every time it is recomputed.
pub fn draw(id: &str, probability: f64) -> AuditDraw {
    let mut h = Sha256::new();
    h.update(b"arbiter.audit-sample\n");
    h.update(id.as_bytes());
    let bytes: [u8; 8] = h.finalize()[..8].try_into().expect("a SHA-256 digest has 32 bytes");
    let u = (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    AuditDraw { probability, selected: u < probability }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_is_reproducible_and_selects_its_share() {
        assert_eq!(draw("d-1", 0.3), draw("d-1", 0.3));
        assert!(!draw("d-1", 0.0).selected);
        assert!(draw("d-1", 1.0).selected);
        let n = 200_000;
        let drawn = (0..n).filter(|i| draw(&format!("01J{i:020}"), 0.02).selected).count();
        // 2% of 200,000 is 4,000 with a standard deviation of 63: five of them either side
        assert!((3_685..=4_315).contains(&drawn), "{drawn}");
    }
}
