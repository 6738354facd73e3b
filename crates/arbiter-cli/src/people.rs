//! `arbiter people list|link-slack|unlink-slack`, working directly on the
//! store: the server-wide people directory (who signed in by single sign-on,
//! with their roles as of then) and the Slack accounts people answer from.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// People subcommands.
#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Everyone in the directory: their roles as of their last single sign-on, and their Slack link.
    List {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Link a Slack user to a person: in Slack they answer cases as that person, with that
    /// person's roles (from their single sign-on, or their API key of the same name).
    LinkSlack {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The person: their single sign-on name, or their API key's name.
        name: String,
        /// Their Slack member id (`U…`: Slack profile → ⋮ → Copy member ID).
        slack_user: String,
    },
    /// Unlink a person's Slack account.
    UnlinkSlack {
        /// SQLite database file (or a postgres:// URL).
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// The person.
        name: String,
    },
}

/// Run a people subcommand.
pub fn run(cmd: PeopleCommand) -> Result<ExitCode> {
    let rt = crate::process::current_thread()?;
    rt.block_on(async move {
        match cmd {
            PeopleCommand::List { db, json } => {
                let store = crate::process::open_store(&db).await?;
                let people = store.people().await;
                store.close();
                let people: Vec<_> = people?.into_iter().map(arbiter_core::Person::without_id_token).collect();
                if json {
                    println!("{}", serde_json::to_string_pretty(&people)?);
                } else {
                    let mut t =
                        crate::table::Table::new(&["NAME", "EMAIL", "ROLES (LAST SIGN-IN)", "SIGNED IN", "SLACK"]);
                    for p in people {
                        let roles = p.identity.as_ref().map_or(String::new(), |i| {
                            i.grants
                                .iter()
                                .map(|g| {
                                    let tags: Vec<&str> = g.tags.iter().map(String::as_str).collect();
                                    format!(
                                        "{}:{}{}",
                                        g.project,
                                        g.role,
                                        if tags.is_empty() { String::new() } else { format!("({})", tags.join(",")) }
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                        });
                        t.row(vec![
                            p.name,
                            p.identity.and_then(|i| i.email).unwrap_or_default(),
                            roles,
                            p.signed_in_at.map_or(String::new(), |t| t.to_string()),
                            p.slack_user.unwrap_or_default(),
                        ]);
                    }
                    t.print();
                }
            }
            PeopleCommand::LinkSlack { db, name, slack_user } => {
                arbiter_core::identity::check_slack_member_id(&slack_user).map_err(|e| anyhow::anyhow!(e))?;
                let store = crate::process::open_store(&db).await?;
                let done = store.link_slack(&name, Some(&slack_user)).await;
                store.close();
                done?;
                println!("{name} now answers cases from Slack as Slack user {slack_user}");
            }
            PeopleCommand::UnlinkSlack { db, name } => {
                let store = crate::process::open_store(&db).await?;
                let done = store.link_slack(&name, None).await;
                store.close();
                done?;
                println!("{name} is no longer linked to a Slack account");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
