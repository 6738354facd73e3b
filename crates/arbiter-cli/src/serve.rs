//! `arbiter serve`.

use anyhow::{Context, Result};
use arbiter_core::SystemClock;
use arbiter_server::{AppState, Config, SlackConfig, SsoConfig};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Where the store is when no `--db` says otherwise.
const DEFAULT_DB: &str = "./arbiter.db";
/// Where the server listens when no `--listen` says otherwise.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Options of `arbiter serve`. Each can come from a flag, an `ARBITER_*`
/// environment variable, or the TOML file given by `--config`, in that order
/// of precedence; the defaults apply to what none of them sets.
#[derive(Debug, Default, Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// A TOML file with any of these options (keys as the flags, with `_`), e.g. `db = "/var/lib/arbiter/arbiter.db"`.
    #[arg(long, env = "ARBITER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The store: an SQLite database file, created with its schema if missing [default: ./arbiter.db], or a
    /// PostgreSQL database as `postgres://user@host/db`, shared by several replicas (its schema is created or
    /// upgraded at start; each replica writes through four connections, `ARBITER_PG_WRITERS` sets another number).
    #[arg(long, env = "ARBITER_DB")]
    pub db: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed) [default: 127.0.0.1:8080].
    #[arg(long, env = "ARBITER_LISTEN")]
    pub listen: Option<String>,
    /// Not an option: named only to point at `--listen`.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub port: Option<String>,
    /// Policy file to activate at start (stored as a new version if it changed).
    /// Without it, the active policy stays, or a default policy is stored on first start.
    #[arg(long, env = "ARBITER_POLICY")]
    pub policy: Option<PathBuf>,
    /// Largest request body accepted, in bytes [default: 1048576].
    #[arg(long, env = "ARBITER_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest long-poll (`?wait=`) a client may ask for, in seconds [default: 60].
    #[arg(long, env = "ARBITER_MAX_WAIT_SECS")]
    pub max_wait_secs: Option<u64>,
    /// Shortest rationale a reviewer may give, in characters [default: 10].
    #[arg(long, env = "ARBITER_MIN_RATIONALE_LEN")]
    pub min_rationale_len: Option<usize>,
    /// Default length of a reviewer's claim on a case [default: 10m].
    #[arg(long, env = "ARBITER_CLAIM_LEASE")]
    pub claim_lease: Option<arbiter_core::HumanDuration>,
    /// How often the SLA sweeper runs, in milliseconds [default: 1000].
    #[arg(long, env = "ARBITER_SWEEP_INTERVAL_MS")]
    pub sweep_interval_ms: Option<u64>,
    /// How often due webhook deliveries are sent, in milliseconds [default: 500].
    #[arg(long, env = "ARBITER_WEBHOOK_INTERVAL_MS")]
    pub webhook_interval_ms: Option<u64>,
    /// Drift detection: length of the recent window [default: 2h].
    #[arg(long, env = "ARBITER_DRIFT_WINDOW")]
    pub drift_window: Option<arbiter_core::HumanDuration>,
    /// Drift detection: length of the reference window before it [default: 12h].
    #[arg(long, env = "ARBITER_DRIFT_REFERENCE")]
    pub drift_reference: Option<arbiter_core::HumanDuration>,
    /// Drift detection: how often to evaluate; `0s` turns it off [default: 5m].
    #[arg(long, env = "ARBITER_DRIFT_INTERVAL")]
    pub drift_interval: Option<arbiter_core::HumanDuration>,
    /// How often to mine the review history for standing-rule suggestions; `0s`: only on request [default: 6h].
    #[arg(long, env = "ARBITER_SUGGEST_INTERVAL")]
    pub suggest_interval: Option<arbiter_core::HumanDuration>,
    /// Drift detection: false alarms a week the monitor's tests may raise together on traffic
    /// that did not drift [default: 0.5].
    #[arg(long, env = "ARBITER_DRIFT_FALSE_ALARMS")]
    pub drift_false_alarms: Option<f64>,
    /// Drift detection: days of the same hour the seasonal baseline looks back over; `0` compares
    /// with the reference window before the recent one instead [default: 7].
    #[arg(long, env = "ARBITER_DRIFT_SEASONAL_DAYS")]
    pub drift_seasonal_days: Option<u32>,
    /// The URL people reach this server at; with `https://` the console's session cookie is `Secure`.
    #[arg(long, env = "ARBITER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Let webhooks reach loopback, link-local and private addresses (refused by default: an internal
    /// request from the server is how SSRF attacks reach metadata services and admin ports).
    #[arg(long, env = "ARBITER_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_private: Option<bool>,
    /// Private networks (CIDR, e.g. `10.20.0.0/16`) or host names webhooks may reach although private;
    /// repeatable or comma-separated (in the config file: a list).
    #[arg(long = "webhook-allow", env = "ARBITER_WEBHOOK_ALLOW", value_delimiter = ',')]
    pub webhook_allow: Option<Vec<String>>,
    /// Timeout of one webhook attempt [default: 10s].
    #[arg(long, env = "ARBITER_WEBHOOK_TIMEOUT")]
    pub webhook_timeout: Option<arbiter_core::HumanDuration>,
    /// Proposal rate limit of agent keys without their own (`50/s:200`, `600/m`, `unlimited`) [default: 50/s:200].
    #[arg(long, env = "ARBITER_AGENT_RATE_LIMIT")]
    pub agent_rate_limit: Option<arbiter_core::rate::RateLimit>,
    /// Proposal rate limit of admin keys without their own [default: 50/s:200].
    #[arg(long, env = "ARBITER_ADMIN_RATE_LIMIT")]
    pub admin_rate_limit: Option<arbiter_core::rate::RateLimit>,
    /// Open approval cases one agent may have; past it, its escalations are denied at once, whatever the fallback
    /// (reason `agent_case_cap`) and an alarm is raised. 0 means no cap [default: 200].
    #[arg(long, env = "ARBITER_MAX_OPEN_CASES_PER_AGENT")]
    pub max_open_cases_per_agent: Option<u64>,
    /// How far a proposal's `event_time` may be from the server's clock, either way, e.g. `5m`; `off` takes any
    /// time (a server that takes replays: each decision a default server would refuse records its skew) [default: 5m].
    #[arg(long, env = "ARBITER_EVENT_TIME_SKEW")]
    pub event_time_skew: Option<String>,
    /// Activating a policy version that changes more than this share of verdicts on the last 2,000 decisions
    /// needs `force=true` [default: 0.2].
    #[arg(long, env = "ARBITER_POLICY_GUARD")]
    pub policy_guard: Option<f64>,
    /// The share of decisions your reviewers can take, drawn on the dashboard [default: 0.10].
    #[arg(long, env = "ARBITER_ESCALATION_BUDGET")]
    pub escalation_budget: Option<f64>,
    /// Also receive OTLP/HTTP traces on this address (only `POST /v1/traces`), e.g. `127.0.0.1:4318`,
    /// for an OpenTelemetry exporter or Collector that expects the standard port. Off by default.
    #[arg(long, env = "ARBITER_OTLP_LISTEN")]
    pub otlp_listen: Option<String>,
    /// How long received spans are kept; the runs of decisions under review are kept until the review
    /// ends [default: 14d].
    #[arg(long, env = "ARBITER_TRACE_RETENTION")]
    pub trace_retention: Option<arbiter_core::HumanDuration>,
    /// Export Arbiter's own spans (a span per decision in the agent's trace, human verdicts as
    /// `gen_ai.evaluation.result` events) over OTLP/HTTP to this endpoint, e.g. `http://collector:4318`.
    #[arg(long, env = "ARBITER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// A header for the OTLP export, `name=value` (repeatable; e.g. `authorization=Bearer ...`).
    #[arg(long = "otlp-header", env = "ARBITER_OTLP_HEADERS", value_delimiter = ',')]
    #[serde(default)]
    pub otlp_headers: Vec<String>,
    /// How long a final verdict's signed receipt authorises its call [default: 15m].
    #[arg(long, env = "ARBITER_RECEIPT_TTL")]
    pub receipt_ttl: Option<arbiter_core::HumanDuration>,
    /// The server's clock: `system`, or `manual` for simulated time — it stands still until an admin
    /// moves it (`POST /v1/admin/clock`), which runs the drift monitor and the SLA sweeper at their
    /// due times on the way. For test harnesses and evaluations only; a flag, never read from the
    /// config file or the environment [default: system].
    #[arg(long, value_parser = ["system", "manual"])]
    #[serde(skip)]
    pub clock: Option<String>,
    /// Serve final verdicts with signed receipts: `on` or `off` (signing costs 15–25% of the
    /// decision throughput; turn it off when no gateway or tool server checks receipts) [default: on].
    #[arg(long, env = "ARBITER_RECEIPTS", value_parser = ["on", "off"])]
    pub receipts: Option<String>,
    /// Single sign-on: the OpenID provider's issuer URL, exactly as it names itself (e.g.
    /// `https://example.okta.com`); turns SSO on for the console (needs --public-url and --sso-group).
    #[arg(long, env = "ARBITER_SSO_ISSUER")]
    pub sso_issuer: Option<String>,
    /// Single sign-on: the client id Arbiter is registered with at the provider.
    #[arg(long, env = "ARBITER_SSO_CLIENT_ID")]
    pub sso_client_id: Option<String>,
    /// Single sign-on: the client secret (leave unset for a public client; prefer the environment
    /// variable to a flag, which other users of the machine can read).
    #[arg(long, env = "ARBITER_SSO_CLIENT_SECRET", hide_env_values = true)]
    pub sso_client_secret: Option<String>,
    /// Single sign-on: scopes to ask for besides `openid`, comma-separated (in the config file: a list)
    /// [default: email,profile].
    #[arg(long, env = "ARBITER_SSO_SCOPES", value_delimiter = ',')]
    pub sso_scopes: Option<Vec<String>>,
    /// Single sign-on: the ID token claim that names a person: `sub` (stable) or `email` [default: sub].
    #[arg(long, env = "ARBITER_SSO_NAME_CLAIM")]
    pub sso_name_claim: Option<String>,
    /// Single sign-on: the ID token claim that lists a person's groups [default: groups].
    #[arg(long, env = "ARBITER_SSO_GROUPS_CLAIM")]
    pub sso_groups_claim: Option<String>,
    /// Single sign-on: a group and the role its members get, `GROUP=ROLE[:TAG+TAG][@PROJECT]`, e.g.
    /// `soc-analysts=reviewer:soc_analyst` or `arbiter-admins=admin`; repeatable (in the config file: a list).
    #[arg(long = "sso-group", env = "ARBITER_SSO_GROUPS", value_delimiter = ',')]
    pub sso_group: Option<Vec<String>>,
    /// Single sign-on: the sign-in button's label [default: Sign in with single sign-on].
    #[arg(long, env = "ARBITER_SSO_LABEL")]
    pub sso_label: Option<String>,
    /// Single sign-on: how far the provider's clock may be from this server's [default: 1m].
    #[arg(long, env = "ARBITER_SSO_CLOCK_SKEW")]
    pub sso_clock_skew: Option<arbiter_core::HumanDuration>,
    /// Single sign-on: `on` lets a signed-in person create an API key for themselves (for the CLI), named as
    /// them, with their current roles, expiring after the session lifetime [default: off].
    #[arg(long, env = "ARBITER_SSO_SELF_KEYS", value_parser = ["on", "off"])]
    pub sso_self_keys: Option<String>,
    /// Whether the console's sign-in page takes an API key: `on` or `off` (with SSO, `off` makes
    /// everyone sign in through the provider; keys keep working on the API) [default: on].
    #[arg(long, env = "ARBITER_KEY_SIGN_IN", value_parser = ["on", "off"])]
    pub key_sign_in: Option<String>,
    /// How long a console session lasts; someone removed from a group keeps its roles at most this
    /// long [default: 12h].
    #[arg(long, env = "ARBITER_SESSION_LIFETIME")]
    pub session_lifetime: Option<arbiter_core::HumanDuration>,
    /// Slack: the app's bot token (`xoxb-...`; scopes chat:write, users:read, users:read.email). Turns
    /// Slack on (needs --slack-signing-secret and --slack-route); prefer the environment variable.
    #[arg(long, env = "ARBITER_SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_bot_token: Option<String>,
    /// Slack: the app's signing secret; every request from Slack is checked with it.
    #[arg(long, env = "ARBITER_SLACK_SIGNING_SECRET", hide_env_values = true)]
    pub slack_signing_secret: Option<String>,
    /// Slack: where its Web API is [default: https://slack.com/api].
    #[arg(long, env = "ARBITER_SLACK_API_URL")]
    pub slack_api_url: Option<String>,
    /// Slack: a channel and the cases it gets, `CHANNEL [severity=high,critical] [role=ROLE,...]
    /// [action=NAME,...] [project=ID]`; repeatable (in the environment: separated by `;`, in the config
    /// file: a list).
    #[arg(long = "slack-route", env = "ARBITER_SLACK_ROUTES", value_delimiter = ';')]
    pub slack_route: Option<Vec<String>>,
    /// Slack: how often new case events are brought to Slack [default: 1s].
    #[arg(long, env = "ARBITER_SLACK_INTERVAL")]
    pub slack_interval: Option<arbiter_core::HumanDuration>,
    /// Announce an unclaimed approval case as due soon this long before each tier's time runs out
    /// (the `case.due_soon` event: a PagerDuty webhook pages on it), e.g. `5m`; `off`: never [default: off].
    #[arg(long, env = "ARBITER_PAGE_BEFORE")]
    pub page_before: Option<String>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Read a config file; errors name the file, line, column and field.
