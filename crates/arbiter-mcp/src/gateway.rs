//! The gateway: an MCP server to the agent's client, an MCP client to the
//! upstream servers, and an Arbiter client in between.

use crate::GatewayError;
use crate::call::{self, CallSite, Next, Transport};
use crate::upstream::{Upstream, UpstreamSpec};
use arbiter_api::decisions::{DecisionRequest, ToolResultRequest};
use arbiter_api::receipts::ConsumeRequest;
use arbiter_client::Client;
use arbiter_core::receipt::ReceiptKey;
use arbiter_core::{Clock, Decision, SystemClock};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ClientRequest, ContentBlock, Implementation, ListToolsResult, MetaObject, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How the gateway behaves; `arbiter mcp`'s flags.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The gateway's name, recorded as the receipt's consumer (stable across restarts).
    pub name: String,
    /// Forward only calls whose receipt verifies (on by default); off for servers run with `--receipts off`.
    pub require_receipts: bool,
    /// Leave out of `tools/list` the tools the active policy denies whatever the call.
    pub hide_denied: bool,
    /// How long each long-poll for a final verdict waits; a progress notification follows each one.
    pub poll: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            name: "mcp-gateway".into(),
            require_receipts: true,
            hide_denied: false,
            poll: Duration::from_secs(10),
        }
    }
}

/// What every connection of the gateway shares.
pub struct Gateway {
    upstreams: Vec<Upstream>,
    arbiter: Client,
    config: GatewayConfig,
    keys: RwLock<Vec<ReceiptKey>>,
    /// Calls being handled, so that a gateway whose client left can finish
    /// withdrawing their cases before it exits.
    in_flight: tokio_util::task::TaskTracker,
    /// The approved calls this gateway ran, by decision: what a re-sent
    /// request gets instead of a second run.
    runs: std::sync::Mutex<RunLog>,
}

/// Approved calls a gateway ran (or is running), by decision id, with their
/// results once back; the oldest are forgotten past [`RunLog::KEEP`] (the
/// receipt's single use in Arbiter still stops a second run then).
#[derive(Default)]
struct RunLog {
    order: std::collections::VecDeque<String>,
    results: std::collections::HashMap<String, Option<CallToolResult>>,
}

impl RunLog {
    const KEEP: usize = 10_000;

    /// Note that decision `id`'s call starts now; if it started before, what it gave (`None`: still running).
    fn begin(&mut self, id: &str) -> Option<Option<CallToolResult>> {
        if let Some(prev) = self.results.get(id) {
            return Some(prev.clone());
        }
        self.results.insert(id.to_string(), None);
        self.order.push_back(id.to_string());
        while self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
        None
    }

    /// Keep what decision `id`'s call gave.
    fn finish(&mut self, id: &str, result: &CallToolResult) {
        if let Some(slot) = self.results.get_mut(id) {
            *slot = Some(result.clone());
        }
    }
}

/// What to do with an allowed call.
enum Authorised {
    /// Run it: its receipt is used now, for the first time.
    Run,
    /// Do not run it again: it ran before (through another gateway, or before
    /// a restart); the result recorded on the decision, when there is one.
    Ran(Option<CallToolResult>),
}

impl Gateway {
    /// Connect to every upstream (in order; the first failure is the error).
    pub async fn connect(
        specs: &[UpstreamSpec],
        arbiter: Client,
        config: GatewayConfig,
    ) -> Result<Arc<Gateway>, GatewayError> {
        let mut seen = std::collections::BTreeSet::new();
        for s in specs {
            if !seen.insert(&s.name) {
                return Err(GatewayError::Config(format!(
                    "two upstreams are named `{}`: give one another name (NAME=...)",
                    s.name
                )));
            }
        }
        if specs.is_empty() {
            return Err(GatewayError::Config(
                "no upstream: pass --upstream-cmd NAME=COMMAND or --upstream-url NAME=URL at least once (see docs/mcp.md)".into(),
            ));
        }
        let mut upstreams = Vec::with_capacity(specs.len());
        for s in specs {
            let up = Upstream::connect(s).await?;
            tracing::info!(upstream = %up.name, "upstream connected");
            upstreams.push(up);
        }
        let gateway = Gateway {
            upstreams,
            arbiter,
            config,
            keys: RwLock::new(Vec::new()),
            in_flight: tokio_util::task::TaskTracker::new(),
            runs: Default::default(),
        };
        if gateway.config.require_receipts {
            gateway.refresh_keys().await.map_err(GatewayError::ReceiptKeys)?;
        }
        Ok(Arc::new(gateway))
    }

