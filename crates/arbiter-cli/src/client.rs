//! A small client for the HTTP API, used by the reviewer commands.

use anyhow::{Context, Result, bail};
use clap::Args;
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
}

/// A connection to the API.
pub struct Api {
    url: String,
    key: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Api {
    /// Connect (lazily) with the given arguments.
    pub fn new(args: &ApiArgs) -> Result<Api> {
        let Some(key) = args.key.clone() else {
            bail!("no API key: pass --key or set ARBITER_KEY (create one with `arbiter keys create`)");
        };
        let rt = crate::current_thread()?;
        Ok(Api { url: args.url.trim_end_matches('/').to_string(), key, http: reqwest::Client::new(), rt })
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Result<Value> {
        self.rt.block_on(async {
            let r = req
                .bearer_auth(&self.key)
                .send()
                .await
                .with_context(|| format!("cannot reach Arbiter at {}", self.url))?;
            let status = r.status();
            let text = r.text().await?;
            let body: Value =
                if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
            if status.is_success() {
                return Ok(body);
            }
            let detail = body["detail"].as_str().unwrap_or("");
            let field = body["field"].as_str().map(|f| format!(" (field `{f}`)")).unwrap_or_default();
            match body["code"].as_str() {
                Some(code) => bail!("{} {code}: {detail}{field}", status.as_u16()),
                None => bail!("{status}: {body}"),
            }
        })
    }

    /// GET a path.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.url)))
    }

    /// POST JSON to a path.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body))
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

/// Format milliseconds as `4m`, `1h05m`, or `-2m` when overdue.
pub fn human_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let s = ms.abs() / 1000;
    match s {
        0..=59 => format!("{sign}{s}s"),
        60..=3599 => format!("{sign}{}m", s / 60),
        _ => format!("{sign}{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}