pub fn read_config(path: &std::path::Path) -> Result<ServeArgs> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str::<ServeArgs>(&text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
        anyhow::anyhow!("{}:{line}:{col}: {}", path.display(), e.message().trim())
    })
}

impl ServeArgs {
    /// Fill what flags and environment left unset from `file`.
    fn or(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            clock: self.clock,
            db: self.db.or(file.db),
            listen: self.listen.or(file.listen),
            port: self.port,
            policy: self.policy.or(file.policy),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            max_wait_secs: self.max_wait_secs.or(file.max_wait_secs),
            min_rationale_len: self.min_rationale_len.or(file.min_rationale_len),
            claim_lease: self.claim_lease.or(file.claim_lease),
            sweep_interval_ms: self.sweep_interval_ms.or(file.sweep_interval_ms),
            webhook_interval_ms: self.webhook_interval_ms.or(file.webhook_interval_ms),
            drift_window: self.drift_window.or(file.drift_window),
            drift_reference: self.drift_reference.or(file.drift_reference),
            drift_interval: self.drift_interval.or(file.drift_interval),
            suggest_interval: self.suggest_interval.or(file.suggest_interval),
            drift_false_alarms: self.drift_false_alarms.or(file.drift_false_alarms),
            drift_seasonal_days: self.drift_seasonal_days.or(file.drift_seasonal_days),
            public_url: self.public_url.or(file.public_url),
            webhook_allow_private: self.webhook_allow_private.or(file.webhook_allow_private),
            webhook_allow: self.webhook_allow.or(file.webhook_allow),
            webhook_timeout: self.webhook_timeout.or(file.webhook_timeout),
            agent_rate_limit: self.agent_rate_limit.or(file.agent_rate_limit),
            admin_rate_limit: self.admin_rate_limit.or(file.admin_rate_limit),
            max_open_cases_per_agent: self.max_open_cases_per_agent.or(file.max_open_cases_per_agent),
            event_time_skew: self.event_time_skew.or(file.event_time_skew),
            policy_guard: self.policy_guard.or(file.policy_guard),
            escalation_budget: self.escalation_budget.or(file.escalation_budget),
            otlp_listen: self.otlp_listen.or(file.otlp_listen),
            trace_retention: self.trace_retention.or(file.trace_retention),
            otlp_endpoint: self.otlp_endpoint.or(file.otlp_endpoint),
            receipt_ttl: self.receipt_ttl.or(file.receipt_ttl),
            receipts: self.receipts.or(file.receipts),
            sso_issuer: self.sso_issuer.or(file.sso_issuer),
            sso_client_id: self.sso_client_id.or(file.sso_client_id),
            sso_client_secret: self.sso_client_secret.or(file.sso_client_secret),
            sso_scopes: self.sso_scopes.or(file.sso_scopes),
            sso_name_claim: self.sso_name_claim.or(file.sso_name_claim),
            sso_groups_claim: self.sso_groups_claim.or(file.sso_groups_claim),
            sso_group: self.sso_group.or(file.sso_group),
            sso_label: self.sso_label.or(file.sso_label),
            sso_clock_skew: self.sso_clock_skew.or(file.sso_clock_skew),
            sso_self_keys: self.sso_self_keys.or(file.sso_self_keys),
            key_sign_in: self.key_sign_in.or(file.key_sign_in),
            session_lifetime: self.session_lifetime.or(file.session_lifetime),
            slack_bot_token: self.slack_bot_token.or(file.slack_bot_token),
            slack_signing_secret: self.slack_signing_secret.or(file.slack_signing_secret),
            slack_api_url: self.slack_api_url.or(file.slack_api_url),
            slack_route: self.slack_route.or(file.slack_route),
            slack_interval: self.slack_interval.or(file.slack_interval),
            page_before: self.page_before.or(file.page_before),
            otlp_headers: if self.otlp_headers.is_empty() { file.otlp_headers } else { self.otlp_headers },
        }
    }
}