    /// Wait (at most `grace`) for the calls still being handled: a client
    /// that left cancels its waiting calls, whose cases are then withdrawn.
    pub async fn drain(&self, grace: Duration) {
        self.in_flight.close();
        if tokio::time::timeout(grace, self.in_flight.wait()).await.is_err() {
            tracing::warn!(calls = self.in_flight.len(), "calls still running at exit");
        }
    }

    /// Keep what the tool returned on the decision, in the background: the
    /// client has its answer already; a failure is logged. Tracked with the
    /// calls, so a stopping gateway finishes recording before it exits.
    fn record(&self, arbiter: Client, decision_id: String, content: Value, is_error: bool) {
        self.in_flight.spawn(async move {
            let req = ToolResultRequest { content, is_error };
            if let Err(e) = arbiter.record_result(&decision_id, &req).await {
                tracing::warn!(decision = %decision_id, error = %problem_text(&e), "could not record the tool's result");
            }
        });
    }

    /// The Arbiter client the gateway proposes with (its own key).
    pub(crate) fn arbiter(&self) -> &Client {
        &self.arbiter
    }

    /// Close every upstream.
    pub async fn close(self: Arc<Self>) {
        if let Ok(g) = Arc::try_unwrap(self) {
            for u in g.upstreams {
                u.close().await;
            }
        }
    }

    /// A handler for one client connection (one MCP session).
    pub fn session(self: &Arc<Self>, transport: Transport) -> Session {
        Session { gateway: self.clone(), id: uuid::Uuid::now_v7().to_string(), transport }
    }

    async fn refresh_keys(&self) -> arbiter_client::Result<()> {
        let keys = self.arbiter.receipt_keys().await?.keys;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// Check the receipt of an allowed decision against the call about to
    /// run, then record its single use. `Err` is the reason not to run it;
    /// a receipt used before means the call ran before: it is not run again.
    async fn authorise(&self, arbiter: &Client, d: &Decision, tool: &str, args: &Value) -> Result<Authorised, String> {
        let receipt = d.final_verdict.as_ref().and_then(|f| f.receipt.clone());
        let Some(receipt) = receipt else {
            if self.config.require_receipts {
                return Err(format!(
                    "Arbiter allowed the call but sent no receipt (is the server run with `--receipts off`?); the \
                     gateway requires one, so nothing was run (decision {}). Run the gateway with `--receipts off` to \
                     trust allowances without receipts.",
                    d.id
                ));
            }
            return Ok(Authorised::Run);
        };
        if receipt.decision_id != d.id || receipt.action != tool {
            return Err(format!(
                "the receipt is for {} `{}`, not this call (decision {}, `{tool}`); nothing was run",
                receipt.decision_id, receipt.action, d.id
            ));
        }
        let now = SystemClock.now();
        let mut checked = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            arbiter_receipt::authorises(&receipt, &keys, now, args)
        };
        if matches!(checked, Err(arbiter_receipt::ReceiptError::UnknownKey(_))) && self.refresh_keys().await.is_ok() {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            checked = arbiter_receipt::authorises(&receipt, &keys, now, args);
        }
        checked.map_err(|e| {
            format!("the receipt of decision {} does not authorise this call: {e}; nothing was run", d.id)
        })?;
        let consume = ConsumeRequest { receipt, args: args.clone(), consumer: self.config.name.clone() };
        let used = arbiter.consume(&d.id, &consume).await.map_err(|e| {
            format!("Arbiter refused the receipt of decision {}: {}; nothing was run", d.id, problem_text(&e))
        })?;
        if used["first"].as_bool() != Some(false) {
            return Ok(Authorised::Run);
        }
        // used before: the call ran before; its recorded result, if it was recorded
        let recorded = match arbiter.decision(&d.id, 0).await {
            Ok(now) => now.tool_result.and_then(|r| serde_json::from_value::<CallToolResult>(r.content).ok()),
            Err(_) => None,
        };
        Ok(Authorised::Ran(recorded))
    }
}

