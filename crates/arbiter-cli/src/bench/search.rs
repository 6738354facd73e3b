//! `arbiter bench search`: full-text search at scale. Loads a fresh store
//! through the store API (decisions, a tenth of them escalated and answered
//! by a reviewer with a written rationale, and review cases worked through
//! their stages and closed, each becoming a lesson), then times searches of
//! two words drawn from the same skewed vocabulary as the texts, against a
//! naive baseline on the same rows (`LIKE '%word%'` over every text).

use crate::table::Table;
use anyhow::{Context, Result};
use arbiter_core::review::*;
use arbiter_core::rng::Rng;
use arbiter_core::search::{SearchKind, SearchQuery};
use arbiter_core::stats::quantile_sorted;
use arbiter_core::{
    Actor, Case, CaseCommand, Decision, DecisionStatus, Escalation, FinalSource, FinalVerdict, HumanDuration, Severity,
    Timestamp, Verdict,
};
use arbiter_store::prelude::*;
use arbiter_store::{NewDecision, SqliteStore};
use clap::Args;
use futures_util::future::join_all;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// Options of `arbiter bench search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Lessons to create (each a review case worked through four stages and closed).
    #[arg(long, default_value_t = 10_000)]
    lessons: u64,
    /// Decisions to load (one in ten escalated and answered with a rationale).
    #[arg(long, default_value_t = 100_000)]
    decisions: u64,
    /// Searches to time, per kind of search.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Keep the loaded store here instead of a temporary directory (reused when it exists).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
}

/// The vocabulary of the generated texts; earlier words are more frequent.
const WORDS: &[&str] = &[
    "alert",
    "host",
    "isolation",
    "agent",
    "benign",
    "workstation",
    "server",
    "beacon",
    "ransomware",
    "phishing",
    "credential",
    "backup",
    "vpn",
    "gateway",
    "exfiltration",
    "lateral",
    "movement",
    "powershell",
    "macro",
    "payroll",
    "finance",
    "printer",
    "scanner",
    "domain",
    "controller",
    "containment",
    "ticket",
    "positive",
    "noise",
    "travel",
    "login",
    "mfa",
    "token",
    "firewall",
    "proxy",
    "dns",
    "tunnel",
    "encrypted",
    "archive",
    "upload",
    "cloud",
    "bucket",
    "sandbox",
    "detonation",
    "hash",
    "signature",
    "update",
    "patch",
    "kernel",
    "driver",
    "browser",
    "extension",
    "plugin",
    "email",
    "attachment",
    "invoice",
    "contractor",
    "offboarding",
    "service",
    "account",
    "rotation",
    "secret",
    "leak",
    "repository",
    "pipeline",
    "build",
    "deploy",
    "staging",
    "production",
    "database",
    "replica",
    "forensics",
    "memory",
    "process",
    "tree",
    "parent",
    "child",
    "scheduled",
    "task",
    "registry",
    "persistence",
    "certificate",
    "expired",
    "laptop",
    "kiosk",
    "badge",
    "door",
    "camera",
    "vendor",
    "portal",
    "api",
    "webhook",
    "throttle",
    "spike",
    "anomaly",
    "baseline",
    "drift",
    "threshold",
    "confidence",
    "override",
    "analyst",
    "lead",
];

fn word(rng: &mut Rng) -> &'static str {
    // skewed: squaring a uniform favours the front of the list
    let u = rng.uniform();
    WORDS[((u * u) * WORDS.len() as f64) as usize % WORDS.len()]
}

