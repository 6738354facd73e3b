//! `arbiter projects create|list|grant|revoke|members`, working directly on the store (a running
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
    /// Give a person (a reviewer or admin key of another project) a role in a project, or change it.
    Grant {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The project they get a role in.
        project: arbiter_core::ProjectId,
        /// The person: their key's name in `--home`.
        #[arg(long)]
        principal: String,
        /// The project of the person's key.
        #[arg(long)]
        home: arbiter_core::ProjectId,
        /// reviewer or admin.
        #[arg(long)]
        role: arbiter_core::Role,
        /// Reviewer role tag in the project (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Take a person's role in a project away (`MEMBER` is `principal@home`).
    Revoke {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The project.
        project: arbiter_core::ProjectId,
        /// The person, as `principal@home`.
        member: String,
    },
    /// The people with a role in a project (beside its own keys).
    Members {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The project.
        project: arbiter_core::ProjectId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
            ProjectsCommand::Grant { db, project, principal, home, role, tags } => {
                let store = crate::process::open_store(&db).await?;
                let done = grant(&store, &project, &principal, &home, role, tags).await;
                store.close();
                let m = done?;
                println!(
                    "{} may now act in project {} as {}{}",
                    m.member_id(),
                    m.project,
                    m.role,
                    if m.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", m.tags.iter().cloned().collect::<Vec<_>>().join(", "))
                    }
                );
            }
            ProjectsCommand::Revoke { db, project, member } => {
                let store = crate::process::open_store(&db).await?;
                let done = revoke(&store, &project, &member).await;
                store.close();
                done?;
                println!("{member} no longer has a role in project {project}");
            }
            ProjectsCommand::Members { db, project, json } => {
                let store = crate::process::open_store(&db).await?;
                let members = match store.in_project(&project).await {
                    Ok(s) => s.members().await.map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                };
                store.close();
                let members = members?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&members)?);
                } else {
                    let mut t = crate::table::Table::new(&["MEMBER", "ROLE", "TAGS", "SINCE", "BY"]);
                    for m in members {
                        let tags: Vec<&str> = m.tags.iter().map(String::as_str).collect();
                        t.row(vec![
                            m.member_id(),
                            m.role.to_string(),
                            tags.join(","),
                            m.created_at.to_string(),
                            m.created_by,
                        ]);
                    }
                    t.print();
                }
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

/// Grant on the store directly (the CLI on the host is trusted as a server admin).
async fn grant(
    store: &crate::store::OpenStore,
    project: &arbiter_core::ProjectId,
    principal: &str,
    home: &arbiter_core::ProjectId,
    role: arbiter_core::Role,
    tags: Vec<String>,
) -> Result<arbiter_core::Membership> {
    let scoped = store.in_project(project).await?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let tags = tags.into_iter().collect();
    arbiter_server::app::projects::grant_in(&*scoped, &by, principal, home, role, tags, SystemClock.now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Revoke on the store directly.
async fn revoke(store: &crate::store::OpenStore, project: &arbiter_core::ProjectId, member: &str) -> Result<()> {
    let scoped = store.in_project(project).await?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    arbiter_server::app::projects::revoke_in(&*scoped, &by, member, SystemClock.now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}