/// `name=value` headers for the OTLP export.
fn otlp_headers(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|h| match h.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => anyhow::bail!("--otlp-header {h}: write it as name=value, e.g. authorization=Bearer arb_..."),
        })
        .collect()
}

/// The single sign-on settings, when an issuer is set.
fn sso_config(args: &ServeArgs) -> Result<Option<SsoConfig>> {
    let Some(issuer) = args.sso_issuer.clone() else {
        if args.sso_client_id.is_some() || args.sso_group.is_some() {
            anyhow::bail!("--sso-client-id and --sso-group need --sso-issuer (the OpenID provider's URL)");
        }
        return Ok(None);
    };
    let Some(client_id) = args.sso_client_id.clone() else {
        anyhow::bail!("single sign-on needs --sso-client-id (the client id Arbiter is registered with at {issuer})");
    };
    let groups = args
        .sso_group
        .iter()
        .flatten()
        .map(|g| arbiter_core::GroupRule::parse(g).map_err(|e| anyhow::anyhow!("--sso-group {e}")))
        .collect::<Result<Vec<_>>>()?;
    let name_claim = args.sso_name_claim.clone().unwrap_or_else(|| SsoConfig::DEFAULT_NAME_CLAIM.into());
    Ok(Some(SsoConfig {
        issuer,
        client_id,
        client_secret: args.sso_client_secret.clone().filter(|s| !s.is_empty()),
        scopes: args
            .sso_scopes
            .clone()
            .unwrap_or_else(|| SsoConfig::DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()),
        name_claim,
        groups_claim: args.sso_groups_claim.clone().unwrap_or_else(|| SsoConfig::DEFAULT_GROUPS_CLAIM.into()),
        groups,
        max_skew: args
            .sso_clock_skew
            .map_or(SsoConfig::DEFAULT_MAX_SKEW, |h| Duration::from_millis(h.as_millis() as u64)),
        label: args.sso_label.clone().unwrap_or_else(|| SsoConfig::DEFAULT_LABEL.into()),
        self_keys: args.sso_self_keys.as_deref() == Some("on"),
    }))
}

