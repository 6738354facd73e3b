//! `arbiter audit verify|export`, directly on the store.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain, check every decision row against it and replay every case against its row;
    /// name the first problem. Exits 1 if any.
    Verify {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// `SEQ:HASH` printed earlier by `arbiter audit anchor`: also prove the log still extends it
        /// (deleting the newest events together with their rows is caught only this way).
        #[arg(long)]
        anchor: Option<arbiter_store::ChainHead>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The project whose audit chain this is (each project has its own).
        #[arg(long, env = "ARBITER_PROJECT", default_value = "default")]
        project: arbiter_core::ProjectId,
        /// Verify every project's chain, one after another (`--anchor` does not apply: anchors are per project).
        #[arg(long, conflicts_with_all = ["anchor", "project"])]
        all: bool,
    },
    /// Print the chain head (`SEQ:HASH`): store it elsewhere (a ticket, a second system) and later pass it to
    /// `audit verify --anchor` to prove nothing before it was removed or rewritten.
    Anchor {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The project whose audit chain this is (each project has its own).
        #[arg(long, env = "ARBITER_PROJECT", default_value = "default")]
        project: arbiter_core::ProjectId,
    },
    /// Write the audit log as JSON Lines (one event per line, with its hashes) for an outside archive.
    Export {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only events after this sequence number (for incremental archives).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// The project whose audit chain this is (each project has its own).
        #[arg(long, env = "ARBITER_PROJECT", default_value = "default")]
        project: arbiter_core::ProjectId,
    },
}

/// Verify one project's chain, or (`all`) every project's, each on its own.
async fn verify_projects(
    open: &crate::store::OpenStore,
    all: bool,
    project: arbiter_core::ProjectId,
    anchor: Option<arbiter_store::ChainHead>,
) -> Result<Vec<(arbiter_core::ProjectId, arbiter_store::AuditReport)>> {
    let projects = if all { open.projects().await?.into_iter().map(|p| p.id).collect() } else { vec![project] };
    let mut out = Vec::new();
    for p in projects {
        let store = open.in_project(&p).await?;
        let report = store.verify_audit(anchor.clone()).await?;
        out.push((p, report));
    }
    Ok(out)
}

/// Run an audit subcommand.
pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    let rt = crate::process::current_thread()?;
    rt.block_on(async move {
        match cmd {
            AuditCommand::Verify { db, anchor, json, project, all } => {
                let open = crate::process::open_store(&db).await?;
                let reports = verify_projects(&open, all, project, anchor.clone()).await;
                open.close();
                let reports = reports?;
                if json && !all {
                    println!("{}", serde_json::to_string_pretty(&reports[0].1)?);
                } else if json {
                    let by_project: serde_json::Map<String, serde_json::Value> = reports
                        .iter()
                        .map(|(p, r)| Ok((p.to_string(), serde_json::to_value(r)?)))
                        .collect::<Result<_>>()?;
                    println!("{}", serde_json::to_string_pretty(&by_project)?);
                }
                let mut ok = true;
                for (p, report) in &reports {
                    ok &= report.problem.is_none();
                    if json {
                        continue;
                    }
                    if all {
                        print!("{p}: ");
                    }
                    match &report.problem {
                        Some(_) => {
                            println!("FAILED: {} problem(s) found", report.problems_found.max(1));
                            for p in &report.problems {
                                println!("  {p}");
                            }
                            let listed = report.problems.len() as u64;
                            if report.problems_found > listed {
                                println!(
                                    "  … and {} more (`--json` lists the first {listed})",
                                    report.problems_found - listed
                                );
                            }
                        }
                        None => println!(
                            "ok: {} events chained{}; {} decisions and {} cases match the chain{}",
                            report.events,
                            report.head.as_ref().map_or(String::new(), |h| format!(" (head {h})")),
                            report.decisions,
                            report.cases,
                            if anchor.is_some() { "; it extends the anchor" } else { "" }
                        ),
                    }
                }
                Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            }
            AuditCommand::Anchor { db, project } => {
                let open = crate::process::open_store(&db).await?;
                let head = match open.in_project(&project).await {
                    Ok(store) => store.chain_head().await.map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                };
                open.close();
                match head? {
                    Some(h) => println!("{h}"),
                    None => anyhow::bail!(
                        "the audit log of project {project} in {} is empty; there is nothing to anchor yet",
                        db.display()
                    ),
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Export { db, out, after, project } => {
                let open = crate::process::open_store(&db).await?;
                let store = open.in_project(&project).await?; // on an error, dropping `open` closes it
                let mut w: Box<dyn Write> = match &out {
                    Some(p) => Box::new(std::io::BufWriter::new(
                        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
                    )),
                    None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                };
                let (mut after, mut n) = (after, 0u64);
                loop {
                    let page = store.events(after, 5000).await?;
                    let Some(last) = page.last() else { break };
                    after = last.seq;
                    for e in &page {
                        serde_json::to_writer(&mut w, e)?;
                        w.write_all(b"\n")?;
                        n += 1;
                    }
                }
                w.flush()?;
                open.close();
                if let Some(p) = out {
                    eprintln!("exported {n} events to {}", p.display());
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
