//! `arbiter receipt verify|keys|rotate`: check a signed approval receipt the
//! way a tool server would, list the published keys, add a signing key.

use crate::client::{Api, ApiArgs};
use anyhow::{Context, Result, bail};
use arbiter_api::receipts::ReceiptKeys;
use arbiter_core::receipt::{Receipt, ReceiptKey};
use arbiter_receipt::ReceiptError;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// Receipt subcommands.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt: its signature against the published keys, its expiry, and (with --args)
    /// that the arguments about to run are the ones it names. FILE holds the receipt, or a whole
    /// decision (its `final.receipt` is read). Exits 0 when valid; 1 on a bad signature or an unknown
    /// key, 2 on an arguments mismatch, 3 when expired, 4 when the verdict is not allow (with --args).
    Verify {
        /// The receipt or decision, as JSON (`-` for standard input).
        file: PathBuf,
        /// The published keys from this server (`GET /v1/receipts/keys`).
        #[arg(long, env = "ARBITER_URL", conflicts_with = "keys")]
        url: Option<String>,
        /// The published keys from a file (the JSON that `GET /v1/receipts/keys` answers), for offline checks.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// The arguments about to run, as JSON (`@path` reads a file).
        #[arg(long)]
        args: Option<String>,
    },
    /// Print the published keys (JSON), e.g. to check receipts offline with `verify --keys`.
    Keys {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Add a new signing key (admin); receipts already issued keep verifying with the older keys.
    Rotate {
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Run a receipt subcommand.
pub fn run(cmd: ReceiptCommand) -> Result<ExitCode> {
    match cmd {
        ReceiptCommand::Keys { api } => {
            let keys: ReceiptKeys = Api::new(&api)?.get_as("/v1/receipts/keys")?;
            println!("{}", serde_json::to_string_pretty(&keys)?);
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Rotate { api } => {
            let key: ReceiptKey = Api::new(&api)?.post_as("/v1/receipts/keys/rotate", &serde_json::json!({}))?;
            println!("new signing key {} (older keys stay published)", key.key_id);
            Ok(ExitCode::SUCCESS)
        }
        ReceiptCommand::Verify { file, url, keys, args } => verify(&file, url, keys, args),
    }
}

fn verify(file: &PathBuf, url: Option<String>, keys: Option<PathBuf>, args: Option<String>) -> Result<ExitCode> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    let raw = v.pointer("/final/receipt").cloned().unwrap_or(v);
    let receipt: Receipt = serde_json::from_value(raw)
        .with_context(|| format!("{}: neither a receipt nor a decision with one", file.display()))?;
    let published: ReceiptKeys = match (keys, url) {
        (Some(path), _) => {
            let t = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&t)
                .with_context(|| format!("{}: not the JSON of GET /v1/receipts/keys", path.display()))?
        }
        (None, Some(url)) => Api::public(&url)?.get_as("/v1/receipts/keys")?,
        (None, None) => bail!("give --url (or ARBITER_URL) or --keys KEYS.json to check the signature against"),
    };
    let args = args.map(|a| crate::client::json_arg("args", &a)).transpose()?;
    let now =
        arbiter_core::Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64);
    let result = match &args {
        Some(a) => arbiter_receipt::authorises(&receipt, &published.keys, now, a),
        None => arbiter_receipt::verify(&receipt, &published.keys, now, None),
    };
    let code = match &result {
        Ok(()) => 0,
        Err(ReceiptError::UnknownKey(_) | ReceiptError::BadSignature | ReceiptError::Malformed(_)) => 1,
        Err(ReceiptError::ArgsMismatch { .. }) => 2,
        Err(ReceiptError::Expired(_)) => 3,
        Err(ReceiptError::NotAllowed(_)) => 4,
    };
    match result {
        Ok(()) => println!(
            "valid: {} {} of decision {} by {} (policy {}), signed by key {}, until {}{}",
            receipt.verdict,
            receipt.action,
            receipt.decision_id,
            receipt.agent,
            &receipt.policy_hash[..12.min(receipt.policy_hash.len())],
            receipt.key_id,
            receipt.expires_at,
            if args.is_some() { "; the arguments match" } else { "" }
        ),
        Err(e) => eprintln!("refused: {e}"),
    }
    Ok(ExitCode::from(code))
}