/// The Slack settings, when a bot token is set.
fn slack_config(args: &ServeArgs) -> Result<Option<SlackConfig>> {
    let Some(bot_token) = args.slack_bot_token.clone().filter(|t| !t.is_empty()) else {
        if args.slack_route.is_some() || args.slack_signing_secret.is_some() {
            anyhow::bail!("--slack-route and --slack-signing-secret need --slack-bot-token (ARBITER_SLACK_BOT_TOKEN)");
        }
        return Ok(None);
    };
    let Some(signing_secret) = args.slack_signing_secret.clone().filter(|t| !t.is_empty()) else {
        anyhow::bail!(
            "Slack needs the app's signing secret too: --slack-signing-secret or ARBITER_SLACK_SIGNING_SECRET \
             (Basic Information → App Credentials)"
        );
    };
    let routes = args
        .slack_route
        .iter()
        .flatten()
        .filter(|r| !r.trim().is_empty())
        .map(|r| arbiter_server::SlackRoute::parse(r).map_err(|e| anyhow::anyhow!("--slack-route {e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(SlackConfig {
        bot_token,
        signing_secret,
        api_url: args.slack_api_url.clone().unwrap_or_else(|| SlackConfig::DEFAULT_API_URL.into()),
        routes,
        interval: args
            .slack_interval
            .map_or(SlackConfig::DEFAULT_INTERVAL, |h| Duration::from_millis(h.as_millis() as u64)),
    }))
}

