//! `arbiter projects create|list`, working directly on the store (a running
//! server serves a new project at once: its agents' keys, its policy and its
//! queue live apart from every other project's).

use anyhow::Result;
use arbiter_core::{Clock, SystemClock};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// Project subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// Create a project: its own policy, keys, queue, lessons, drift monitor, webhooks and audit chain.
    /// Then give it a policy (`arbiter policy activate --project ID FILE` or the API) and keys
    /// (`arbiter keys create --project ID ...`).
    Create {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The project's id: 1 to 40 lowercase letters, digits and `-`.
        id: String,
        /// A name for people (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the projects.
    List {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run a project subcommand.
pub fn run(cmd: ProjectsCommand) -> Result<ExitCode> {
    let rt = crate::process::current_thread()?;
    rt.block_on(async move {
        match cmd {
            ProjectsCommand::Create { db, id, name } => {
                let store = crate::process::open_store(&db).await?;
                let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
                let made = arbiter_server::app::projects::create(&*store, &id, name, &by, SystemClock.now()).await;
                store.close();
                let p = made.map_err(|e| anyhow::anyhow!("{e}"))?;
                println!("created project {} ({})", p.id, p.name);
                println!(
                    "next: give it a policy (`arbiter policy activate --project {id} FILE`) and keys \
                     (`arbiter keys create --project {id} --name ... --role agent`)",
                    id = p.id
                );
            }
            ProjectsCommand::List { db, json } => {
                let store = crate::process::open_store(&db).await?;
                let projects = store.projects().await;
                store.close();
                let projects = projects?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&projects)?);
                } else {
                    let mut t = crate::table::Table::new(&["ID", "NAME", "CREATED", "BY"]);
                    for p in projects {
                        t.row(vec![p.id.to_string(), p.name, p.created_at.to_string(), p.created_by]);
                    }
                    t.print();
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
