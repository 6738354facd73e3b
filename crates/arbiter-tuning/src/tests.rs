use super::*;
use crate::rng::Rng;
use proptest::prelude::*;

fn choices_strategy() -> impl Strategy<Value = Vec<Vec<Choice>>> {
    proptest::collection::vec(
        proptest::collection::vec((0u64..40, 0u32..60), 1..6).prop_map(|pts| {
            pts.into_iter().enumerate().map(|(i, (e, c))| Choice { index: i, escalations: e, cost: c as f64 }).collect()
        }),
        1..5,
    )
}

fn wide_choices_strategy() -> impl Strategy<Value = Vec<Vec<Choice>>> {
    proptest::collection::vec(
        proptest::collection::vec((0u64..400, 0u32..5_000), 1..9).prop_map(|pts| {
            pts.into_iter()
                .enumerate()
                .map(|(i, (e, c))| Choice { index: i, escalations: e, cost: c as f64 / 7.0 })
                .collect()
        }),
        1..5,
    )
}

fn check_exact(classes: &[Vec<Choice>], budget: u64) -> Result<(), TestCaseError> {
    let a = allocate(classes, budget);
    match brute_force(classes, budget) {
        None => prop_assert!(!a.feasible),
        Some((_, best)) => {
            prop_assert!(a.feasible);
            prop_assert!(a.escalations <= budget);
            // the exact optimum: equal cost, not within a bound
            prop_assert!((a.cost - best).abs() <= 1e-9 * best.abs().max(1.0), "cost {} optimum {}", a.cost, best);
            prop_assert_eq!(a.gap, 0.0);
        }
    }
    let picked_e: u64 =
        classes.iter().zip(&a.picks).map(|(o, &i)| o.iter().find(|c| c.index == i).unwrap().escalations).sum();
    prop_assert_eq!(picked_e, a.escalations);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]
    /// The budget is never exceeded, the answer costs exactly what the brute-force
    /// optimum costs, and infeasibility is exact.
    #[test]
    fn allocation_is_the_exact_optimum(classes in choices_strategy(), budget in 0u64..150) {
        check_exact(&classes, budget)?;
    }

    /// The same on non-convex classes with many options and wide costs, where a
    /// greedy walk on the hulls goes wrong.
    #[test]
    fn allocation_is_exact_on_non_convex_classes(classes in wide_choices_strategy(), budget in 0u64..1_200) {
        check_exact(&classes, budget)?;
    }
}

/// One class from (count, confidence, correct) groups, with optional per-row costs.
fn history_of(rows: &[(&str, usize, f64, bool)]) -> History {
    let mut h = History::default();
    let mut t = 0;
    for &(action, n, confidence, correct) in rows {
        for _ in 0..n {
            t += 1;
            h.push(&history::Row {
                timestamp: crate::time::Timestamp(t),
                action,
                confidence,
                correct,
                error_cost: None,
                escalation_cost: None,
            });
        }
    }
    h
}

/// Repro (issue 17): 0.29 × 100 is 28.999… in floating point; the budget
/// is 29 escalations, which escalates all 29 wrong decisions.
#[test]
fn a_decimal_budget_counts_exactly() {
    assert_eq!(escalation_budget(0.29, 100), 29);
    assert_eq!(escalation_budget(0.1, 10_000_000), 1_000_000);
    assert_eq!(escalation_budget(0.0915, 1_000), 91);
    assert_eq!(escalation_budget(1.0, 7), 7);
    let h = history_of(&[("d", 29, 0.1, false), ("d", 71, 0.9, true)]);
    let opts = TuneOptions { max_escalation_rate: 0.29, ..Default::default() };
    let (r, _) = tune(&h, &opts);
    assert_eq!(r.budget_escalations, 29);
    assert_eq!(r.auto_errors, 0, "{r:?}");
    assert_eq!(r.classes[0].escalated_share, 0.29);
    // with the bound: feasible at exactly the smallest budget it needs
    let bound = TuneOptions { max_auto_error: Some(0.05), min_samples: Some(1), ..opts };
    let (r, _) = tune(&h, &bound);
    assert!(r.feasible, "{r:?}");
    assert_eq!((r.min_escalations, r.budget_escalations), (29, 29));
}

