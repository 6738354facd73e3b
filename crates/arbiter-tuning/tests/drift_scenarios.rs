//! The drift monitor held to its corpus: every scenario kind of traffic
//! (seasonality, bursts, a ramp of over-isolation, a confidence slide on a
//! low-volume class, an error-rate doubling with late labels), with the
//! default settings the server runs. A new test of the monitor on traffic is
//! a scenario in `src/scenarios.rs`; it runs here. (`arbiter demo evaluate
//! --scenarios --seeds 20` gives the full tables in docs/drift.md.)

use arbiter_core::drift::DriftConfig;
use arbiter_tuning::scenarios::{SCENARIOS, evaluate};

#[test]
fn every_drift_is_caught_and_quiet_traffic_stays_under_its_false_alarm_budget() {
    let policy = arbiter_policy::Policy::parse(arbiter_tuning::soc::POLICY).unwrap();
    let results = evaluate(1, 400.0, &policy, &DriftConfig::default());
    assert_eq!(results.len(), SCENARIOS.len());
    for r in &results {
        eprintln!("{r:?}");
        match r.detected {
            Some(caught) => assert_eq!(caught, r.seeds, "{}: every drift is caught", r.scenario),
            None => assert!(r.false_alarms_per_week <= 1.0, "{}: at most one false alarm a week", r.scenario),
        }
        assert!(r.cases_per_episode <= 1.0, "{}: one review case per episode", r.scenario);
    }
}
