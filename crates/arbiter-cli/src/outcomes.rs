//! `arbiter outcomes record|import`: what became of decisions (was the
//! proposed action right?), the ground truth threshold tuning, backtests,
//! drift and recurrence learn from (over HTTP).

use crate::client::{Api, ApiArgs};
use anyhow::{Result, bail};
use arbiter_api::decisions::OutcomeRequest;
use arbiter_core::Decision;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Outcome subcommands.
#[derive(Debug, Subcommand)]
pub enum OutcomesCommand {
    /// Record what became of one decision.
    Record {
        /// Decision id.
        id: String,
        /// The proposed action was right.
        #[arg(long, conflicts_with = "incorrect", required_unless_present = "incorrect")]
        correct: bool,
        /// The proposed action was wrong.
        #[arg(long)]
        incorrect: bool,
        /// What it cost, in your team's unit.
        #[arg(long)]
        cost: Option<f64>,
        /// A label such as `false_positive`.
        #[arg(long)]
        label: Option<String>,
        /// How you found out (ticket reopened, alert confirmed, customer complaint).
        #[arg(long)]
        note: Option<String>,
    },
    /// Record many outcomes from a CSV file (header: `decision_id,correct[,cost,label,note]`)
    /// or JSON Lines (`{"decision_id": ..., "correct": true, ...}`). Every line is checked
    /// first; with any error nothing is recorded.
    Import {
        /// `.csv` or `.jsonl` file.
        file: PathBuf,
    },
}

/// One line of an import.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    decision_id: String,
    correct: bool,
    #[serde(default)]
    cost: Option<f64>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "correct" => Some(true),
        "false" | "0" | "no" | "incorrect" => Some(false),
        _ => None,
    }
}

/// Split one CSV line (fields may be quoted; `""` is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Read every row, or every error with its line number.
fn read_rows(path: &Path) -> Result<Vec<(usize, Row)>, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    let jsonl = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => true,
        Some("csv") => false,
        _ => return Err(vec![format!("{}: use a .csv or .jsonl file", path.display())]),
    };
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<String> = if jsonl {
        Vec::new()
    } else {
        match lines.next() {
            Some((_, h)) => csv_fields(h).into_iter().map(|f| f.trim().to_string()).collect(),
            None => return Err(vec![format!("{}: empty file", path.display())]),
        }
    };
    if !jsonl {
        for need in ["decision_id", "correct"] {
            if !header.iter().any(|h| h == need) {
                errors.push(format!("{}:1: the header has no `{need}` column", path.display()));
            }
        }
        if let Some(bad) =
            header.iter().find(|h| !["decision_id", "correct", "cost", "label", "note"].contains(&h.as_str()))
        {
            errors.push(format!(
                "{}:1: unknown column `{bad}` (decision_id, correct, cost, label, note)",
                path.display()
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    for (i, line) in lines {
        let n = i + 1;
        let at = |msg: String| format!("{}:{n}: {msg}", path.display());
        let row = if jsonl {
            serde_json::from_str::<Row>(line).map_err(|e| at(e.to_string()))
        } else {
            let fields = csv_fields(line);
            let get = |name: &str| header.iter().position(|h| h == name).and_then(|i| fields.get(i)).map(|s| s.trim());
            if fields.len() != header.len() {
                Err(at(format!("{} fields, the header has {}", fields.len(), header.len())))
            } else {
                let correct =
                    get("correct").and_then(parse_bool).ok_or_else(|| at("`correct` must be true or false".into()));
                let cost = match get("cost").filter(|c| !c.is_empty()) {
                    None => Ok(None),
                    Some(c) => c.parse::<f64>().map(Some).map_err(|_| at(format!("`cost` is not a number: {c}"))),
                };
                match (correct, cost) {
                    (Ok(correct), Ok(cost)) => Ok(Row {
                        decision_id: get("decision_id").unwrap_or_default().to_string(),
                        correct,
                        cost,
                        label: get("label").filter(|s| !s.is_empty()).map(str::to_string),
                        note: get("note").filter(|s| !s.is_empty()).map(str::to_string),
                    }),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
        };
        match row {
            Ok(r) if r.decision_id.is_empty() => errors.push(at("`decision_id` is empty".into())),
            Ok(r) if r.cost.is_some_and(|c| !c.is_finite()) => errors.push(at("`cost` must be a finite number".into())),
            Ok(r) => rows.push((n, r)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// Run an outcomes subcommand.
pub fn run(cmd: OutcomesCommand, api: &ApiArgs) -> Result<ExitCode> {
    match cmd {
        OutcomesCommand::Record { id, correct, incorrect: _, cost, label, note } => {
            let api = Api::new(api)?;
            let path = format!("/v1/decisions/{}/outcome", crate::lessons::enc(&id));
            let d: Decision = api.post_as(&path, &OutcomeRequest { correct, cost, label, note })?;
            println!("recorded: {} was {}", d.id, if correct { "right" } else { "wrong" });
            Ok(ExitCode::SUCCESS)
        }
        OutcomesCommand::Import { file } => {
            let rows = match read_rows(&file) {
                Ok(r) => r,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    bail!("{} error(s) in {}; nothing was recorded", errors.len(), file.display());
                }
            };
            let api = Api::new(api)?;
            let mut failed = 0usize;
            for (line, r) in &rows {
                let path = format!("/v1/decisions/{}/outcome", crate::lessons::enc(&r.decision_id));
                let req =
                    OutcomeRequest { correct: r.correct, cost: r.cost, label: r.label.clone(), note: r.note.clone() };
                if let Err(e) = api.post_as::<Decision>(&path, &req) {
                    eprintln!("{}:{line}: {e:#}", file.display());
                    failed += 1;
                }
            }
            println!("recorded {} of {} outcome(s) from {}", rows.len() - failed, rows.len(), file.display());
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_check_every_line_and_name_it() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("o.csv");
        std::fs::write(
            &csv,
            "decision_id,correct,cost,note\nd1,true,,\"ticket, reopened\"\nd2,maybe,3,\n,false,,\nd4,no,abc,\n",
        )
        .unwrap();
        let errors = read_rows(&csv).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].ends_with(":3: `correct` must be true or false"), "{errors:?}");
        assert!(errors[1].ends_with(":4: `decision_id` is empty"), "{errors:?}");
        assert!(errors[2].ends_with(":5: `cost` is not a number: abc"), "{errors:?}");
        std::fs::write(&csv, "decision_id,correct,note\nd1,true,\"ticket, reopened\"\nd2,0,\n").unwrap();
        let rows = read_rows(&csv).unwrap();
        assert_eq!(rows[0].1.note.as_deref(), Some("ticket, reopened"));
        assert!(!rows[1].1.correct);
        let jsonl = dir.path().join("o.jsonl");
        std::fs::write(
            &jsonl,
            "{\"decision_id\":\"d1\",\"correct\":true}\n{\"decision_id\":\"d2\",\"correct\":\"yes\"}\n",
        )
        .unwrap();
        let errors = read_rows(&jsonl).unwrap_err();
        assert!(errors[0].contains(":2:"), "{errors:?}");
        assert!(read_rows(&dir.path().join("o.txt")).is_err());
    }
}