/// Repro (issue 17): the escalation cost is part of the objective.
#[test]
fn escalation_cost_counts_in_the_choice() {
    let h = history_of(&[("d", 100, 0.6, false), ("d", 900, 0.95, true)]);
    let opts = TuneOptions {
        max_escalation_rate: 1.0,
        escalation_cost: [("d".to_string(), 10.0)].into(),
        ..Default::default()
    };
    let (r, _) = tune(&h, &opts);
    // escalating the 100 costs 1,000; letting them through costs 100
    assert_eq!(r.expected_cost, 100.0, "{r:?}");
    assert!(r.classes[0].threshold.is_some_and(|t| t <= 0.6), "{r:?}");
}

/// Repro (issue 17): the greedy hull walk spent the budget on the class with
/// the better ratio and cost 95; the optimum costs 10.
#[test]
fn the_allocation_is_exact_where_greedy_was_not() {
    let h = history_of(&[
        ("x", 95, 0.1, false),
        ("x", 5, 0.1, true),
        ("x", 900, 0.9, true),
        ("y", 10, 0.1, false),
        ("y", 90, 0.9, true),
    ]);
    let opts = TuneOptions { max_escalation_rate: 0.091, ..Default::default() };
    let (r, _) = tune(&h, &opts);
    assert_eq!(r.budget_escalations, 100);
    assert_eq!(r.expected_cost, 10.0, "{r:?}");
    assert_eq!(r.optimality_gap, 0.0);
}

/// Repro (issue 17): per-row costs keep f64 precision (f32 made 16777217 into 16777216).
#[test]
fn row_costs_keep_their_precision() {
    let mut h = History::default();
    h.push(&history::Row {
        timestamp: crate::time::Timestamp(1),
        action: "d",
        confidence: 0.5,
        correct: false,
        error_cost: Some(16_777_217.0),
        escalation_cost: Some(0.1),
    });
    let c = &curves(&h, &TuneOptions::default())[0];
    assert_eq!(c.error_cost[0], 16_777_217.0);
    assert_eq!(c.escalation_cost[c.never()], 0.1);
}

/// The tuner's bins against the comparison `confidence >= threshold` (the
/// policy engine's, tested against the engine itself in `arbiter-policy`).
#[test]
fn bins_agree_with_the_threshold_comparison() {
    let mut rng = Rng::new(3);
    for _ in 0..100_000 {
        let c = (rng.uniform() * 10_000.0).round() / 10_000.0;
        let j = bin(c, 1000);
        assert!(c >= j as f64 / 1000.0);
        assert!(j == 1000 || c < (j + 1) as f64 / 1000.0, "{c} -> {j}");
    }
    for j in 0..=1000u32 {
        let t = format!("{}", j as f64 / 1000.0).parse::<f64>().unwrap();
        assert_eq!(bin(t, 1000), j as usize, "threshold {t} sits in its own bin");
    }
}

fn small_history() -> History {
    let mut h = History::default();
    // class a: 100 decisions, confidence i/100, wrong below 0.3
    for i in 0..100 {
        let c = i as f64 / 100.0;
        h.push(&history::Row {
            timestamp: crate::time::Timestamp(i),
            action: "a",
            confidence: c,
            correct: c >= 0.3,
            error_cost: None,
            escalation_cost: None,
        });
    }
    h
}

#[test]
fn curves_count_and_bound_certifies_a_prefix() {
    let h = small_history();
    let opts = TuneOptions { grid: 100, min_samples: Some(60), max_auto_error: Some(0.05), ..TuneOptions::default() };
    let cs = curves(&h, &opts);
    let a = &cs[0];
    assert_eq!((a.n, a.wrong), (100, 30));
    assert_eq!(a.auto[30], 70);
    assert_eq!(a.auto_wrong[30], 0);
    assert_eq!(a.auto_wrong[29], 1);
    assert_eq!(a.escalated(a.never()), 100);
    let cert = certified(a, &opts);
    assert_eq!(cert[0], a.never());
    // thresholds above 0.40 auto-allow fewer than 60 and are passed over untested;
    // 0 errors in 60 passes (0.95^60 = 0.046 ≤ 0.05) ...
    assert_eq!(cert[1], 40);
    // ... down to 0 errors in 70; one error in 71 fails (P(X≤1) = 0.12) and ends the scan
    assert_eq!(*cert.last().unwrap(), 30);
    assert_eq!(cert.len(), 1 + 11);
    // a spotless record cannot pass below ⌈ln δ / ln(1 − E)⌉ = 59 samples, whatever min_samples says
    assert_eq!(TuneOptions { min_samples: Some(10), ..opts.clone() }.scan_start(), 59);
    assert_eq!(TuneOptions { min_samples: None, ..opts.clone() }.scan_start(), 200);
}