/// Run the server until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    if let Some(port) = &args.port {
        anyhow::bail!(
            "there is no --port; use --listen 127.0.0.1:{port} (or --listen 0.0.0.0:{port} to accept connections from other machines)"
        );
    }
    crate::process::init_logging();
    let args = match &args.config {
        Some(path) => {
            let file = read_config(path)?;
            args.or(file)
        }
        None => args,
    };
    let db = args.db.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
    let listen = args.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let policy_source = match &args.policy {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("cannot read policy file {}", p.display()))?)
        }
        None => None,
    };
    if let (Some(path), Some(src)) = (&args.policy, &policy_source)
        && let Err(e) = arbiter_policy::Policy::parse(src)
    {
        anyhow::bail!("the policy file has errors:\n{}", e.render(&path.display().to_string()));
    }
    let mut outbound = arbiter_server::outbound::OutboundPolicy {
        allow_private: args.webhook_allow_private.unwrap_or(false),
        ..Default::default()
    };
    for entry in args.webhook_allow.iter().flatten() {
        match entry.parse::<arbiter_server::outbound::IpNet>() {
            Ok(net) => outbound.allow_networks.push(net),
            Err(_) if !entry.is_empty() && !entry.contains('/') => outbound.allow_hosts.push(entry.clone()),
            Err(e) => anyhow::bail!("webhook_allow: {e}"),
        }
    }
    if let Some(r) = args.receipts.as_deref()
        && r != "on"
        && r != "off"
    {
        anyhow::bail!("receipts must be `on` or `off`, not `{r}`");
    }
    // every default comes from the server's own `Config::default()` (one set of defaults)
    let d = Config::default();
    let dur = |v: Option<arbiter_core::HumanDuration>, default: Duration| {
        v.map_or(default, |h| Duration::from_millis(h.as_millis() as u64))
    };
    let config = Config {
        public_url: args.public_url.clone(),
        outbound,
        webhook_timeout: dur(args.webhook_timeout, d.webhook_timeout),
        rate_limits: arbiter_server::RoleRates {
            agent: args.agent_rate_limit.unwrap_or(d.rate_limits.agent),
            admin: args.admin_rate_limit.unwrap_or(d.rate_limits.admin),
        },
        max_open_cases_per_agent: match args.max_open_cases_per_agent {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.max_open_cases_per_agent,
        },
        event_time_skew: match args.event_time_skew.as_deref() {
            None => d.event_time_skew,
            Some("off") => None,
            Some(s) => Some(Duration::from_millis(
                s.parse::<arbiter_core::HumanDuration>()
                    .map_err(|e| {
                        anyhow::anyhow!("--event-time-skew: `{s}` is not a duration such as 5m, or `off` ({e})")
                    })?
                    .as_millis() as u64,
            )),
        },
        policy_guard: args.policy_guard.unwrap_or(d.policy_guard),
        escalation_budget: args.escalation_budget.unwrap_or(d.escalation_budget),
        max_body_bytes: args.max_body_bytes.unwrap_or(d.max_body_bytes),
        max_wait: args.max_wait_secs.map_or(d.max_wait, Duration::from_secs),
        min_rationale_len: args.min_rationale_len.unwrap_or(d.min_rationale_len),
        claim_lease: dur(args.claim_lease, d.claim_lease),
        sweep_interval: args.sweep_interval_ms.map_or(d.sweep_interval, Duration::from_millis),
        webhook_interval: args.webhook_interval_ms.map_or(d.webhook_interval, Duration::from_millis),
        drift: arbiter_core::drift::DriftConfig {
            window_ms: args.drift_window.map_or(d.drift.window_ms, |h| h.as_millis()),
            reference_ms: args.drift_reference.map_or(d.drift.reference_ms, |h| h.as_millis()),
            false_alarms_per_week: args.drift_false_alarms.unwrap_or(d.drift.false_alarms_per_week),
            seasonal_days: args.drift_seasonal_days.unwrap_or(d.drift.seasonal_days),
            ..d.drift.clone()
        },
        drift_interval: dur(args.drift_interval, d.drift_interval),
        suggest_interval: dur(args.suggest_interval, d.suggest_interval),
        trace_retention: dur(args.trace_retention, d.trace_retention),
        otlp_endpoint: args.otlp_endpoint.clone(),
        receipt_ttl: dur(args.receipt_ttl, d.receipt_ttl),
        receipts: args.receipts.as_deref().map_or(d.receipts, |r| r != "off"),
        otlp_headers: otlp_headers(&args.otlp_headers)?,
        sso: sso_config(&args)?,
        key_sign_in: args.key_sign_in.as_deref().map_or(d.key_sign_in, |v| v != "off"),
        session_lifetime: dur(args.session_lifetime, d.session_lifetime),
        slack: slack_config(&args)?,
        page_before: match args.page_before.as_deref() {
            None | Some("off") => None,
            Some(s) => Some(Duration::from_millis(
                s.parse::<arbiter_core::HumanDuration>()
                    .map_err(|e| anyhow::anyhow!("--page-before: `{s}` is not a duration such as 5m, or `off` ({e})"))?
                    .as_millis() as u64,
            )),
        },
        ..d.clone()
    }
    // every setting is checked in one place, before anything opens
    .validated()?;
    crate::process::runtime()?.block_on(async move {
        let store = crate::store::open_or_create(&db).await?;
        let manual = (args.clock.as_deref() == Some("manual"))
            .then(|| Arc::new(arbiter_core::ManualClock::new(arbiter_core::Clock::now(&SystemClock))));
        let clock: Arc<dyn arbiter_core::Clock> = match &manual {
            Some(m) => m.clone(),
            None => Arc::new(SystemClock),
        };
        let state = AppState::new(store.shared(), config, clock).await?;
        if let Some(m) = manual {
            state.control_clock(m);
            tracing::warn!(
                "the clock is MANUAL: time stands still until an admin moves it (POST /v1/admin/clock); \
                 SLAs, drift and leases follow it. Never run a production server like this"
            );
            println!("clock: MANUAL (simulated time; POST /v1/admin/clock moves it)");
        }
        let boot = arbiter_server::bootstrap(&state, policy_source.as_deref()).await?;
        let listener =
            tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let otlp = match &args.otlp_listen {
            Some(a) => {
                Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("cannot listen on {a} for OTLP"))?)
            }
            None => None,
        };
        let active = state.policy().map(|p| format!("{} ({})", p.name(), &p.hash()[..12])).unwrap_or_default();
        // Machine-readable lines on stdout (tests and scripts read them); logs go to stderr.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        if let Some(l) = &otlp {
            writeln!(out, "otlp on http://{}/v1/traces", l.local_addr()?)?;
        }
        writeln!(out, "store: {}", store.describe())?;
        writeln!(out, "policy: {active}")?;
        if let Some(key) = &boot.admin_key {
            writeln!(out, "admin key: {key}")?;
            writeln!(out, "(shown once: keep it; create more keys with `arbiter keys create` or POST /v1/keys)")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        let (stop_otlp, otlp_stopped) = tokio::sync::oneshot::channel::<()>();
        let otlp_task = otlp.map(|l| {
            tokio::spawn(arbiter_server::serve_otlp(l, state.clone(), async {
                let _ = otlp_stopped.await;
            }))
        });
        arbiter_server::serve(listener, state, shutdown_signal()).await?;
        let _ = stop_otlp.send(());
        if let Some(t) = otlp_task {
            t.await??;
        }
        store.close();
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod help_defaults {
    use super::*;
    use clap::CommandFactory;

    #[derive(Debug, clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    /// The defaults `--help` prints and docs/operations.md lists are the
    /// server's own (`Config::default()`, the CLI's `DEFAULT_*`): one set of
    /// defaults, wherever they are written down.
    #[test]
    fn the_help_states_the_defaults_that_apply() {
        let d = Config::default();
        let human = |t: Duration| arbiter_core::HumanDuration(t.as_secs()).to_string();
        let ms = |t: i64| arbiter_core::HumanDuration((t / 1000) as u64).to_string();
        let expected: std::collections::BTreeMap<&str, String> = [
            ("db", DEFAULT_DB.to_string()),
            ("listen", DEFAULT_LISTEN.to_string()),
            ("max_body_bytes", d.max_body_bytes.to_string()),
            ("max_wait_secs", d.max_wait.as_secs().to_string()),
            ("min_rationale_len", d.min_rationale_len.to_string()),
            ("claim_lease", human(d.claim_lease)),
            ("sweep_interval_ms", d.sweep_interval.as_millis().to_string()),
            ("webhook_interval_ms", d.webhook_interval.as_millis().to_string()),
            ("drift_window", ms(d.drift.window_ms)),
            ("drift_reference", ms(d.drift.reference_ms)),
            ("drift_interval", human(d.drift_interval)),
            ("suggest_interval", human(d.suggest_interval)),
            ("drift_false_alarms", d.drift.false_alarms_per_week.to_string()),
            ("drift_seasonal_days", d.drift.seasonal_days.to_string()),
            ("webhook_timeout", human(d.webhook_timeout)),
            ("agent_rate_limit", d.rate_limits.agent.to_string()),
            ("admin_rate_limit", d.rate_limits.admin.to_string()),
            ("max_open_cases_per_agent", d.max_open_cases_per_agent.unwrap_or(0).to_string()),
            ("event_time_skew", d.event_time_skew.map_or("off".into(), human)),
            ("policy_guard", d.policy_guard.to_string()),
            ("escalation_budget", d.escalation_budget.to_string()),
            ("trace_retention", human(d.trace_retention)),
            ("receipt_ttl", human(d.receipt_ttl)),
            ("receipts", if d.receipts { "on" } else { "off" }.to_string()),
            ("clock", "system".to_string()),
            ("sso_scopes", SsoConfig::DEFAULT_SCOPES.join(",")),
            ("sso_name_claim", SsoConfig::DEFAULT_NAME_CLAIM.to_string()),
            ("sso_groups_claim", SsoConfig::DEFAULT_GROUPS_CLAIM.to_string()),
            ("sso_label", SsoConfig::DEFAULT_LABEL.to_string()),
            ("sso_clock_skew", human(SsoConfig::DEFAULT_MAX_SKEW)),
            ("sso_self_keys", "off".to_string()),
            ("key_sign_in", if d.key_sign_in { "on" } else { "off" }.to_string()),
            ("session_lifetime", human(d.session_lifetime)),
            ("slack_api_url", SlackConfig::DEFAULT_API_URL.to_string()),
            ("slack_interval", human(SlackConfig::DEFAULT_INTERVAL)),
            ("page_before", d.page_before.map_or("off".into(), human)),
        ]
        .into_iter()
        .collect();
        let same = |a: &str, b: &str| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        };
        let mut stated = 0;
        for arg in Serve::command().get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(at) = help.rfind("[default: ") else { continue };
            let said = &help[at + "[default: ".len()..help[at..].find(']').map_or(help.len(), |e| at + e)];
            let id = arg.get_id().as_str();
            let want = expected.get(id).unwrap_or_else(|| panic!("--help states a default for `{id}`: add it here"));
            assert!(same(said, want), "--help says {id} defaults to {said}, the server uses {want}");
            stated += 1;
        }
        assert_eq!(stated, expected.len(), "every default listed here is stated in --help");
        // and docs/operations.md's table of options says the same
        let mut documented = 0;
        for row in include_str!("../../../docs/operations.md").lines().filter(|l| l.starts_with("| `--")) {
            let cells: Vec<&str> = row.split('|').map(|c| c.trim().trim_matches('`')).collect();
            let id = cells[1].trim_start_matches("--").replace('-', "_");
            if let Some(want) = expected.get(id.as_str()) {
                assert!(
                    same(cells[3], want),
                    "docs/operations.md says {id} defaults to {}, the server uses {want}",
                    cells[3]
                );
                documented += 1;
            }
        }
        assert_eq!(documented, expected.len(), "docs/operations.md lists every option with a default");
    }
}
