//! An async client of Arbiter's HTTP API, calling as one key.
//!
//! Errors are [`Error`]: the server's [`Problem`] when it answered with one
//! (its stable code and advice, [`Error::problem`]), else what went wrong on
//! the way.

use arbiter_api::cases::{CaseDecisionRequest, CaseDecisionResponse, ClaimRequest, QueueView};
use arbiter_api::decisions::{DecisionRequest, OutcomeRequest, ToolResultRequest, WithdrawRequest};
use arbiter_api::keys::{CreateKey, CreatedKey};
use arbiter_api::problem::Problem;
use arbiter_api::receipts::{ConsumeRequest, ReceiptKeys};
use arbiter_api::reviews::OpenReview;
use arbiter_core::{Case, Decision};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What can go wrong calling the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a problem document (an API error).
    #[error("{0}")]
    Problem(Box<Problem>),
    /// No answer: the server is down, unreachable, or the connection broke.
    #[error(
        "cannot reach Arbiter at {url}: {}. Is the server running (`arbiter serve`), and is this its address? \
         Set --url or ARBITER_URL",
        root_cause(.cause)
    )]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The HTTP client's error (its innermost cause is in the message).
        cause: reqwest::Error,
    },
    /// An error status without a problem document: not Arbiter, or a proxy in between.
    #[error("{what}: HTTP {status}: {body}")]
    NotArbiter {
        /// The request, e.g. `GET /v1/queue`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A success whose body is not what the request returns.
    #[error("unexpected answer to {what}: {source}")]
    Unexpected {
        /// The request.
        what: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// The server's problem document, when it sent one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Problem(p) => Some(p),
            _ => None,
        }
    }
}

/// The result of an API call.
pub type Result<T> = std::result::Result<T, Error>;

/// The innermost cause of an error, in words ("Connection refused (os error 111)").
fn root_cause(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        text = s.to_string();
        next = s.source();
    }
    text
}

/// Check a server address given by a person (`--url`, `ARBITER_URL`): an
/// `http://` or `https://` URL of the server itself, not of its API path.
/// Returns it without a trailing slash, or what is wrong and what to type.
pub fn check_base_url(url: &str) -> std::result::Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    if !url.contains("://") {
        return Err(format!("`{url}` has no scheme: write http://{url} (or https:// for a server behind TLS)"));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL ({e}); e.g. http://127.0.0.1:8080"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{url}`: Arbiter speaks http:// or https://, not {}://", parsed.scheme()));
    }
    if parsed.path().trim_end_matches('/').ends_with("/v1") {
        let base = url.trim_end_matches("/v1");
        return Err(format!("`{url}` ends in /v1: give the server's address, {base}; the API paths are added to it"));
    }
    Ok(url.to_string())
}

/// An async connection to the API as one key, with typed calls for the
/// endpoints the demo and the load generators use. Errors come back as the
/// server's [`Problem`], so callers see its stable code and advice.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
    project: Option<String>,
}

impl Client {
    /// A client for the server at `url` (no trailing slash needed) calling as `key`.
    pub fn new(http: reqwest::Client, url: &str, key: impl Into<String>) -> Client {
        Client { http, url: url.trim_end_matches('/').to_string(), key: key.into(), project: None }
    }

    /// The same server, calling as another key (in the key's own project).
    pub fn as_key(&self, key: impl Into<String>) -> Client {
        Client { http: self.http.clone(), url: self.url.clone(), key: key.into(), project: None }
    }

    /// The same key, acting in `project` (the `Arbiter-Project` header: a
    /// server admin's key may act in any project; other keys only in their own).
    pub fn in_project(&self, project: impl Into<String>) -> Client {
        Client { project: Some(project.into()), ..self.clone() }
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key it calls as.
    pub fn key(&self) -> &str {
        &self.key
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder, what: &str) -> Result<T> {
        Ok(self.send_paged(req, what).await?.0)
    }

    /// Send, and read the answer as `T` with the `cursor` of its `Link: <...>; rel="next"` header.
    async fn send_paged<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(T, Option<String>)> {
        let (text, next) = self.exchange(req, what).await?;
        let text = if text.is_empty() { "null" } else { &text };
        let value =
            serde_json::from_str(text).map_err(|source| Error::Unexpected { what: what.to_string(), source })?;
        Ok((value, next))
    }

    /// Send as this key; the answer's text and its `Link: rel="next"` cursor,
    /// or the server's [`Problem`] as the error.
    async fn exchange(&self, req: reqwest::RequestBuilder, what: &str) -> Result<(String, Option<String>)> {
        let unreachable = |cause| Error::Unreachable { url: self.url.clone(), cause };
        let req = match &self.project {
            Some(p) => req.header("arbiter-project", p),
            None => req,
        };
        let r = req.bearer_auth(&self.key).send().await.map_err(unreachable)?;
        let next = r.headers().get(reqwest::header::LINK).and_then(|v| v.to_str().ok()).and_then(next_cursor);
        let status = r.status();
        let text = r.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(match serde_json::from_str::<Problem>(&text) {
                Ok(problem) => Error::Problem(Box::new(problem)),
                Err(_) => Error::NotArbiter {
                    what: what.to_string(),
                    status: status.as_u16(),
                    body: text.chars().take(500).collect(),
                },
            });
        }
        Ok((text, next))
    }

    /// GET a page of a listing: the items and the next page's cursor.
    pub async fn get_page<T: DeserializeOwned>(&self, path: &str) -> Result<(T, Option<String>)> {
        self.send_paged(self.http.get(format!("{}{path}", self.url)), &format!("GET {path}")).await
    }