#[test]
fn tune_respects_the_budget_or_says_what_it_needs() {
    let h = synthetic(200_000, 12, 7);
    let opts = TuneOptions { max_escalation_rate: 0.10, max_auto_error: Some(0.05), ..TuneOptions::default() };
    let (r, _) = tune(&h, &opts);
    if r.feasible {
        assert!(r.escalated_share <= 0.10 + 1e-12, "{}", r.escalated_share);
    } else {
        assert!(r.min_feasible_budget > 0.10);
        let (r2, _) = tune(&h, &TuneOptions { max_escalation_rate: r.min_feasible_budget, ..opts.clone() });
        assert!(r2.feasible, "the reported minimum budget is enough");
    }
    for c in &r.classes {
        if c.threshold.is_some() && c.decisions > 0 {
            assert!(c.auto_error_upper.is_some_and(|u| u <= 0.05 + 1e-9), "{c:?}");
        }
    }
    // no bound: the budget alone decides, and more budget never costs more
    let loose = tune(&h, &TuneOptions { max_escalation_rate: 0.05, max_auto_error: None, ..opts.clone() }).0;
    let looser = tune(&h, &TuneOptions { max_escalation_rate: 0.20, max_auto_error: None, ..opts.clone() }).0;
    assert!(loose.feasible && looser.feasible);
    assert!(
        looser.expected_cost - looser.classes.iter().map(|c| c.decisions as f64 * c.escalated_share).sum::<f64>()
            <= loose.expected_cost - loose.classes.iter().map(|c| c.decisions as f64 * c.escalated_share).sum::<f64>()
                + 1e-6
    );
}

