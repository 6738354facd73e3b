//! `arbiter demo --exit`: the whole loop, end to end.

use crate::support::bin;
use serde_json::Value;
use std::process::Command;

#[test]
fn the_demo_catches_the_drift_and_opens_a_review_case() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = Command::new(bin())
        .args([
            "demo",
            "--exit",
            "--listen",
            "127.0.0.1:0",
            "--hours",
            "19",
            "--drift-at",
            "16",
            "--rate",
            "250",
            "--seed",
            "3",
            // and a second team beside the SOC, in a project of its own
            "--projects",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("drift alarm: `isolate_host`"), "{text}");
    assert!(text.contains("Drift caught"), "{text}");
    let review = text
        .lines()
        .find_map(|l| l.split("review case: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("a review case line")
        .to_string();

    // The store holds the alarm event and the review case with its evidence, and the audit log verifies.
    let db = data.join("arbiter.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let body: String = c.query_row("SELECT body FROM cases WHERE id = ?1", [&review], |r| r.get(0)).unwrap();
    let case: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(case["kind"], "review");
    assert_eq!(case["review"]["source"], "drift_alarm");
    assert!(case["review"]["evidence"]["statistics"].is_object());
    let episodes: i64 =
        c.query_row("SELECT COUNT(*) FROM events WHERE kind = 'drift.episode.started'", [], |r| r.get(0)).unwrap();
    assert!(episodes >= 1);
    let cases: i64 = c
        .query_row("SELECT COUNT(*) FROM cases WHERE body LIKE '%\"source\":\"drift_alarm\"%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cases, episodes, "one review case per drift episode");
    // The loop closed: the review became a published lesson, its policy change went live and was
    // backtested on the review's decisions, and day two measured the failure's recurrence.
    assert!(text.contains("intervention backtest:") && text.contains("would now wait for an analyst"), "{text}");
    assert!(text.contains("The failure stopped recurring: the loop is closed."), "{text}");
    assert!(text.contains("Recurrence on the lesson:"), "{text}");
    let lesson: String = c.query_row("SELECT body FROM lessons WHERE review_id = ?1", [&review], |r| r.get(0)).unwrap();
    let lesson: Value = serde_json::from_str(&lesson).unwrap();
    assert_eq!(lesson["publish"], true);
    assert_eq!(lesson["action_classes"], serde_json::json!(["isolate_host"]));
    assert!(lesson["interventions"][0]["check"]["still_allowed"].as_array().unwrap().is_empty());
    let live: String = c
        .query_row("SELECT hash FROM policy_activations WHERE project = 'default' ORDER BY seq DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(lesson["interventions"][0]["policy_version"], live.as_str(), "the lesson's version is the live one");
    let labelled: i64 =
        c.query_row("SELECT COUNT(*) FROM decisions WHERE outcome_correct IS NOT NULL", [], |r| r.get(0)).unwrap();
    assert!(labelled > 1000, "outcomes were posted: {labelled}");
    let decided: i64 =
        c.query_row("SELECT COUNT(*) FROM events WHERE kind = 'case.decided'", [], |r| r.get(0)).unwrap();
    assert!(decided > 10, "reviewers worked the queue: {decided}");
    let verify = Command::new(bin()).args(["audit", "verify", "--db", db.to_str().unwrap()]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    // The second team: its own decisions, cases and chain; each chain verifies on its own.
    assert!(text.contains("A second team on the same server") && text.contains("apart:"), "{text}");
    let support: i64 =
        c.query_row("SELECT COUNT(*) FROM decisions WHERE project = 'support'", [], |r| r.get(0)).unwrap();
    assert!(support >= 50, "the refund agent's decisions: {support}");
    let crossed: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM cases c JOIN decisions d ON d.id = c.decision_id WHERE c.project <> d.project",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(crossed, 0, "every case is in its decision's project");
    let all = Command::new(bin()).args(["audit", "verify", "--all", "--db", db.to_str().unwrap()]).output().unwrap();
    let all_text = String::from_utf8_lossy(&all.stdout);
    assert!(
        all.status.success() && all_text.contains("default: ok:") && all_text.contains("support: ok:"),
        "{all_text}"
    );
    let anchor = Command::new(bin())
        .args(["audit", "anchor", "--project", "support", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    let anchor = String::from_utf8_lossy(&anchor.stdout).trim().to_string();
    let verify = Command::new(bin())
        .args(["audit", "verify", "--project", "support", "--anchor", &anchor, "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let wrong = Command::new(bin())
        .args(["audit", "verify", "--anchor", &anchor, "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "the support chain's anchor is not the default chain's");

    // The walkthrough's own commands work as printed: the tuning on the hours before the drift
    // (within the budget it names) and the backtest of the tuned policy, with the demo's numbers.
    let printed = |prefix: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {text}"));
        line.split_whitespace().skip(1).map(str::to_string).collect()
    };
    let tune = Command::new(bin()).args(printed("arbiter tune ")).arg("--json").output().unwrap();
    assert_eq!(tune.status.code(), Some(0), "the printed tune command: {}", String::from_utf8_lossy(&tune.stdout));
    let t: Value = serde_json::from_slice(&tune.stdout).unwrap();
    let tuned_on = text
        .lines()
        .find(|l| l.starts_with("Tuning on"))
        .and_then(|l| l.split(" labelled decisions").next()?.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(t["result"]["decisions"].as_u64(), tuned_on, "the same decisions as the demo's tuning:\n{text}");
    assert!(
        t["result"]["settled_by_rules"]["escalations"].as_u64().unwrap() > 0,
        "the policy's triggers use part of the budget"
    );
    let share = t["result"]["escalated_share"].as_f64().unwrap();
    let bt = Command::new(bin()).args(printed("arbiter policy backtest ")).arg("--json").output().unwrap();
    assert!(bt.status.success(), "{}", String::from_utf8_lossy(&bt.stderr));
    let b: Value = serde_json::from_slice(&bt.stdout).unwrap();
    assert!(
        (b["new"]["escalation_rate"].as_f64().unwrap() - share).abs() < 1e-9,
        "tune and the backtest agree on the escalation: {t} {b}"
    );
    assert!(text.contains(&format!("-> {:.1}%", 100.0 * share)), "the walkthrough shows the backtest: {text}");
    // Keys for an analyst, a lead and an engineer; simulated times say so; a stopped server is not advertised.
    for who in ["analyst:", "lead:", "engineer:"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(who) && l.contains("arb_")), "{who} key in {text}");
    }
    assert!(text.contains("clock:      simulated, in UTC"), "{text}");
    assert!(!text.contains("open the reviewer console at"), "--exit does not advertise a stopped server: {text}");
    assert!(text.contains("The demo's server has stopped"), "{text}");

    // The day's labelled decisions are history for tuning and backtests, read straight from the store.
    let all = Command::new(bin()).args(["tune", "--db", db.to_str().unwrap(), "--json"]).output().unwrap();
    assert!(matches!(all.status.code(), Some(0 | 2)), "{}", String::from_utf8_lossy(&all.stderr));
    let t: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(t["result"]["decisions"].as_i64().unwrap(), labelled);
    let soc = crate::support::soc_policy();
    let bt = Command::new(bin())
        .args(["policy", "backtest", soc.to_str().unwrap(), "--db", db.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(bt.status.success(), "{}", String::from_utf8_lossy(&bt.stderr));
    let b: Value = serde_json::from_slice(&bt.stdout).unwrap();
    assert_eq!(b["new"]["decisions"].as_i64().unwrap(), labelled);
    assert_eq!(b["new"]["condition_errors"], 0, "stored decisions carry their arguments");
}