fn text(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

fn analyst() -> Actor {
    Actor { name: "ann".into(), key_id: "k-ann".into(), tags: ["soc_analyst".to_string()].into(), is_admin: false }
}

fn engineer() -> Actor {
    Actor { name: "eve".into(), key_id: "k-eve".into(), tags: ["engineering".to_string()].into(), is_admin: false }
}

fn decision(i: u64, at: Timestamp, escalated: bool, rng: &mut Rng) -> (Decision, Option<Case>) {
    let action = arbiter_tuning::soc::load_mix(i);
    let d = Decision {
        id: format!("d{i:08}"),
        agent: format!("agent-{}", i % 5),
        agent_key_id: "k".into(),
        idempotency_key: None,
        action,
        trace_id: Some(format!("t{}", i / 4)),
        context: serde_json::json!({"note": text(rng, 6)}),
        verdict: if escalated { Verdict::Escalate } else { Verdict::Allow },
        status: if escalated { DecisionStatus::Pending } else { DecisionStatus::Final },
        triggers: vec![],
        explanation: text(rng, 8),
        escalation: None,
        policy_hash: "bench".into(),
        case_id: escalated.then(|| format!("c{i:08}")),
        received_at: at,
        event_time: at,
        eval_micros: 1,
        final_verdict: (!escalated).then(|| FinalVerdict {
            verdict: Verdict::Allow,
            source: FinalSource::Policy,
            action: None,
            decided_by: vec![],
            rationale: "confident enough".into(),
            decided_at: at,
            receipt: None,
        }),
        condition_errors: vec![],
        outcome: None,
        tool_result: None,
        subject: None,
        threshold: None,
        audit: None,
        event_time_skew_ms: None,
    };
    let case = escalated.then(|| {
        let esc = Escalation {
            severity: Severity::Medium,
            reviewers: ["soc_analyst".to_string()].into(),
            approvals: 1,
            sla: HumanDuration(3600),
            fallback: Verdict::Deny,
            tiers: vec![],
        };
        Case::new_approval(format!("c{i:08}"), &d, esc, at)
    });
    (d, case)
}

async fn load(store: &Arc<SqliteStore>, args: &SearchArgs) -> Result<()> {
    let t0 = Instant::now();
    let base = Timestamp(1_800_000_000_000);
    for chunk in (0..args.decisions).collect::<Vec<_>>().chunks(1024) {
        let writes = chunk.iter().map(|&i| {
            let store = store.clone();
            async move {
                let mut rng = Rng::new(i);
                let (d, case) = decision(i, Timestamp(base.0 + i as i64 * 1000), i % 10 == 0, &mut rng);
                let id = case.as_ref().map(|c| c.id.clone());
                store
                    .insert_decision(NewDecision {
                        decision: d,
                        request_digest: i.to_string(),
                        case,
                        open_case_cap: None,
                    })
                    .await?;
                if let Some(case) = id {
                    let rationale = text(&mut rng, 10);
                    let verdict = if rng.chance(0.3) { Verdict::Deny } else { Verdict::Allow };
                    let answer = CaseCommand::Answer {
                        by: analyst(),
                        verdict,
                        check: None,
                        modified_args: None,
                        rationale,
                        failure_modes: vec![],
                        via: None,
                    };
                    store.update_case(&case, answer, Timestamp(base.0 + i as i64 * 1000 + 60_000)).await?;
                }
                anyhow::Ok(())
            }
        });
        for r in join_all(writes).await {
            r?;
        }
    }
    eprintln!("loaded {} decisions in {:.1}s", args.decisions, t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    for chunk in (0..args.lessons).collect::<Vec<_>>().chunks(256) {
        let writes = chunk.iter().map(|&i| {
            let store = store.clone();
            async move {
                let mut rng = Rng::new(1_000_000_000 + i);
                let at = Timestamp(base.0 + i as i64 * 5000);
                let did = format!("d{:08}", (i * 10) % args.decisions.max(1));
                let mut review = Review::new(text(&mut rng, 5), ReviewSource::Manual);
                review.description = text(&mut rng, 20);
                review.decision_ids = vec![did.clone()];
                let id = format!("r{i:08}");
                let case = Case::new_review(
                    id.clone(),
                    review,
                    "isolate_host".into(),
                    format!("agent-{}", i % 5),
                    Severity::Medium,
                    ["engineering".to_string()].into(),
                    at,
                );
                store.open_case(case, "eve").await?;
                let records = [
                    StageRecord::ContextualAnalysis(ContextualAnalysis {
                        reproduced: Reproduced::Yes,
                        steps: vec![text(&mut rng, 8)],
                        environment: "staging".into(),
                        links: vec![],
                        bundle_sha256: None,
                        differences: None,
                    }),
                    StageRecord::TraceInspection(TraceInspection {
                        findings: vec![Finding {
                            decision_id: did,
                            span_id: None,
                            kind: FindingKind::WrongAction,
                            note: text(&mut rng, 12),
                        }],
                    }),
                    StageRecord::ImpactAssessment(ImpactAssessment {
                        severity: ImpactSeverity::S3,
                        scope: Scope { count: 1, entities: vec![] },
                        technical_correctness: text(&mut rng, 8),
                        user_experience: text(&mut rng, 8),
                    }),
                    StageRecord::ResolutionDesign(ResolutionDesign {
                        interventions: vec![InterventionSpec {
                            kind: InterventionKind::PromptRefinement,
                            description: text(&mut rng, 10),
                            owner: "eve".into(),
                            expected_effect: text(&mut rng, 5),
                            policy_version: None,
                        }],
                        no_intervention_needed: None,
                    }),
                ];
                for record in records {
                    let cmd = CaseCommand::RecordStage {
                        by: engineer(),
                        role: "engineering".into(),
                        rationale: text(&mut rng, 8),
                        record,
                    };
                    store.update_case(&id, cmd, at).await?;
                }
                let close = CaseCommand::Close { by: engineer(), reason: text(&mut rng, 10) };
                store.update_case(&id, close, at).await?;
                anyhow::Ok(())
            }
        });
        for r in join_all(writes).await {
            r?;
        }
    }
    eprintln!("created {} lessons in {:.1}s", args.lessons, t0.elapsed().as_secs_f64());
    Ok(())
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (quantile_sorted(&ms, 0.5), quantile_sorted(&ms, 0.95))
}

/// Run `arbiter bench search`.
pub fn run(args: SearchArgs) -> Result<ExitCode> {
    crate::process::runtime()?.block_on(async move {
        let tmp = tempfile::tempdir()?;
        let dir = args.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("bench-search.db");
        let fresh = !path.exists();
        let store = Arc::new(SqliteStore::open(&path)?);
        if fresh {
            load(&store, &args).await?;
        } else {
            eprintln!("reusing {}", path.display());
        }
        let raw = rusqlite::Connection::open(&path)?;
        let count = |sql: &str| raw.query_row(sql, [], |r| r.get::<_, i64>(0));
        let (docs, decisions, lessons) = (
            count("SELECT COUNT(*) FROM search_docs")?,
            count("SELECT COUNT(*) FROM decisions")?,
            count("SELECT COUNT(*) FROM lessons")?,
        );
        let mut rng = Rng::new(42);
        let queries: Vec<String> =
            (0..args.queries).map(|_| format!("{} {}", word(&mut rng), word(&mut rng))).collect();
        let mut table = Table::new(&["SEARCH", "P50 MS", "P95 MS", "MEAN HITS"]).right(&[1, 2, 3]);
        let prefixed: Vec<String> = queries.iter().map(|q| format!("{}*", &q[..q.len() - 2])).collect();
        /// (label, kind filter, action filter, queries)
        type Row<'a> = (&'a str, Option<SearchKind>, Option<&'a str>, &'a Vec<String>);
        let kinds: [Row<'_>; 4] = [
            ("two words, everything", None, None, &queries),
            ("two words, lessons only", Some(SearchKind::Lesson), None, &queries),
            ("two words, decisions about open_ticket", Some(SearchKind::Decision), Some("open_ticket"), &queries),
            ("the second word a prefix (word*)", None, None, &prefixed),
        ];
        for (name, kind, action, queries) in kinds {
            let mut times = Vec::new();
            let mut hits = 0usize;
            for q in queries {
                let t = Instant::now();
                let found = store
                    .search(SearchQuery {
                        q: q.clone(),
                        kind,
                        action: action.map(str::to_string),
                        limit: 20,
                        ..Default::default()
                    })
                    .await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                hits += found.len();
            }
            let (p50, p95) = percentiles(times);
            table.row(vec![
                name.into(),
                format!("{p50:.2}"),
                format!("{p95:.2}"),
                format!("{:.1}", hits as f64 / queries.len() as f64),
            ]);
        }
        // the baseline: a scan of every text for both words
        let conn = rusqlite::Connection::open(&path)?;
        let mut st = conn.prepare(
            "SELECT d.ref_id FROM search_docs d JOIN search_fts f ON f.rowid = d.id
             WHERE (f.title || ' ' || f.body) LIKE ?1 AND (f.title || ' ' || f.body) LIKE ?2
             ORDER BY d.at DESC LIMIT 20",
        )?;
        let mut times = Vec::new();
        let mut hits = 0usize;
        for q in queries.iter().take(args.queries.min(50)) {
            let mut w = q.split(' ');
            let (a, b) = (format!("%{}%", w.next().unwrap_or("")), format!("%{}%", w.next().unwrap_or("")));
            let t = Instant::now();
            let n = st.query_map([a, b], |r| r.get::<_, String>(0))?.count();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            hits += n;
        }
        let n = times.len().max(1);
        let (p50, p95) = percentiles(times);
        table.row(vec![
            "baseline: LIKE scan of every text".into(),
            format!("{p50:.2}"),
            format!("{p95:.2}"),
            format!("{:.1}", hits as f64 / n as f64),
        ]);
        println!(
            "{decisions} decisions, {lessons} lessons; {docs} searchable documents; {} queries of two words",
            queries.len()
        );
        table.print();
        store.close();
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
