//! The counts tuning needs, accumulated one decision at a time: per class and
//! grid bin, decisions, errors and their costs, the audit design's strata, and
//! the calibration bins. A tally never holds the decisions themselves, so a
//! history of any length is counted in memory proportional to classes × grid,
//! and tallies of parts of a history (counted on several threads) merge into
//! the tally of the whole.

use super::calibration::{Calibration, calibration_of};
use super::{ClassCurve, Grid, History, Stratum, TuneOptions};
use crate::sampling::AuditDraw;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over a class name: class names are few and short, and looked up
/// once per decision, where a keyed hash would cost more than the rest.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One class's counts per grid bin (`0..=grid`; "never" is added by [`Tally::curves`]).
#[derive(Debug, Clone)]
struct ClassTally {
    /// Decisions whose labels are taken as given, per bin.
    count: Vec<u64>,
    /// Wrong ones among them.
    wrong: Vec<u64>,
    /// The error cost of those wrong ones.
    wrong_cost: Vec<f64>,
    /// The escalation cost of every decision of the class (labelled or not).
    escalation_cost: Vec<f64>,
    /// The audit design's strata (per bin, not yet cumulative).
    strata: Vec<Stratum>,
    /// Calibration bins: decisions, summed confidence, right ones.
    calibration: Vec<(u64, f64, u64)>,
    /// Cost of an automatic error where the row does not say.
    error_default: f64,
    /// Cost of an escalation where the row does not say.
    escalation_default: f64,
}

/// Counts of a history for tuning, by class.
#[derive(Debug, Clone)]
pub struct Tally {
    grid: u32,
    bins: Grid,
    calibration_bins: usize,
    default_error_cost: f64,
    default_escalation_cost: f64,
    error_costs: Vec<(String, f64)>,
    escalation_costs: Vec<(String, f64)>,
    names: Vec<String>,
    index: HashMap<String, u32, BuildHasherDefault<Fnv>>,
    classes: Vec<ClassTally>,
}

impl Tally {
    /// An empty tally on `opts`' grid and costs, with `calibration_bins` equal-width calibration bins.
    pub fn new(opts: &TuneOptions, calibration_bins: usize) -> Tally {
        Tally {
            grid: opts.grid,
            bins: Grid::new(opts.grid),
            calibration_bins: calibration_bins.max(1),
            default_error_cost: opts.default_error_cost,
            default_escalation_cost: opts.default_escalation_cost,
            error_costs: opts.error_cost.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            escalation_costs: opts.escalation_cost.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            names: Vec::new(),
            index: HashMap::default(),
            classes: Vec::new(),
        }
    }

    /// The tally of a whole history.
    pub fn of(h: &History, opts: &TuneOptions, calibration_bins: usize) -> Tally {
        let mut t = Tally::new(opts, calibration_bins);
        let ids: Vec<u32> = h.classes.iter().map(|c| t.class(c)).collect();
        for i in 0..h.len() {
            t.add(
                ids[h.class[i] as usize],
                h.confidence[i],
                h.correct[i],
                h.error_cost[i],
                h.escalation_cost[i],
                h.audit(i),
            );
        }
        for u in &h.unlabelled {
            t.add_unlabelled(ids[u.class as usize], u.confidence, u.audit);
        }
        t
    }