/// The answer to a re-sent request whose approved call already ran: the
/// first run's result, or (still running, or run before a restart without a
/// recorded result) an error that says so. Never a second run.
fn already_ran(earlier: Option<CallToolResult>, d: &Decision) -> CallToolResult {
    match earlier {
        Some(r) => r,
        None => told(
            format!(
                "The approved call of decision {} already ran (or is running) for an earlier request with this id; \
                 an approval authorises one run, so it was not run again. Send a new request to propose it again.",
                d.id
            ),
            true,
            Some(d),
        ),
    }
}

/// The text of an Arbiter error: the problem's detail and code when it is one.
fn problem_text(e: &arbiter_client::Error) -> String {
    match e.problem() {
        Some(p) => format!("{} ({})", p.detail, p.code),
        None => e.to_string(),
    }
}

/// A tool result that tells the model what happened, with the decision in `_meta.arbiter`.
fn told(text: String, is_error: bool, decision: Option<&Decision>) -> CallToolResult {
    let mut r = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    if let Some(d) = decision {
        r.meta = Some(arbiter_meta(d));
    }
    r
}

fn arbiter_meta(d: &Decision) -> MetaObject {
    let mut m = serde_json::Map::new();
    m.insert("arbiter".into(), call::result_meta(d));
    MetaObject(m)
}

/// One client connection.
#[derive(Clone)]
pub struct Session {
    gateway: Arc<Gateway>,
    id: String,
    transport: Transport,
}

