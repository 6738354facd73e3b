//! Calibration: does a stated confidence of 0.9 come true 90% of the time?
//!
//! Threshold tuning bounds the error rate of what it auto-allows from the
//! history, but a threshold only means something across time if the agent's
//! confidences are calibrated. This is the reliability diagram's data (equal-width
//! bins of stated confidence against the observed share of correct outcomes)
//! and its expected calibration error.

use super::History;
use serde::Serialize;

/// One bin of stated confidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, except for the last bin, which includes 1).
    pub hi: f64,
    /// Decisions whose confidence fell here.
    pub n: u64,
    /// Their mean stated confidence.
    pub mean_confidence: f64,
    /// The share of them that were right.
    pub observed: f64,
}

/// One action class's calibration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Action class.
    pub action: String,
    /// Labelled decisions.
    pub n: u64,
    /// Non-empty bins, lowest confidence first.
    pub bins: Vec<CalibrationBin>,
    /// Expected calibration error: the decision-weighted mean gap between
    /// stated confidence and observed accuracy, in `[0, 1]`.
    pub ece: f64,
    /// Mean stated confidence minus observed accuracy: positive when the
    /// agent claims more than it delivers.
    pub overconfidence: f64,
}

/// The calibration of every class in `h` (in name order), with `bins` equal-width bins.
pub fn calibration(h: &History, bins: usize) -> Vec<Calibration> {
    super::Tally::of(h, &super::TuneOptions::default(), bins).calibration()
}

/// One class's calibration from its bins: (decisions, summed confidence, right ones) each.
pub(super) fn calibration_of(action: &str, bins: &[(u64, f64, u64)]) -> Calibration {
    let width = bins.len() as f64;
    let mut out = Calibration { action: action.to_string(), n: 0, bins: Vec::new(), ece: 0.0, overconfidence: 0.0 };
    let (mut total_conf, mut total_right) = (0.0, 0u64);
    for (b, &(n, conf, right)) in bins.iter().enumerate() {
        if n == 0 {
            continue;
        }
        out.n += n;
        total_conf += conf;
        total_right += right;
        out.bins.push(CalibrationBin {
            lo: b as f64 / width,
            hi: (b + 1) as f64 / width,
            n,
            mean_confidence: conf / n as f64,
            observed: right as f64 / n as f64,
        });
    }
    if out.n > 0 {
        let total = out.n as f64;
        out.ece = out.bins.iter().map(|b| b.n as f64 / total * (b.mean_confidence - b.observed).abs()).sum();
        out.overconfidence = total_conf / total - total_right as f64 / total;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Row;
    use crate::rng::Rng;
    use arbiter_core::Timestamp;

    fn history(claimed: impl Fn(f64) -> f64, seed: u64) -> History {
        let mut rng = Rng::new(seed);
        let mut h = History::default();
        for i in 0..20_000 {
            let truth = rng.uniform();
            h.push(&Row {
                timestamp: Timestamp(i),
                action: "close_alert",
                confidence: claimed(truth),
                correct: rng.uniform() < truth,
                error_cost: None,
                escalation_cost: None,
            });
        }
        h
    }

    #[test]
    fn a_calibrated_agent_has_a_small_error_and_an_overconfident_one_does_not() {
        let honest = &calibration(&history(|p| p, 1), 10)[0];
        assert_eq!(honest.n, 20_000);
        assert_eq!(honest.bins.len(), 10);
        assert!(honest.ece < 0.02, "{}", honest.ece);
        assert!(honest.overconfidence.abs() < 0.02);
        for b in &honest.bins {
            assert!((b.mean_confidence - b.observed).abs() < 0.05, "{b:?}");
            assert!(b.lo <= b.mean_confidence && b.mean_confidence <= b.hi);
        }
        // claims 0.5 + p/2: always more sure than right
        let boastful = &calibration(&history(|p| 0.5 + p / 2.0, 2), 10)[0];
        assert!(boastful.ece > 0.2, "{}", boastful.ece);
        assert!(boastful.overconfidence > 0.2);
        assert!(boastful.bins.iter().all(|b| b.lo >= 0.5), "no claim below 0.5");
    }

    #[test]
    fn confidence_one_falls_in_the_last_bin_and_empty_classes_have_no_bins() {
        let mut h = History::default();
        for (c, ok) in [(1.0, true), (0.0, false), (0.95, true)] {
            h.push(&Row {
                timestamp: Timestamp(0),
                action: "a",
                confidence: c,
                correct: ok,
                error_cost: None,
                escalation_cost: None,
            });
        }
        let c = &calibration(&h, 10)[0];
        assert_eq!(c.bins.len(), 2);
        assert_eq!(c.bins[1].n, 2);
        assert_eq!(c.bins[1].observed, 1.0);
        assert_eq!(c.bins[0].observed, 0.0);
    }
}