/// Over many random calibration/test splits, the certified thresholds'
/// true auto-error rate (on held-out data) exceeds the bound in about δ of
/// the splits or fewer.
#[test]
fn the_bound_holds_on_fresh_data_in_at_least_one_minus_delta_of_splits() {
    let delta = 0.1;
    let e = 0.05;
    let mut violations = 0;
    let mut certified_runs = 0;
    let runs = 200;
    for seed in 0..runs {
        let mut rng = Rng::new(1000 + seed);
        // one class whose true error rate at confidence c is (1 - c) * 0.3
        let mut draw = |n: usize| {
            let mut h = History::default();
            for i in 0..n {
                let c = rng.uniform();
                let wrong = rng.chance((1.0 - c) * 0.3);
                h.push(&history::Row {
                    timestamp: crate::time::Timestamp(i as i64),
                    action: "x",
                    confidence: c,
                    correct: !wrong,
                    error_cost: None,
                    escalation_cost: None,
                });
            }
            h
        };
        let calib = draw(2_000);
        let opts = TuneOptions { grid: 100, max_auto_error: Some(e), delta, ..TuneOptions::default() };
        let cs = curves(&calib, &opts);
        let cert = certified(&cs[0], &opts);
        let lowest = *cert.last().unwrap();
        if lowest > 100 {
            continue;
        }
        // the true auto-error rate at threshold t: E[(1-c)*0.3 | c ≥ t] = 0.3 * (1 - t) / 2
        certified_runs += 1;
        let t = lowest as f64 / 100.0;
        if 0.15 * (1.0 - t) > e {
            violations += 1;
        }
    }
    // the test is not vacuous: nearly every split certifies something
    assert!(certified_runs >= runs * 9 / 10, "{certified_runs}");
    eprintln!("bound violated in {violations} of {certified_runs} splits (delta {delta})");
    assert!((violations as f64) <= delta * runs as f64 * 1.5, "{violations} of {runs} splits violated the bound");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// On the data it was tuned on, a feasible answer never escalates more
    /// than the budget, and certified thresholds meet the bound's upper limit.
    #[test]
    fn tuned_thresholds_never_exceed_the_budget(seed in 0u64..10_000, n in 200usize..3_000, k in 1usize..6, budget in 0.0f64..0.6, e in proptest::option::of(0.02f64..0.3)) {
        let h = synthetic(n, k, seed);
        let opts = TuneOptions { max_escalation_rate: budget, max_auto_error: e, grid: 100, ..TuneOptions::default() };
        let (r, curves) = tune(&h, &opts);
        // Recompute everything from the history rows and the chosen thresholds, as the policy would apply them.
        let mut escalated = 0u64;
        for class in &r.classes {
            let id = h.classes.iter().position(|x| *x == class.action).unwrap() as u32;
            let rows: Vec<usize> = (0..h.len()).filter(|&i| h.class[i] == id).collect();
            let auto: Vec<usize> = rows.iter().copied().filter(|&i| class.threshold.is_some_and(|t| h.confidence[i] >= t)).collect();
            let wrong = auto.iter().filter(|&&i| !h.correct[i]).count() as u64;
            escalated += (rows.len() - auto.len()) as u64;
            prop_assert_eq!(class.decisions, rows.len() as u64);
            prop_assert_eq!(class.auto_errors, wrong, "{}", class.action);
            prop_assert!((class.auto_share - auto.len() as f64 / rows.len() as f64).abs() < 1e-12);
            prop_assert!((class.escalated_share - (rows.len() - auto.len()) as f64 / rows.len() as f64).abs() < 1e-12);
            if let (Some(bound), Some(_)) = (e, class.threshold) {
                // the bound, recomputed from the counts: Clopper–Pearson at 1 − δ
                let upper = crate::stats::clopper_pearson_upper(wrong, auto.len() as u64, opts.delta);
                let got = class.auto_error_upper.unwrap_or(f64::NAN);
                prop_assert!((got - upper).abs() < 1e-12, "{got} vs {upper}");
                prop_assert!(upper <= bound + 1e-9, "{}: upper {upper} above {bound}", class.action);
            }
        }
        if r.feasible {
            prop_assert!(escalated as f64 <= (budget * n as f64).floor() + 1e-9, "{escalated} > {budget} of {n}");
            prop_assert!((r.escalated_share - escalated as f64 / n as f64).abs() < 1e-12);
        } else {
            prop_assert!(r.min_feasible_budget > budget);
        }
        prop_assert_eq!(curves.iter().map(|c| c.n).sum::<u64>(), n as u64);
    }
}

/// Decisions the policy's rules escalate whatever the threshold use part of
/// the budget: the thresholds share what is left, and the shares count them.
#[test]
fn escalations_by_the_rules_use_part_of_the_budget() {
    let mut h = History::default();
    // 100 decisions: 10 wrong at 0.2, 90 right at 0.9
    for i in 0..100 {
        h.push(&history::Row {
            timestamp: crate::time::Timestamp(i),
            action: "a",
            confidence: if i < 10 { 0.2 } else { 0.9 },
            correct: i >= 10,
            error_cost: None,
            escalation_cost: None,
        });
    }
    let opts = TuneOptions { max_escalation_rate: 0.10, grid: 100, min_samples: Some(1), ..TuneOptions::default() };
    let (free, _) = tune(&h, &opts);
    assert!(free.feasible);
    assert_eq!(free.classes[0].auto_errors, 0, "the 10 wrong ones fit the budget");
    // 25 more decisions elsewhere that the rules escalate: 10% of 125 is 12, 25 already escalate.
    let settled = SettledByRules { decisions: 25, escalations: 25 };
    let (r, _) = tune(&h, &TuneOptions { settled_by_rules: settled, ..opts.clone() });
    assert!(!r.feasible, "the rules alone exceed the budget");
    assert_eq!(r.decisions, 125);
    assert_eq!(r.classes[0].auto_errors, 10, "no budget is left for the threshold");
    assert!((r.min_feasible_budget - 25.0 / 125.0).abs() < 1e-12);
    // 5 escalated by the rules of 150: 15 allowed, 10 left for the threshold.
    let settled = SettledByRules { decisions: 50, escalations: 5 };
    let (r, _) = tune(&h, &TuneOptions { settled_by_rules: settled, ..opts.clone() });
    assert!(r.feasible);
    assert_eq!(r.classes[0].auto_errors, 0);
    assert!((r.escalated_share - 15.0 / 150.0).abs() < 1e-12);
}

