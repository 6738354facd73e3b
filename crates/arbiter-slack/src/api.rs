//! A small Slack Web API client: `POST {base}/{method}` with a JSON body and
//! the bot token; Slack answers HTTP 200 with `{"ok": false, "error": ...}`
//! for most failures, and 429 with `Retry-After` when rate limited.

use serde_json::Value;
use std::time::Duration;

/// Why a Web API call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Rate limited: try again after this long (Slack's `Retry-After`).
    #[error("Slack rate-limited the call; retry after {0:?}")]
    RateLimited(Duration),
    /// Slack answered `ok: false` (e.g. `channel_not_found`, `invalid_auth`).
    #[error("Slack refused `{method}`: {error}")]
    Refused {
        /// The method called.
        method: String,
        /// Slack's error code.
        error: String,
    },
    /// Slack could not be reached, or answered something else.
    #[error("could not call Slack `{method}`: {why}")]
    Transport {
        /// The method called.
        method: String,
        /// What happened.
        why: String,
    },
}

impl ApiError {
    /// Whether trying again later may work (rate limits, timeouts, 5xx);
    /// a refusal such as `channel_not_found` or `invalid_auth` will not.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::RateLimited(_) | ApiError::Transport { .. } => true,
            ApiError::Refused { error, .. } => {
                matches!(
                    error.as_str(),
                    "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout"
                )
            }
        }
    }
}

/// The Web API at `base` (`https://slack.com/api` in production), as the bot `token`.
#[derive(Clone)]
pub struct WebApi {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl WebApi {
    /// A client; `http` should carry a timeout.
    pub fn new(base: &str, token: &str, http: reqwest::Client) -> WebApi {
        WebApi { base: base.trim_end_matches('/').to_string(), token: token.to_string(), http }
    }

    /// Call `method` with a JSON `body`; the answer's JSON when `ok` is true.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, ApiError> {
        let req = self
            .http
            .post(format!("{}/{method}", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .json(body);
        self.send(method, req).await
    }

    /// Call `method` with form fields (the read methods, such as
    /// `users.info`, take their arguments this way).
    pub async fn call_form(&self, method: &str, fields: &[(&str, &str)]) -> Result<Value, ApiError> {
        let req = self.http.post(format!("{}/{method}", self.base)).form(fields);
        self.send(method, req).await
    }

    async fn send(&self, method: &str, req: reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let transport = |why: String| ApiError::Transport { method: method.to_string(), why };
        let r = req.bearer_auth(&self.token).send().await.map_err(|e| transport(e.to_string()))?;
        if r.status().as_u16() == 429 {
            let secs = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(ApiError::RateLimited(Duration::from_secs(secs)));
        }
        if !r.status().is_success() {
            return Err(transport(format!("HTTP {}", r.status())));
        }
        let v: Value = r.json().await.map_err(|e| transport(format!("the answer is not JSON: {e}")))?;
        if v["ok"] == true {
            Ok(v)
        } else {
            Err(ApiError::Refused {
                method: method.to_string(),
                error: v["error"].as_str().unwrap_or("unknown_error").to_string(),
            })
        }
    }
}
