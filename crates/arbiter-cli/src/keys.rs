//! `arbiter keys create|list|revoke`, working directly on the store (a running
//! server sees new keys at once and revocations within its key-cache TTL, 5 s).

use anyhow::{Result, bail};
use arbiter_core::{Clock, Role, SystemClock};
use arbiter_store::Store;
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
        /// Print only the key (for scripts).
        #[arg(long)]
        quiet: bool,
    },
    /// List keys (never their secrets).
    List {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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
    let rt = crate::current_thread()?;
    rt.block_on(async move {
        match cmd {
            KeysCommand::Create { db, name, role, tags, quiet } => {
                let store = crate::open_store(&db)?;
                let tags: BTreeSet<String> = tags.into_iter().collect();
                arbiter_server::auth::validate_key_fields(&name, &tags).map_err(|e| anyhow::anyhow!("{e}"))?;
                let key = arbiter_server::auth::generate_key(&name, role, tags, SystemClock.now())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                store.create_key(key.record.clone()).await?;
                store.close();
                if quiet {
                    println!("{}", key.secret);
                } else {
                    println!("created {} key {} for {:?}", key.record.role, key.record.id, key.record.name);
                    println!("key: {}", key.secret);
                    println!("(shown once: Arbiter stores only its SHA-256 digest)");
                }
            }
            KeysCommand::List { db, json } => {
                let store = crate::open_store(&db)?;
                let keys = store.keys().await?;
                store.close();
                if json {
                    println!("{}", serde_json::to_string_pretty(&keys)?);
                } else {
                    println!("{:<14} {:<9} {:<24} {:<24} STATUS", "ID", "ROLE", "NAME", "TAGS");
                    for k in keys {
                        let tags: Vec<&str> = k.tags.iter().map(String::as_str).collect();
                        let status = match k.revoked_at {
                            Some(t) => format!("revoked {t}"),
                            None => format!("active since {}", k.created_at),
                        };
                        println!("{:<14} {:<9} {:<24} {:<24} {}", k.id, k.role, k.name, tags.join(","), status);
                    }
                }
            }
            KeysCommand::Revoke { db, id } => {
                let store = crate::open_store(&db)?;
                let done = store.revoke_key(&id, SystemClock.now()).await?;
                store.close();
                if !done {
                    bail!("no active key with id {id}");
                }
                println!("revoked key {id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
