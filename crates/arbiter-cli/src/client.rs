//! The blocking client of the reviewer commands, over the async [`Client`].

use anyhow::{Context, Result, bail};
pub use arbiter_client::Client;
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the server is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Arbiter server.
    #[arg(long, env = "ARBITER_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// API key (reviewer or admin).
    #[arg(long, env = "ARBITER_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
    /// Act in this project (a server admin's key may act in any; other keys only in their own,
    /// which is the default).
    #[arg(long, env = "ARBITER_PROJECT", global = true)]
    pub project: Option<arbiter_core::ProjectId>,
}

/// A blocking connection to the API, for the reviewer commands.
pub struct Api {
    client: Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    /// Connect (lazily) with the given arguments.
    pub fn new(args: &ApiArgs) -> Result<Api> {
        let Some(key) = args.key.clone() else {
            bail!("no API key: pass --key or set ARBITER_KEY (create one with `arbiter keys create`)");
        };
        let url = arbiter_client::check_base_url(&args.url).map_err(|why| anyhow::anyhow!("--url {why}"))?;
        let rt = crate::process::current_thread()?;
        let mut client = Client::new(reqwest::Client::new(), &url, key);
        if let Some(p) = &args.project {
            client = client.in_project(p.as_str());
        }
        Ok(Api { client, rt })
    }

    /// Connect without a key, for the few public reads (the receipt keys).
    pub fn public(url: &str) -> Result<Api> {
        let url = arbiter_client::check_base_url(url).map_err(|why| anyhow::anyhow!("--url {why}"))?;
        let rt = crate::process::current_thread()?;
        Ok(Api { client: Client::new(reqwest::Client::new(), &url, ""), rt })
    }

    /// GET a path and read the answer as `T`.
    pub fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        Ok(self.rt.block_on(self.client.get(path))?)
    }

    /// POST JSON to a path and read the answer as `T`.
    pub fn post_as<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        Ok(self.rt.block_on(self.client.post(path, body))?)
    }

    /// PATCH JSON to a path and read the answer as `T`.
    pub fn patch_as<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        Ok(self.rt.block_on(self.client.patch(path, body))?)
    }

    /// POST a YAML document and read the answer as `T`.
    pub fn post_yaml<T: DeserializeOwned>(&self, path: &str, yaml: String) -> Result<T> {
        Ok(self.rt.block_on(self.client.post_yaml(path, yaml))?)
    }

    /// GET a page of a listing: the items and the next page's cursor.
    pub fn get_page<T: DeserializeOwned>(&self, path: &str) -> Result<(T, Option<String>)> {
        Ok(self.rt.block_on(self.client.get_page(path))?)
    }

    /// GET a path whose answer is text.
    pub fn get_text(&self, path: &str) -> Result<String> {
        Ok(self.rt.block_on(self.client.get_text(path))?)
    }

    /// POST JSON to a path; the answer as JSON.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.post_as(path, body)
    }
}

/// Parse a JSON argument, or read it from a file when it starts with `@`.
pub fn json_arg(what: &str, raw: &str) -> Result<Value> {
    let text = match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {what} file {path}"))?,
        None => raw.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON"))
}
