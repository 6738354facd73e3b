//! `arbiter keys create|list|revoke`, working directly on the store (a running
//! server sees new keys at once and revocations within its key-cache TTL, 5 s).

use anyhow::{Result, bail};
use arbiter_core::{Clock, Role, SystemClock};
use clap::Subcommand;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once (only its digest is stored).
    Create {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Who the key is for; for agents, the agent's name.
        #[arg(long)]
        name: String,
        /// agent, reviewer or admin.
        #[arg(long)]
        role: Role,
        /// Reviewer role tag (repeatable), e.g. `--tag soc_analyst --tag on_call`.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// The key stops working after this long, e.g. `90d`.
        #[arg(long)]
        expires: Option<arbiter_core::HumanDuration>,
        /// The key's own proposal rate limit (`10/s`, `600/m:50`, `unlimited`) instead of its role's.
        #[arg(long)]
        rate_limit: Option<arbiter_core::rate::RateLimit>,
        /// A key with this name exists and this is another key for the same person (their approvals count once).
        #[arg(long)]
        same_principal: bool,
        /// Print only the key (for scripts).
        #[arg(long)]
        quiet: bool,
        /// The project the key belongs to (an agent key acts only there; an admin key of the
        /// default project is a server admin).
        #[arg(long, env = "ARBITER_PROJECT", default_value = "default")]
        project: arbiter_core::ProjectId,
    },
    /// Rotate a key without downtime: print a new key for the same principal; the old one keeps working for
    /// `--old-expires` (default 7d), then stops.
    Rotate {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The old key's id.
        id: String,
        /// How long the old key keeps working.
        #[arg(long, default_value = "7d")]
        old_expires: arbiter_core::HumanDuration,
        /// Print only the new key (for scripts).
        #[arg(long)]
        quiet: bool,
    },
    /// List a project's keys (never their secrets).
    List {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The project whose keys to list.
        #[arg(long, env = "ARBITER_PROJECT", default_value = "default")]
        project: arbiter_core::ProjectId,
    },
    /// Revoke a key by its id (the middle part of `arb_<id>_...`).
    Revoke {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The key id.
        id: String,
    },
}

/// Run a key subcommand.
pub fn run(cmd: KeysCommand) -> Result<ExitCode> {
    let rt = crate::process::current_thread()?;
    rt.block_on(async move {
        match cmd {
            KeysCommand::Create { db, name, role, tags, expires, rate_limit, same_principal, quiet, project } => {
                let open = crate::process::open_store(&db).await?;
                let store = open.in_project(&project).await?; // on an error, dropping `open` closes it
                let tags: BTreeSet<String> = tags.into_iter().collect();
                let spec = arbiter_server::app::keys::KeySpec {
                    name,
                    role,
                    tags,
                    expires_in: expires,
                    rate_limit,
                    same_principal,
                };
                let key = arbiter_server::app::keys::create_key(&*store, spec, SystemClock.now())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"));
                let roles = match store.active_policy().await {
                    Ok(Some(v)) => arbiter_policy::Policy::parse(&v.source).ok().map(|p| p.reviewer_roles()),
                    _ => None,
                };
                open.close();
                let key = key?;
                for w in arbiter_server::app::keys::key_warnings(&key.record, roles.as_ref()) {
                    eprintln!("warning: {w}");
                }
                if quiet {
                    println!("{}", key.secret);
                } else {
                    println!("created {} key {} for {:?}", key.record.role, key.record.id, key.record.name);
                    if let Some(t) = key.record.expires_at {
                        println!("expires: {t}");
                    }
                    println!("key: {}", key.secret);
                    println!("(shown once: Arbiter stores only its SHA-256 digest)");
                }
            }
            KeysCommand::Rotate { db, id, old_expires, quiet } => {
                let open = crate::process::open_store(&db).await?;
                // the new key goes to the old key's project
                let key = match open.of_key(&id).await {
                    Ok(store) => arbiter_server::app::keys::rotate_key(&*store, &id, old_expires, SystemClock.now())
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}")),
                    Err(e) => Err(e),
                };
                open.close();
                let key = key?;
                if quiet {
                    println!("{}", key.secret);
                } else {
                    println!("created {} key {} for {:?}", key.record.role, key.record.id, key.record.name);
                    println!("key: {}", key.secret);
                    println!(
                        "the old key {id} keeps working for {old_expires}, then stops; switch callers to the new key"
                    );
                }
            }
            KeysCommand::List { db, json, project } => {
                let open = crate::process::open_store(&db).await?;
                let keys = match open.in_project(&project).await {
                    Ok(store) => store.keys().await.map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                };
                open.close();
                let keys = keys?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&keys)?);
                } else {
                    let mut t = crate::table::Table::new(&["ID", "ROLE", "NAME", "TAGS", "STATUS"]);
                    let now = SystemClock.now();
                    for k in keys {
                        let tags: Vec<&str> = k.tags.iter().map(String::as_str).collect();
                        let status = match (k.revoked_at, k.expires_at) {
                            (Some(t), _) => format!("revoked {t}"),
                            (None, Some(t)) if t <= now => format!("expired {t}"),
                            (None, Some(t)) => format!("active since {}, expires {t}", k.created_at),
                            (None, None) => format!("active since {}", k.created_at),
                        };
                        t.row(vec![k.id, k.role.to_string(), k.name, tags.join(","), status]);
                    }
                    t.print();
                }
            }
            KeysCommand::Revoke { db, id } => {
                let open = crate::process::open_store(&db).await?;
                // a key is revoked in its own project
                let done = match open.of_key(&id).await {
                    Ok(store) => store.revoke_key(&id, SystemClock.now()).await.map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                };
                open.close();
                if !done? {
                    bail!("no active key with id {id}");
                }
                println!("revoked key {id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