/// The JSON a statistician checks: the certified set, each tested
/// threshold's p-value, where the scan started and why, what was not tested.
#[test]
fn the_scan_is_recorded_with_its_p_values() {
    // 40 right at 0.95, 200 right at 0.8, 30 wrong at 0.5
    let h = history_of(&[("d", 40, 0.95, true), ("d", 200, 0.8, true), ("d", 30, 0.5, false)]);
    let opts = TuneOptions {
        max_escalation_rate: 1.0,
        max_auto_error: Some(0.05),
        grid: 100,
        min_samples: Some(100),
        ..Default::default()
    };
    let (r, curves) = tune(&h, &opts);
    let s = &r.classes[0].scan;
    assert_eq!((s.delta, s.min_samples), (0.05, 100));
    assert!(s.rule.contains("--min-samples 100"), "{}", s.rule);
    // 0.81 .. 1.0 auto-allow only the 40 at 0.95: not tested
    assert_eq!(s.not_tested.as_deref(), Some("not tested: fewer than 100 auto-allowed decisions at 0.81 to 1"));
    assert_eq!(s.started_at, Some(0.8));
    // 0.80 down to 0.51 pass (240 right), 0.50 fails (30 wrong of 270) and ends the scan
    assert_eq!(s.tests.len(), 31);
    assert!(s.tests[..30].iter().all(|t| t.certified && t.auto_allowed == 240 && t.auto_errors == 0));
    let last = s.tests.last().unwrap();
    assert_eq!((last.threshold, last.auto_allowed, last.auto_errors, last.certified), (0.5, 270, 30, false));
    assert_eq!(last.p_value, crate::stats::binomial_cdf(30, 270, 0.05));
    assert!(s.tests[0].p_value <= 0.05);
    assert_eq!(s.certified.len(), 31, "never and 0.80 .. 0.51");
    assert_eq!(s.certified[0], None);
    assert_eq!(s.certified[1], Some(0.8));
    assert_eq!(s.certified[30], Some(0.51));
    assert_eq!(certified(&curves[0], &opts).len(), 31);
}

/// A class that auto-allows nothing has no rate to bound: no upper bound at all.
#[test]
fn a_class_set_to_never_shows_no_bound() {
    let h = history_of(&[("d", 50, 0.9, false), ("d", 50, 0.2, false)]);
    let opts = TuneOptions { max_escalation_rate: 1.0, max_auto_error: Some(0.05), ..Default::default() };
    let (r, _) = tune(&h, &opts);
    assert_eq!(r.classes[0].threshold, None);
    assert_eq!(r.classes[0].auto_error_upper, None);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["classes"][0]["auto_error_upper"].is_null());
}

/// Family-wise: each of K classes is tested at δ / K; a class that passes at δ
/// can fail at δ / K.
#[test]
fn family_wise_tests_each_class_at_delta_over_k() {
    // spotless at 0.9: n = 59 passes at δ = 0.05 (0.95^59 = 0.0485) but not at 0.025
    let h = history_of(&[("a", 59, 0.9, true), ("a", 10, 0.1, false), ("b", 200, 0.9, true)]);
    let opts = TuneOptions {
        max_escalation_rate: 1.0,
        max_auto_error: Some(0.05),
        min_samples: Some(1),
        ..Default::default()
    };
    let per_class = tune(&h, &opts).0;
    assert_eq!(per_class.classes[0].threshold, Some(0.9), "{:?}", per_class.classes[0]);
    let fw = tune(&h, &TuneOptions { family_wise: true, ..opts }).0;
    assert_eq!(fw.classes[0].scan.delta, 0.025);
    assert_eq!(fw.classes[0].threshold, None, "59 spotless decisions are not enough at δ/2");
    assert_eq!(fw.classes[1].threshold.map(|t| t <= 0.9), Some(true));
}

