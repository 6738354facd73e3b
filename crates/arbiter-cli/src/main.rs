//! The `arbiter` binary: run the server, check and evaluate policies, manage
//! keys, and load-test a running server.

mod audit;
mod backup;
mod bench;
mod cases;
mod client;
mod demo;
mod drift;
mod embedded;
mod filters;
mod history;
mod keys;
mod lessons;
mod mcp;
mod migrate;
mod outcomes;
mod people;
mod policy;
mod process;
mod progress;
mod projects;
mod receipt;
mod replay;
mod reviews;
mod serve;
mod simulate;
mod store;
mod table;
mod tune;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Arbiter: decides which actions of an AI agent need a person, and makes the human part fast.
#[derive(Debug, Parser)]
#[command(name = "arbiter", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API on the embedded SQLite store (creates it, a default policy and an admin key on first start).
    Serve(Box<serve::ServeArgs>),
    /// Check, evaluate and inspect policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Create, list and revoke API keys directly in the store.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Create and list projects directly in the store: teams sharing one server, each with its own
    /// policy, keys, queue, lessons and audit chain.
    #[command(subcommand)]
    Projects(projects::ProjectsCommand),
    /// The people directory: who signed in by single sign-on, and the Slack accounts people
    /// answer cases from (link them here).
    #[command(subcommand)]
    People(people::PeopleCommand),
    /// Bring a store's schema up to date (with progress), or --check whether anything is pending; or copy an SQLite store into PostgreSQL (--from ./arbiter.db --to postgres://...).
    Migrate(migrate::MigrateArgs),
    /// Copy a live store to a new file (consistent snapshot; the server keeps running).
    Backup(backup::BackupArgs),
    /// Choose per-class thresholds from history under an escalation budget, with an error bound.
    Tune(tune::TuneArgs),
    /// Simulate the reviewer load a policy would cause on history.
    Simulate(simulate::SimulateArgs),
    /// Run the whole loop on a simulated SOC day: agent, reviewers, drift, review case.
    Demo {
        #[command(subcommand)]
        command: Option<demo::DemoCommand>,
        #[command(flatten)]
        args: demo::DemoArgs,
    },
    /// Load generators.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Work the approval queue (over HTTP; --url/ARBITER_URL, --key/ARBITER_KEY).
    Cases {
        #[command(subcommand)]
        command: cases::CasesCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Work review cases through their four stages (over HTTP).
    Reviews {
        #[command(subcommand)]
        command: reviews::ReviewsCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Record what became of decisions, one or a file at a time (over HTTP).
    Outcomes {
        #[command(subcommand)]
        command: outcomes::OutcomesCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Check a signed approval receipt (offline or against a server's keys), list or rotate the keys.
    Receipt {
        #[command(subcommand)]
        command: receipt::ReceiptCommand,
    },
    /// The MCP gateway: put Arbiter between an MCP client and its MCP servers.
    Mcp(Box<mcp::McpArgs>),
    /// Reproduce a decision: export its self-contained bundle (over HTTP), or re-run one with no server.
    Replay {
        #[command(subcommand)]
        command: replay::ReplayCommand,
    },
    /// Learning: lessons, search, guidance and dataset exports (over HTTP).
    Lessons {
        #[command(subcommand)]
        command: lessons::LessonsCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// The drift monitor's statistics and alarms (over HTTP).
    Drift {
        #[command(subcommand)]
        command: drift::DriftCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Verify or export the tamper-evident audit log (directly on the store).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

/// Output piped into a reader that stops early (`arbiter openapi | head -1`)
/// ends the command quietly, as other command-line tools do, instead of
/// panicking on the closed pipe.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if msg.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("os error 32")) {
            std::process::exit(0);
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Projects(cmd) => projects::run(cmd),
        Command::People(cmd) => people::run(cmd),
        Command::Backup(args) => backup::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Tune(args) => tune::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Demo { command: Some(cmd), .. } => demo::run_command(cmd),
        Command::Demo { command: None, args } => demo::run(args),
        Command::Cases { command, api } => cases::run(command, &api),
        Command::Reviews { command, api } => reviews::run(command, &api),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Drift { command, api } => drift::run(command, &api),
        Command::Lessons { command, api } => lessons::run(command, &api),
        Command::Outcomes { command, api } => outcomes::run(command, &api),
        Command::Replay { command } => replay::run(command),
        Command::Mcp(args) => mcp::run(*args),
        Command::Receipt { command } => receipt::run(command),
        Command::Openapi => {
            println!("{}", arbiter_server::openapi::OPENAPI_JSON.trim_end());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