impl Session {
    /// The Arbiter client for this request: the client's own key when it sent
    /// one over HTTP (`Authorization: Bearer`), else the gateway's.
    fn arbiter_for(&self, ctx: &RequestContext<RoleServer>) -> Client {
        let bearer = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get(http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        match bearer {
            Some(k) => self.gateway.arbiter.as_key(k),
            None => self.gateway.arbiter.clone(),
        }
    }

    fn site(&self, ctx: &RequestContext<RoleServer>, traceparent: Option<String>) -> CallSite {
        let http_session = ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let client = ctx.peer.peer_info().map(|i| (i.client_info.name.clone(), i.client_info.version.clone()));
        // A stdio connection is one session; over HTTP the client's `Mcp-Session-Id` names it,
        // and a stateless request (no session) is a session of its own, so two clients'
        // request ids never meet in one idempotency key.
        let session = match (http_session, self.transport) {
            (Some(s), _) => s,
            (None, Transport::Http) => uuid::Uuid::now_v7().to_string(),
            (None, _) => self.id.clone(),
        };
        // the id as JSON, so the number 7 and the string "7" stay two requests
        let request_id = serde_json::to_string(&ctx.id).unwrap_or_else(|_| ctx.id.to_string());
        CallSite { session, request_id, transport: self.transport, client, traceparent }
    }

    /// Wait for the final verdict of an escalated decision, telling the
    /// client it is waiting; a cancelled call withdraws the case.
    async fn await_final(
        &self,
        arbiter: &Client,
        mut d: Decision,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(Decision, u32), CallToolResult> {
        let token = ctx.meta.get_progress_token();
        let started = Instant::now();
        let poll = self.gateway.config.poll.as_secs().max(1);
        let mut step = 0u32;
        let mut failures = 0u32;
        while d.final_verdict.is_none() {
            if let Some(token) = &token {
                step += 1;
                let message = call::waiting_message(&d, started.elapsed().as_secs());
                let mut p = ProgressNotificationParam::new(token.clone(), f64::from(step));
                p.message = Some(message);
                let _ = ctx.peer.notify_progress(p).await;
            }
            tokio::select! {
                _ = ctx.ct.cancelled() => {
                    let reason = "the MCP client cancelled the call";
                    match arbiter.withdraw(&d.id, reason).await {
                        Ok(w) => tracing::info!(decision = %w.id, "the client cancelled; case withdrawn"),
                        Err(e) => tracing::warn!(decision = %d.id, error = %problem_text(&e), "the client cancelled; withdrawing failed"),
                    }
                    return Err(told(format!("Cancelled by the client; the review of decision {} was withdrawn.", d.id), true, Some(&d)));
                }
                r = arbiter.decision(&d.id, poll) => match r {
                    Ok(next) => { d = next; failures = 0; }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(decision = %d.id, error = %problem_text(&e), failures, "waiting for the verdict failed; retrying");
                        tokio::select! {
                            _ = ctx.ct.cancelled() => {}
                            _ = tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(10)))) => {}
                        }
                    }
                }
            }
        }
        Ok((d, step))
    }

    /// Run the approved call on its upstream, relaying the upstream's
    /// progress to the client, and cancelling it upstream if the client
    /// cancels. `progress_sent` is the progress the client already saw.
    async fn forward(
        &self,
        upstream: &Upstream,
        tool: &str,
        arguments: serde_json::Map<String, Value>,
        ctx: &RequestContext<RoleServer>,
        progress_sent: u32,
    ) -> Forwarded {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = match upstream.peer().send_cancellable_request(request, PeerRequestOptions::no_options()).await {
            Ok(h) => h,
            Err(e) => return Forwarded::Done(Err(e)),
        };
        // The upstream's progress reaches the client under the client's own token. (A
        // notification racing ahead of this registration would be dropped; the upstream
        // has to receive the call first, so in practice none does.)
        let _route = ctx.meta.get_progress_token().map(|client_token| {
            upstream.progress.route(&handle.progress_token, ctx.peer.clone(), client_token, f64::from(progress_sent))
        });
        let (id, peer) = (handle.id.clone(), handle.peer.clone());
        tokio::select! {
            r = handle.await_response() => Forwarded::Done(r.and_then(|r| match r {
                ServerResult::CallToolResult(r) => Ok(r),
                _ => Err(rmcp::ServiceError::UnexpectedResponse),
            })),
            _ = ctx.ct.cancelled() => {
                let reason = "the MCP client cancelled the call".to_string();
                let _ = peer.notify_cancelled(CancelledNotificationParam::new(Some(id), Some(reason))).await;
                Forwarded::Cancelled
            }
        }
    }

    async fn decide_and_run(
        &self,
        request: CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let gateway = &self.gateway;
        let name = request.name.to_string();
        let Some((up_name, tool)) = call::split(&name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`: the gateway's tools are named `<upstream>.<tool>`"),
                None,
            ));
        };
        let Some(upstream) = gateway.upstream(up_name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`: no upstream is named `{up_name}`"),
                None,
            ));
        };
        if !upstream.has_tool(tool).await {
            return Err(McpError::invalid_params(
                format!("unknown tool `{name}`: `{up_name}` has no tool `{tool}`"),
                None,
            ));
        }
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let traceparent = ctx.meta.0.get("traceparent").and_then(Value::as_str).map(str::to_string);
        let site = self.site(ctx, traceparent);
        let proposal = call::proposal(up_name, tool, args, &upstream.hints(tool), &site);
        let arbiter = self.arbiter_for(ctx);
        let d = match propose(&arbiter, &proposal, &site.idempotency_key()).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(tool = %name, error = %problem_text(&e), "Arbiter could not decide a call; not run");
                return Ok(told(
                    format!("Arbiter could not decide this call, so it was not run: {}", problem_text(&e)),
                    true,
                    None,
                ));
            }
        };
        let (d, progress_sent) = match self.await_final(&arbiter, d, ctx).await {
            Ok(waited) => waited,
            Err(cancelled) => return Ok(cancelled),
        };
        let (tool_name, args) = match call::next(&d) {
            Next::Refuse(text) => return Ok(told(text, true, Some(&d))),
            Next::Run { tool, args } => (tool, args),
        };
        // An allow authorises one run: a re-sent request (same session and
        // request id, so the same decision) gets the first run's result.
        let earlier = gateway.runs.lock().unwrap_or_else(|e| e.into_inner()).begin(&d.id);
        if let Some(earlier) = earlier {
            return Ok(already_ran(earlier, &d));
        }
        // every way this ends is what a re-sent request gets (`return` leaves the block)
        let out: Result<CallToolResult, McpError> = async {
            match gateway.authorise(&arbiter, &d, &tool_name, &args).await {
                Ok(Authorised::Run) => {}
                Ok(Authorised::Ran(recorded)) => {
                    tracing::warn!(decision = %d.id, "a call whose receipt was already used was not run again");
                    return Ok(already_ran(recorded, &d));
                }
                Err(why) => {
                    tracing::warn!(decision = %d.id, "{why}");
                    return Ok(told(why, true, Some(&d)));
                }
            }
            let Value::Object(arguments) = args else {
                return Ok(told(
                    format!("the approved arguments of decision {} are not an object; nothing was run", d.id),
                    true,
                    Some(&d),
                ));
            };
            let result = match self.forward(upstream, tool, arguments, ctx, progress_sent).await {
                Forwarded::Done(r) => r,
                Forwarded::Cancelled => {
                    return Ok(told(
                        format!("Cancelled by the client while `{name}` ran (decision {}).", d.id),
                        true,
                        Some(&d),
                    ));
                }
            };
            let mut result = match result {
                Ok(r) => r,
                Err(rmcp::ServiceError::McpError(e)) => {
                    gateway.record(arbiter, d.id.clone(), serde_json::json!({"error": e}), true);
                    return Err(e);
                }
                Err(e) => {
                    let text = format!("The upstream `{up_name}` failed to run `{tool}`: {e} (decision {})", d.id);
                    gateway.record(arbiter, d.id.clone(), serde_json::json!({"error": text}), true);
                    return Ok(told(text, true, Some(&d)));
                }
            };
            let content = serde_json::to_value(&result).unwrap_or(Value::Null);
            gateway.record(arbiter, d.id.clone(), content, result.is_error == Some(true));
            let meta = result.meta.get_or_insert_with(|| MetaObject(serde_json::Map::new()));
            meta.0.insert("arbiter".into(), call::result_meta(&d));
            Ok(result)
        }
        .await;
        if let Ok(r) = &out {
            gateway.runs.lock().unwrap_or_else(|e| e.into_inner()).finish(&d.id, r);
        }
        out
    }
}