/// A custom candidate list: only those thresholds are tested and chosen.
#[test]
fn custom_thresholds_are_the_only_candidates() {
    let h = history_of(&[("d", 100, 0.97, true), ("d", 100, 0.85, true), ("d", 100, 0.3, false)]);
    let opts = TuneOptions {
        max_escalation_rate: 1.0,
        max_auto_error: Some(0.05),
        min_samples: Some(1),
        candidates: Some(vec![900, 500, 950]),
        ..Default::default()
    };
    let (r, _) = tune(&h, &opts);
    let s = &r.classes[0].scan;
    let tested: Vec<f64> = s.tests.iter().map(|t| t.threshold).collect();
    assert_eq!(tested, [0.95, 0.9, 0.5], "descending, only the candidates");
    // 0.5 lets the 200 right ones through and escalates only the 100 wrong ones
    assert_eq!(r.classes[0].threshold, Some(0.5), "{:?}", r.classes[0]);
}

/// Ties: thresholds with the same escalations (no decision between them) cost
/// the same; the highest of them is chosen.
#[test]
fn ties_go_to_the_highest_threshold() {
    let h = history_of(&[("d", 100, 0.9, true), ("d", 100, 0.2, false)]);
    let opts = TuneOptions { max_escalation_rate: 1.0, ..Default::default() };
    let (r, _) = tune(&h, &opts);
    // every threshold in (0.2, 0.9] escalates the same 100 wrong decisions at no cost
    assert_eq!(r.classes[0].threshold, Some(0.9), "{:?}", r.classes[0]);
}

fn row(action: &str, confidence: f64, correct: bool) -> history::Row<'_> {
    history::Row {
        timestamp: crate::time::Timestamp(0),
        action,
        confidence,
        correct,
        error_cost: None,
        escalation_cost: None,
    }
}

fn draw(probability: f64, selected: bool) -> crate::sampling::AuditDraw {
    crate::sampling::AuditDraw { probability, selected }
}

/// A design that draws every decision and has every label is the plain
/// history: the same scan, the same p-values, the same choice.
#[test]
fn a_design_drawing_everything_is_the_plain_history() {
    let mut rng = Rng::new(7);
    let (mut plain, mut full) = (History::default(), History::default());
    for _ in 0..4_000 {
        let c = rng.uniform();
        let r = row("a", (c * 1000.0).round() / 1000.0, !rng.chance(0.2 * (1.0 - c)));
        plain.push(&r);
        full.push_audited(&r, draw(1.0, true));
    }
    let opts =
        TuneOptions { max_auto_error: Some(0.05), max_escalation_rate: 0.5, grid: 100, ..TuneOptions::default() };
    let (a, _) = tune(&plain, &opts);
    let (b, _) = tune(&full, &opts);
    assert_eq!(a.classes[0].scan.tests, b.classes[0].scan.tests);
    assert_eq!(a.classes[0].threshold, b.classes[0].threshold);
    assert_eq!(a.classes[0].auto_error_upper, b.classes[0].auto_error_upper);
    assert_eq!(b.classes[0].audit.len(), 1);
}