    /// The id of class `name`, adding it if new.
    pub fn class(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        let find = |v: &[(String, f64)], d: f64| v.iter().find(|(k, _)| k == name).map_or(d, |(_, c)| *c);
        let bins = self.grid as usize + 1;
        self.classes.push(ClassTally {
            count: vec![0; bins],
            wrong: vec![0; bins],
            wrong_cost: vec![0.0; bins],
            escalation_cost: vec![0.0; bins],
            strata: Vec::new(),
            calibration: vec![(0, 0.0, 0); self.calibration_bins],
            error_default: find(&self.error_costs, self.default_error_cost),
            escalation_default: find(&self.escalation_costs, self.default_escalation_cost),
        });
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    /// Decisions counted, labelled or not.
    pub fn decisions(&self) -> u64 {
        self.classes
            .iter()
            .map(|c| {
                c.count.iter().sum::<u64>() + c.strata.iter().map(|s| s.population.iter().sum::<u64>()).sum::<u64>()
            })
            .sum()
    }

    /// Count one labelled decision of class `class` (costs NaN: the class's
    /// defaults), with its audit draw if it is in an audit design.
    #[inline]
    pub fn add(
        &mut self,
        class: u32,
        confidence: f64,
        correct: bool,
        error_cost: f64,
        escalation_cost: f64,
        audit: Option<AuditDraw>,
    ) {
        let b = self.bins.bin(confidence);
        let cb = ((confidence.clamp(0.0, 1.0) * self.calibration_bins as f64) as usize).min(self.calibration_bins - 1);
        let grid = self.grid;
        let c = &mut self.classes[class as usize];
        c.escalation_cost[b] += if escalation_cost.is_nan() { c.escalation_default } else { escalation_cost };
        let wc = if error_cost.is_nan() { c.error_default } else { error_cost };
        let cal = &mut c.calibration[cb];
        cal.0 += 1;
        cal.1 += confidence.clamp(0.0, 1.0);
        cal.2 += u64::from(correct);
        match audit {
            Some(draw) => {
                let default = c.error_default;
                c.stratum(draw.probability, grid).add(b, draw.selected, Some((correct, wc)), default);
            }
            None => {
                c.count[b] += 1;
                if !correct {
                    c.wrong[b] += 1;
                    c.wrong_cost[b] += wc;
                }
            }
        }
    }

    /// Count one decision of an audit design that has no label yet.
    pub fn add_unlabelled(&mut self, class: u32, confidence: f64, draw: AuditDraw) {
        let b = self.bins.bin(confidence);
        let grid = self.grid;
        let c = &mut self.classes[class as usize];
        c.escalation_cost[b] += c.escalation_default;
        let default = c.error_default;
        c.stratum(draw.probability, grid).add(b, draw.selected, None, default);
    }

    /// Add another tally (of another part of the same history, on the same options).
    pub fn merge(&mut self, other: Tally) {
        assert_eq!((self.grid, self.calibration_bins), (other.grid, other.calibration_bins), "tallies on one grid");
        let grid = self.grid;
        for (name, o) in other.names.iter().zip(other.classes) {
            let id = self.class(name) as usize;
            let c = &mut self.classes[id];
            let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            let addf = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            add(&mut c.count, &o.count);
            add(&mut c.wrong, &o.wrong);
            addf(&mut c.wrong_cost, &o.wrong_cost);
            addf(&mut c.escalation_cost, &o.escalation_cost);
            for (x, y) in c.calibration.iter_mut().zip(&o.calibration) {
                *x = (x.0 + y.0, x.1 + y.1, x.2 + y.2);
            }
            for s in o.strata {
                let mine = c.stratum(s.probability, grid);
                add(&mut mine.population, &s.population);
                add(&mut mine.drawn, &s.drawn);
                add(&mut mine.drawn_wrong, &s.drawn_wrong);
                add(&mut mine.drawn_unlabelled, &s.drawn_unlabelled);
                addf(&mut mine.wrong_cost, &s.wrong_cost);
                mine.labels_left_out += s.labels_left_out;
            }
        }
    }

    /// Every class's curve, in name order.
    pub fn curves(&self) -> Vec<ClassCurve> {
        let g = self.grid as usize;
        let mut out: Vec<ClassCurve> = self
            .names
            .iter()
            .zip(&self.classes)
            .map(|(name, t)| {
                let mut strata = t.strata.clone();
                strata.iter_mut().for_each(Stratum::accumulate);
                let mut curve = ClassCurve {
                    name: name.clone(),
                    n: 0,
                    wrong: 0,
                    grid: self.grid,
                    auto: vec![0; g + 2],
                    auto_wrong: vec![0; g + 2],
                    error_cost: vec![0.0; g + 2],
                    escalation_cost: vec![0.0; g + 2],
                    strata,
                };
                for j in (0..=g).rev() {
                    curve.auto[j] = curve.auto[j + 1] + t.count[j];
                    curve.auto_wrong[j] = curve.auto_wrong[j + 1] + t.wrong[j];
                    curve.error_cost[j] = curve.error_cost[j + 1] + t.wrong_cost[j];
                }
                for j in 0..=g {
                    for s in &curve.strata {
                        curve.auto[j] += s.population[j];
                        curve.auto_wrong[j] += s.drawn_wrong[j];
                        curve.error_cost[j] += s.expansion(j) * s.wrong_cost[j];
                    }
                }
                curve.n = curve.auto[0];
                curve.wrong = curve.auto_wrong[0];
                let mut below = 0.0;
                for j in 0..=g + 1 {
                    curve.escalation_cost[j] = below;
                    if j <= g {
                        below += t.escalation_cost[j];
                    }
                }
                curve
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every class's calibration, in name order.
    pub fn calibration(&self) -> Vec<Calibration> {
        let mut out: Vec<Calibration> =
            self.names.iter().zip(&self.classes).map(|(name, t)| calibration_of(name, &t.calibration)).collect();
        out.sort_by(|a, b| a.action.cmp(&b.action));
        out
    }
}

impl ClassTally {
    fn stratum(&mut self, probability: f64, grid: u32) -> &mut Stratum {
        let i = match self.strata.iter().position(|s| s.probability == probability) {
            Some(i) => i,
            None => {
                self.strata.push(Stratum::new(probability, grid as usize + 2));
                self.strata.len() - 1
            }
        };
        &mut self.strata[i]
    }
}
