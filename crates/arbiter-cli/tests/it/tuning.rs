//! `demo generate`, `tune`, `simulate` and `policy backtest` on the real binary.

use crate::support::{bin, soc_policy};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn generate(dir: &Path, name: &str, seed: &str) -> String {
    let p = dir.join(name);
    let (code, _, err) = run(&[
        "demo",
        "generate",
        "--decisions",
        "50000",
        "--classes",
        "6",
        "--seed",
        seed,
        "--out",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    p.to_str().unwrap().to_string()
}

#[test]
fn generation_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) =
        (generate(dir.path(), "a.csv", "5"), generate(dir.path(), "b.csv", "5"), generate(dir.path(), "c.csv", "6"));
    let (a, b, c) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), std::fs::read(c).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
    let j = generate(dir.path(), "a.jsonl", "5");
    assert_eq!(std::fs::read_to_string(j).unwrap().lines().count(), 50_000);
    // the simulated SOC agent's history, with arguments for backtests
    let soc = |name: &str, seed: &str| {
        let p = dir.path().join(name);
        let (code, _, err) =
            run(&["demo", "generate", "--soc", "--decisions", "3000", "--seed", seed, "--out", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        std::fs::read_to_string(p).unwrap()
    };
    let (x, y) = (soc("s1.jsonl", "4"), soc("s2.jsonl", "4"));
    assert_eq!(x, y);
    assert_eq!(x.lines().count(), 3000);
    let first: Value = serde_json::from_str(x.lines().next().unwrap()).unwrap();
    assert!(first["args"].is_object() && first["signals"]["alert_type"].is_string());
}

#[test]
fn tune_keeps_the_budget_writes_a_policy_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let h = generate(dir.path(), "h.csv", "11");
    let out = dir.path().join("tuned.yaml");
    let plots = dir.path().join("plots");
    let soc = soc_policy();
    let (code, json, err) = run(&[
        "tune",
        "--history",
        &h,
        "--max-escalation-rate",
        "0.10",
        "--max-auto-error",
        "0.05",
        "--delta",
        "0.05",
        "--policy",
        soc.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&json).unwrap();
    let r = &v["result"];
    assert_eq!(r["feasible"], true);
    assert!(r["escalated_share"].as_f64().unwrap() <= 0.10);
    assert_eq!(r["decisions"], 50_000);
    let classes = r["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 6);
    for c in classes {
        if !c["threshold"].is_null() {
            assert!(c["auto_error_upper"].as_f64().unwrap() <= 0.05 + 1e-9, "{c}");
        }
    }
    assert_eq!(
        std::fs::read_dir(&plots).unwrap().count(),
        12,
        "a risk-coverage plot and a reliability diagram per class"
    );
    let svg = std::fs::read_to_string(plots.join("action_000.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("risk vs coverage"));
    let svg = std::fs::read_to_string(plots.join("action_000.calibration.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("calibration") && svg.contains("perfectly calibrated"));
    let cal = v["calibration"].as_array().unwrap();
    assert_eq!(cal.len(), 6);
    for c in cal {
        let ece = c["ece"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ece), "{c}");
        assert!(!c["bins"].as_array().unwrap().is_empty());
    }
    // the new policy keeps the SOC triggers and carries the thresholds
    let (code, checked, _) = run(&["policy", "check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{checked}");
    let tuned = std::fs::read_to_string(&out).unwrap();
    let t0 = classes.iter().find(|c| c["action"] == "action_000").unwrap()["threshold"].clone();
    let expect = match t0.as_f64() {
        Some(t) => format!("auto_allow_at: {t}"),
        None => "auto_allow_at: never".into(),
    };
    assert!(tuned.contains(&expect), "{expect} missing");

    // an impossible budget: exit 2, and the smallest budget that keeps the bound
    let (code, text, _) = run(&["tune", "--history", &h, "--max-escalation-rate", "0.01", "--max-auto-error", "0.01"]);
    assert_eq!(code, 2);
    assert!(text.contains("INFEASIBLE") && text.contains("needs at least"), "{text}");

    // the new policy through a backtest and a reviewer-load simulation
    let (code, bt, err) = run(&[
        "policy",
        "backtest",
        out.to_str().unwrap(),
        "--history",
        &h,
        "--against",
        soc.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let bt: Value = serde_json::from_str(&bt).unwrap();
    assert_eq!(bt["new"]["decisions"], 50_000);
    assert!(bt["changed"].as_u64().unwrap() > 0);
    let (code, sim, err) = run(&[
        "simulate",
        "--history",
        &h,
        "--policy",
        out.to_str().unwrap(),
        "--reviewers",
        "3",
        "--review-median",
        "3m",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let sim: Value = serde_json::from_str(&sim).unwrap();
    assert!(sim["escalations"].as_u64().unwrap() > 0);
    assert!(sim["erlang_c"]["p_wait"].as_f64().is_some());
    assert!(sim["p_wait"].as_f64().is_some() && sim["sla_breach_share"].as_f64().is_some());

    // replicates with intervals, exponential review times with a sub-second-precise mean
    let (code, rep, err) = run(&[
        "simulate",
        "--history",
        &h,
        "--policy",
        out.to_str().unwrap(),
        "--reviewers",
        "2",
        "--service",
        "exponential",
        "--review-mean",
        "150.5",
        "--replicates",
        "8",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let rep: Value = serde_json::from_str(&rep).unwrap();
    let r = &rep["replicated"];
    assert_eq!(r["replicates"], 8);
    let w = &r["p_wait_over_sla"];
    assert!(
        w["low"].as_f64().unwrap() <= w["mean"].as_f64().unwrap()
            && w["mean"].as_f64().unwrap() <= w["high"].as_f64().unwrap()
    );
    assert!((rep["erlang_c"]["service_per_hour"].as_f64().unwrap() - 3600.0 / 150.5).abs() < 1e-9);

    // the smallest team for a 5% SLA breach target, beside Erlang C's answer
    let (code, found, err) = run(&[
        "simulate",
        "--history",
        &h,
        "--policy",
        out.to_str().unwrap(),
        "--service",
        "exponential",
        "--review-mean",
        "300",
        "--replicates",
        "3",
        "--find-reviewers",
        "--target-sla-breach",
        "0.05",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let found: Value = serde_json::from_str(&found).unwrap();
    let c = found["found"]["reviewers"].as_u64().unwrap();
    assert!(found["found"]["p_wait_over_sla"]["mean"].as_f64().unwrap() <= 0.05);
    assert!(c >= 1 && found["erlang_c_reviewers"].as_u64().is_some(), "{found}");
}

#[test]
fn bad_history_rows_are_named_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(
        &p,
        "timestamp,action,confidence,correct\n2026-01-01T00:00:00Z,a,0.5,1\n2026-01-01T00:00:00Z,a,0.5,perhaps\n",
    )
    .unwrap();
    let (code, _, err) = run(&["tune", "--history", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("line 3: correct: `perhaps` is not true/false/1/0"), "{err}");
    let (code, _, err) = run(&["tune", "--history", "history.txt"]);
    assert_eq!(code, 1);
    assert!(err.contains(".csv, .jsonl or .parquet"), "{err}");
    // a file read on several threads in blocks of 4 MiB still names the line:
    // 150,000 rows (about 6 MiB) with a bad one near the end
    let mut big = String::from("timestamp,action,confidence,correct,note\n");
    for i in 0..150_000 {
        let conf = if i == 149_000 { "1.5" } else { "0.75" };
        big.push_str(&format!("2026-01-01T00:00:00Z,act_{},{conf},{},padding-to-make-rows-longer\n", i % 7, i % 2));
    }
    let p = dir.path().join("big.csv");
    std::fs::write(&p, &big).unwrap();
    let (code, _, err) = run(&["tune", "--history", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("line 149002: confidence: 1.5 is outside 0..1"), "{err}");
    // and a bad timestamp is found by the commands that read timestamps
    let p = dir.path().join("late.csv");
    std::fs::write(&p, "timestamp,action,confidence,correct\nyesterday,a,0.5,1\n").unwrap();
    let (code, _, err) = run(&["tune", "--history", p.to_str().unwrap(), "--since", "2026-01-01T00:00:00Z"]);
    assert_eq!(code, 1);
    assert!(err.contains("line 2: timestamp"), "{err}");
}

/// A Parquet history tunes exactly as the same history in CSV; `demo
/// generate` writes both; a Parquet file without a needed column is named.
#[test]
fn parquet_and_csv_histories_tune_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, parquet) = (generate(dir.path(), "h.csv", "11"), generate(dir.path(), "h.parquet", "11"));
    let tune = |p: &str, extra: &[&str]| -> Value {
        let mut args = vec!["tune", "--history", p, "--max-auto-error", "0.05", "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert!(code == 0 || code == 2, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["result"].clone()
    };
    assert_eq!(tune(&csv, &[]), tune(&parquet, &[]));
    let window = ["--since", "2026-05-29T00:00:00Z", "--until", "2026-06-10T00:00:00Z"];
    let (a, b) = (tune(&csv, &window), tune(&parquet, &window));
    assert_eq!(a, b);
    assert!(a["decisions"].as_u64().unwrap() < 50_000, "the window keeps part of the month: {}", a["decisions"]);
    let (code, _, err) = run(&["tune", "--history", dir.path().join("missing.parquet").to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    std::fs::write(dir.path().join("junk.parquet"), "not parquet").unwrap();
    let (code, _, err) = run(&["tune", "--history", dir.path().join("junk.parquet").to_str().unwrap()]);
    assert!(code == 1 && err.contains("not a Parquet file"), "{err}");
}

/// Long work shows a progress bar on a terminal (a pseudo-terminal from
/// `script`, part of util-linux) and nothing when the output is a pipe.
#[test]
fn long_work_shows_progress_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.jsonl");
    let cmd = format!("{} demo generate --decisions 300000 --out {}", bin(), out.display());
    let tty = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().expect("`script` (util-linux) runs");
    assert!(tty.status.success(), "{}", String::from_utf8_lossy(&tty.stderr));
    let shown = String::from_utf8_lossy(&tty.stdout).into_owned();
    assert!(shown.contains(&format!("writing {} [", out.display())), "no progress bar on a terminal:\n{shown}");
    let (code, stdout, stderr) = run(&["demo", "generate", "--decisions", "300000", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "only the closing line in a pipe: {stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr}");
}

/// `--thresholds` narrows the candidates (refusing ones off the grid) and
/// `--family-wise` tests every class at δ/K; the JSON records each test.
#[test]
fn custom_thresholds_and_family_wise_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let h = generate(dir.path(), "h.csv", "12");
    let (code, _, err) = run(&["tune", "--history", &h, "--thresholds", "0.9,0.1234"]);
    assert_ne!(code, 0);
    assert!(err.contains("0.1234 is not a multiple of 1/1000"), "{err}");
    let (code, json, err) = run(&[
        "tune",
        "--history",
        &h,
        "--max-escalation-rate",
        "0.5",
        "--max-auto-error",
        "0.1",
        "--thresholds",
        "0.95,0.9,0.8,0.7",
        "--family-wise",
        "--json",
    ]);
    assert!(code == 0 || code == 2, "{err}");
    let v: Value = serde_json::from_str(&json).unwrap();
    let classes = v["result"]["classes"].as_array().unwrap();
    for c in classes {
        let scan = &c["scan"];
        assert_eq!(scan["delta"].as_f64().unwrap(), 0.05 / classes.len() as f64, "{scan}");
        for t in scan["tests"].as_array().unwrap() {
            let th = t["threshold"].as_f64().unwrap();
            assert!([0.95, 0.9, 0.8, 0.7].contains(&th), "{th} is not a candidate");
            assert!(t["p_value"].as_f64().unwrap() >= 0.0);
        }
        assert!(c["threshold"].is_null() || [0.95, 0.9, 0.8, 0.7].contains(&c["threshold"].as_f64().unwrap()));
    }
}