/// Given labels and an audit stratum: the estimate weights the drawn labels
/// by their stratum's decisions per draw, undrawn labels are left out,
/// drawn decisions without a label count as errors, and the bound is the
/// weighted sum of Clopper–Pearson bounds at δ/2.
#[test]
fn the_audit_stratum_is_weighted_by_its_decisions_per_draw() {
    let mut h = History::default();
    // 100 escalated decisions at 0.5, labelled by review, 10 wrong
    for i in 0..100 {
        h.push(&row("a", 0.5, i >= 10));
    }
    // 1,000 allowed at 0.95: 50 drawn (π = 0.05) of which 5 wrong and 1 not labelled yet; 20 reported errors not drawn
    for i in 0..1_000 {
        let r = row("a", 0.95, i >= 5);
        match i {
            0..=48 => h.push_audited(&r, draw(0.05, true)),
            49 => h.push_unlabelled(r.timestamp, "a", 0.95, draw(0.05, true)),
            50..=69 => h.push_audited(&row("a", 0.95, false), draw(0.05, false)),
            _ => h.push_unlabelled(r.timestamp, "a", 0.95, draw(0.05, false)),
        }
    }
    let opts = TuneOptions { grid: 100, ..TuneOptions::default() };
    let c = &curves(&h, &opts)[0];
    assert_eq!((c.n, c.auto[90], c.auto[50], c.labelled(90), c.labelled(50)), (1_100, 1_000, 1_100, 50, 150));
    // at 0.9 only the stratum: 6 errors (5 + the unlabelled one) in 50 draws
    assert!((c.estimated_error_rate(90) - 6.0 / 50.0).abs() < 1e-12);
    assert_eq!(c.error_upper(90, 0.05), Some(crate::stats::clopper_pearson_upper(6, 50, 0.05)));
    // at 0.5: 100 given (10 wrong) and the stratum, weighted by 100 and 1,000 decisions
    let est = 100.0 / 1_100.0 * 0.1 + 1_000.0 / 1_100.0 * 6.0 / 50.0;
    assert!((c.estimated_error_rate(50) - est).abs() < 1e-12);
    let cp = crate::stats::clopper_pearson_upper;
    let upper = 100.0 / 1_100.0 * cp(10, 100, 0.025) + 1_000.0 / 1_100.0 * cp(6, 50, 0.025);
    assert!((c.error_upper(50, 0.05).unwrap() - upper).abs() < 1e-12);
    // Kish: (Σw)² / Σw², each label weighing its part's decisions per label
    let ess = 1_100.0f64.powi(2) / (100.0 + 1_000.0f64.powi(2) / 50.0);
    assert!((c.effective_sample_size(50) - ess).abs() < 1e-9);
    let s = &c.strata[0];
    assert_eq!((s.population[0], s.drawn[0], s.drawn_unlabelled[0], s.labels_left_out), (1_000, 50, 1, 20));
    // the error cost: given errors plus the stratum's drawn errors scaled by 1,000/50
    assert!((c.error_cost[50] - (10.0 + 20.0 * 6.0)).abs() < 1e-9);
    // the p-value is the smallest level at which the bound is at most E
    let (p, pass) = c.test(50, 0.3, 0.05);
    assert!(pass && p < 0.05);
    assert!(c.error_upper(50, p * 1.0001).unwrap() <= 0.3 && c.error_upper(50, p * 0.9999).unwrap() > 0.3);
}

/// Over many simulated populations, the stratified bound covers the true
/// auto-allowed error rate at least 1 − δ of the time; the rate among the
/// labels there are without a design (escalations and reported errors) is
/// far off.
#[test]
fn the_weighted_bound_covers_where_labels_from_escalations_mislead() {
    let (delta, runs) = (0.1, 200);
    let mut covered = 0;
    let mut naive_bias = 0.0;
    for seed in 0..runs {
        let mut rng = Rng::new(seed);
        let mut h = History::default();
        let (mut wrong, mut n, mut naive_wrong, mut naive_n) = (0u64, 0u64, 0u64, 0u64);
        for i in 0..3_000 {
            let confidence = 0.9 + 0.1 * rng.uniform();
            let correct = !rng.chance(0.04);
            let r = row("a", confidence, correct);
            n += 1;
            wrong += u64::from(!correct);
            let id = format!("{seed}-{i}");
            let d = crate::sampling::draw(&id, 0.02);
            let reported = !correct && rng.chance(0.3);
            if reported {
                naive_n += 1;
                naive_wrong += 1;
            }
            if d.selected || reported {
                h.push_audited(&r, d);
            } else {
                h.push_unlabelled(r.timestamp, "a", confidence, d);
            }
        }
        let c = &curves(&h, &TuneOptions { grid: 100, ..TuneOptions::default() })[0];
        let truth = wrong as f64 / n as f64;
        covered += usize::from(c.error_upper(90, delta).unwrap() >= truth);
        naive_bias += naive_wrong as f64 / naive_n.max(1) as f64 - truth;
    }
    assert!(covered as f64 >= (1.0 - delta) * runs as f64, "covered {covered} of {runs}");
    assert!(naive_bias / runs as f64 > 0.5, "reported errors alone say nearly every allowed decision is wrong");
}