    /// GET a path and read the answer as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(format!("{}{path}", self.url)), &format!("GET {path}")).await
    }

    /// POST JSON to a path and read the answer as `T`.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body), &format!("POST {path}")).await
    }

    /// PATCH JSON to a path and read the answer as `T`.
    pub async fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.send(self.http.patch(format!("{}{path}", self.url)).json(body), &format!("PATCH {path}")).await
    }

    /// GET a path whose answer is text (JSON Lines, prompt text).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        Ok(self.exchange(self.http.get(format!("{}{path}", self.url)), &format!("GET {path}")).await?.0)
    }

    /// POST a YAML document (a policy file) and read the answer as `T`.
    pub async fn post_yaml<T: DeserializeOwned>(&self, path: &str, yaml: String) -> Result<T> {
        let req = self.http.post(format!("{}{path}", self.url)).header("content-type", "application/yaml").body(yaml);
        self.send(req, &format!("POST {path}")).await
    }

    /// `POST /v1/keys`.
    pub async fn create_key(&self, req: &CreateKey) -> Result<CreatedKey> {
        self.post("/v1/keys", req).await
    }

    /// `POST /v1/projects` (server admins).
    pub async fn create_project(&self, req: &arbiter_api::projects::CreateProject) -> Result<arbiter_core::Project> {
        self.post("/v1/projects", req).await
    }

    /// `GET /v1/projects`: the projects this key may act in.
    pub async fn projects(&self) -> Result<Vec<arbiter_core::Project>> {
        self.get("/v1/projects").await
    }

    /// `POST /v1/decisions`, with an idempotency key when given.
    pub async fn propose(&self, req: &DecisionRequest, idempotency_key: Option<&str>) -> Result<Decision> {
        let mut r = self.http.post(format!("{}/v1/decisions", self.url)).json(req);
        if let Some(k) = idempotency_key {
            r = r.header("idempotency-key", k);
        }
        self.send(r, "POST /v1/decisions").await
    }

    /// `POST /v1/decisions/{id}/outcome`.
    pub async fn report_outcome(&self, decision_id: &str, req: &OutcomeRequest) -> Result<Decision> {
        self.post(&format!("/v1/decisions/{decision_id}/outcome"), req).await
    }

    /// `GET /v1/queue`: the caller's queue, most urgent first.
    pub async fn queue(&self) -> Result<QueueView> {
        self.get("/v1/queue").await
    }

    /// `POST /v1/cases/{id}/claim` with the default lease.
    pub async fn claim(&self, case_id: &str) -> Result<Case> {
        self.post(&format!("/v1/cases/{case_id}/claim"), &ClaimRequest::default()).await
    }

    /// `POST /v1/cases/{id}/decision`.
    pub async fn answer(&self, case_id: &str, req: &CaseDecisionRequest) -> Result<CaseDecisionResponse> {
        self.post(&format!("/v1/cases/{case_id}/decision"), req).await
    }

    /// `POST /v1/reviews`.
    pub async fn open_review(&self, req: &OpenReview) -> Result<Case> {
        self.post("/v1/reviews", req).await
    }

    /// `GET /v1/decisions/{id}?wait=SECONDS`: the decision, waiting up to `wait_secs` for its final verdict.
    pub async fn decision(&self, decision_id: &str, wait_secs: u64) -> Result<Decision> {
        if wait_secs == 0 {
            return self.get(&format!("/v1/decisions/{decision_id}")).await;
        }
        self.get(&format!("/v1/decisions/{decision_id}?wait={wait_secs}s")).await
    }

    /// `POST /v1/decisions/{id}/withdraw`: the agent no longer wants the action.
    pub async fn withdraw(&self, decision_id: &str, reason: &str) -> Result<Decision> {
        self.post(&format!("/v1/decisions/{decision_id}/withdraw"), &WithdrawRequest { reason: reason.to_string() })
            .await
    }

    /// `POST /v1/decisions/{id}/consume`: record the single use of a receipt.
    pub async fn consume(&self, decision_id: &str, req: &ConsumeRequest) -> Result<serde_json::Value> {
        self.post(&format!("/v1/decisions/{decision_id}/consume"), req).await
    }

    /// `POST /v1/decisions/{id}/result`: what the tool returned.
    pub async fn record_result(&self, decision_id: &str, req: &ToolResultRequest) -> Result<Decision> {
        self.post(&format!("/v1/decisions/{decision_id}/result"), req).await
    }

    /// `POST /v1/policy/always-denied`: which of these actions the active policy denies whatever the call.
    pub async fn always_denied(&self, actions: &[String]) -> Result<Vec<String>> {
        let req = arbiter_api::policy::AlwaysDeniedRequest { actions: actions.to_vec() };
        let answer: arbiter_api::policy::AlwaysDenied = self.post("/v1/policy/always-denied", &req).await?;
        Ok(answer.actions)
    }

    /// `GET /v1/receipts/keys` (public).
    pub async fn receipt_keys(&self) -> Result<ReceiptKeys> {
        self.get("/v1/receipts/keys").await
    }
}

/// The `cursor` parameter of a `Link` header's `rel="next"` target.
fn next_cursor(link: &str) -> Option<String> {
    link.split(',').find(|l| l.contains("rel=\"next\"")).and_then(|l| {
        let target = l.split_once('<')?.1.split_once('>')?.0;
        let query = target.split_once('?')?.1;
        query.split('&').find_map(|p| p.strip_prefix("cursor=")).map(str::to_string)
    })
}