/// What became of a forwarded call.
enum Forwarded {
    /// The upstream answered (or failed).
    Done(Result<CallToolResult, rmcp::ServiceError>),
    /// The client cancelled while it ran; the upstream was told.
    Cancelled,
}

/// Propose, retrying (same idempotency key, so still one decision) when
/// Arbiter could not be reached or answered 5xx/429; its other answers are final.
async fn propose(arbiter: &Client, proposal: &DecisionRequest, key: &str) -> arbiter_client::Result<Decision> {
    let mut attempt = 0u32;
    loop {
        match arbiter.propose(proposal, Some(key)).await {
            Ok(d) => return Ok(d),
            Err(e) => {
                let transient = e.problem().is_none_or(|p| p.status >= 500 || p.status == 429);
                if !transient || attempt == 3 {
                    return Err(e);
                }
                attempt += 1;
                tracing::warn!(error = %problem_text(&e), attempt, "proposing failed; retrying with the same idempotency key");
                tokio::time::sleep(Duration::from_millis(200 * 3u64.pow(attempt - 1))).await;
            }
        }
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("arbiter-mcp-gateway", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Every tool call goes through Arbiter's policy: some run at once, some wait for a person, some are \
                 refused with the reason. A refused call returns an error result that says why; do not retry it \
                 unchanged.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let listed = futures_util::future::join_all(self.gateway.upstreams.iter().map(|up| up.list_tools())).await;
        let mut tools = Vec::new();
        for (up, list) in self.gateway.upstreams.iter().zip(listed) {
            match list {
                Ok(list) => tools.extend(list.into_iter().map(|mut t| {
                    t.name = call::namespaced(&up.name, &t.name).into();
                    t
                })),
                Err(e) => tracing::warn!(upstream = %up.name, error = %e, "left out of tools/list"),
            }
        }
        if self.gateway.config.hide_denied {
            let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
            let arbiter = self.arbiter_for(&ctx);
            match arbiter.always_denied(&names).await {
                Ok(denied) => {
                    let denied: std::collections::HashSet<String> = denied.into_iter().collect();
                    tools.retain(|t| !denied.contains(t.name.as_ref()));
                }
                Err(e) => {
                    tracing::warn!(error = %problem_text(&e), "cannot ask which tools the policy always denies; listing all")
                }
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let call = self.decide_and_run(request, &ctx);
        self.gateway.in_flight.track_future(call).await.map(CallToolResponse::Complete)
    }
}