#[test]
fn a_history_file_carries_its_audit_design() {
    let csv = "timestamp,action,confidence,correct,audit_probability,audit_selected\n\
               0,a,0.9,1,0.02,1\n0,a,0.8,,0.02,0\n0,a,0.4,0,,\n";
    let h = history::parse_csv(csv).unwrap();
    assert_eq!((h.len(), h.unlabelled.len()), (2, 1));
    assert_eq!(h.audit(0), Some(draw(0.02, true)));
    assert_eq!(h.audit(1), None);
    let mut out = Vec::new();
    history::write_csv(&h, &mut out).unwrap();
    let back = history::parse_csv(std::str::from_utf8(&out).unwrap()).unwrap();
    assert_eq!((back.len(), back.unlabelled.clone(), back.audit(0)), (2, h.unlabelled.clone(), h.audit(0)));
    let e = history::parse_csv("timestamp,action,confidence,correct\n0,a,0.9,\n").unwrap_err();
    assert_eq!((e.line, e.field.as_str()), (2, "correct"));
    let e =
        history::parse_csv("timestamp,action,confidence,correct,audit_probability,audit_selected\n0,a,0.9,1,1.5,1\n")
            .unwrap_err();
    assert_eq!(e.field, "audit_probability");
    let j = history::parse_jsonl(
        "{\"timestamp\":0,\"action\":\"a\",\"confidence\":0.9,\"audit\":{\"probability\":0.02,\"selected\":false}}\n\
         {\"timestamp\":0,\"action\":\"a\",\"confidence\":0.9,\"correct\":false,\"audit\":{\"probability\":0.02,\"selected\":true}}",
    )
    .unwrap();
    assert_eq!((j.len(), j.unlabelled.len(), j.audit(0)), (1, 1, Some(draw(0.02, true))));
    // a window keeps the unlabelled decisions in it, and their classes
    assert_eq!(h.between(None, Some(crate::time::Timestamp(1))).unlabelled.len(), 1);
    assert!(h.between(Some(crate::time::Timestamp(1)), None).classes.is_empty());
}

/// Tallies of the parts of a history, counted apart (as threads do) and
/// merged in any order, give the curves and calibration of the whole.
#[test]
fn merged_tallies_are_the_tally_of_the_whole() {
    let mut h = synthetic(20_000, 7, 3);
    for i in 0..500 {
        let d = crate::sampling::draw(&format!("x{i}"), 0.1);
        h.push_unlabelled(crate::time::Timestamp(0), "action_001", (i as f64) / 500.0, d);
    }
    let opts = TuneOptions { grid: 200, ..TuneOptions::default() };
    let whole = Tally::of(&h, &opts, 10);
    let mut parts: Vec<Tally> = (0..3)
        .map(|p| {
            let keep: Vec<bool> = (0..h.len()).map(|i| i % 3 == p).collect();
            let mut part = h.select(&keep);
            if p != 1 {
                part.unlabelled.clear();
            }
            Tally::of(&part, &opts, 10)
        })
        .collect();
    let mut merged = parts.remove(2);
    parts.into_iter().rev().for_each(|p| merged.merge(p));
    let (a, b) = (whole.curves(), merged.curves());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (&x.name, &x.auto, &x.auto_wrong, &x.strata.len()),
            (&y.name, &y.auto, &y.auto_wrong, &y.strata.len())
        );
        for (p, q) in x.error_cost.iter().zip(&y.error_cost).chain(x.escalation_cost.iter().zip(&y.escalation_cost)) {
            assert!((p - q).abs() <= 1e-9 * p.abs().max(1.0));
        }
    }
    assert_eq!(whole.decisions(), merged.decisions());
    let (c, d) = (whole.calibration(), merged.calibration());
    assert_eq!(c.iter().map(|c| c.n).collect::<Vec<_>>(), d.iter().map(|c| c.n).collect::<Vec<_>>());
}

proptest! {
    /// The table-driven bin of a tally is exactly the engine-agreeing `bin`.
    #[test]
    fn the_grid_table_bins_exactly_as_bin(c in 0.0f64..=1.0, grid in prop::sample::select(vec![10u32, 100, 1000, 1024, 3000, 100_000])) {
        let g = Grid::new(grid);
        prop_assert_eq!(g.bin(c), bin(c, grid));
        let k = (c * grid as f64).round() / grid as f64; // right on a threshold
        prop_assert_eq!(g.bin(k), bin(k, grid));
        prop_assert_eq!(g.bin(k.next_down().max(0.0)), bin(k.next_down().max(0.0), grid));
    }
}
