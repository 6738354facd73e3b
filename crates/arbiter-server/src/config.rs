//! The server's tunables, with the defaults `arbiter serve` documents.

use crate::outbound;
use arbiter_core::Limits;
use std::time::Duration;

/// How far an agent's `event_time` may be from the server's clock by default, either way.
pub const DEFAULT_EVENT_TIME_SKEW: Duration = Duration::from_secs(5 * 60);

/// Tunables of the HTTP server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Longest `?wait=` a long-poll may ask for.
    pub max_wait: Duration,
    /// How often a long-poll re-reads the store even without a wake-up
    /// (covers decisions finalised by another replica).
    pub recheck_interval: Duration,
    /// Shortest rationale a reviewer may give.
    pub min_rationale_len: usize,
    /// How long a verified key stays cached.
    pub key_cache_ttl: Duration,
    /// How often the active policy is re-read from the store.
    pub policy_refresh: Duration,
    /// Bounds on what agents send.
    pub limits: Limits,
    /// Default length of a reviewer's claim on a case.
    pub claim_lease: Duration,
    /// Longest claim a reviewer may ask for.
    pub max_claim_lease: Duration,
    /// How often the sweeper looks for expired leases and SLAs.
    pub sweep_interval: Duration,
    /// How often the webhook worker looks for due deliveries.
    pub webhook_interval: Duration,
    /// Attempts per webhook delivery before it is marked failed.
    pub webhook_max_attempts: u32,
    /// Timeout of one webhook request.
    pub webhook_timeout: Duration,
    /// Requests in flight at once to one webhook endpoint.
    pub webhook_concurrency: usize,
    /// Where webhooks may be sent (private networks are refused by default).
    pub outbound: outbound::OutboundPolicy,
    /// First retry delay of a failed delivery; each retry waits 3 times longer (at most an hour).
    pub webhook_retry_base: Duration,
    /// Drift detection windows and thresholds.
    pub drift: arbiter_core::drift::DriftConfig,
    /// How often drift is evaluated (0: never in the background).
    pub drift_interval: Duration,
    /// How often review history is mined for rule suggestions (0: only on request).
    pub suggest_interval: Duration,
    /// The URL people reach this server at (`https://...` makes the console cookie `Secure`).
    pub public_url: Option<String>,
    /// Proposals per key, by role, unless the key carries its own limit.
    pub rate_limits: RoleRates,
    /// Open approval cases one agent may have; past it, escalations are denied at once (fail closed).
    pub max_open_cases_per_agent: Option<u64>,
    /// How far a proposal's `event_time` may be from the server's time, either way
    /// (`None`: any, for a server that takes replays; each such decision records its skew).
    pub event_time_skew: Option<Duration>,
    /// Activating a policy version that changes more than this share of the
    /// verdicts on recent history needs `force=true`.
    pub policy_guard: f64,
    /// The share of decisions the reviewers can take (the dashboard draws it;
    /// `arbiter tune --max-escalation-rate` is where thresholds are fitted to it).
    pub escalation_budget: f64,
    /// Largest OTLP trace export accepted, in bytes, after decompression.
    pub max_trace_bytes: usize,
    /// How long spans are kept (those of decisions under review are kept longer).
    pub trace_retention: Duration,
    /// How often old spans are purged (0: never).
    pub trace_purge_interval: Duration,
    /// Where Arbiter exports its own spans (OTLP/HTTP protobuf; `/v1/traces` is appended), if anywhere.
    pub otlp_endpoint: Option<String>,
    /// Headers sent with each export (e.g. `authorization`).
    pub otlp_headers: Vec<(String, String)>,
    /// How long a receipt authorises its call after the verdict became final.
    pub receipt_ttl: Duration,
    /// Whether final verdicts are served with signed receipts (signing costs
    /// 15–25% of `POST /v1/decisions` throughput on two cores; off when nothing checks them).
    pub receipts: bool,
    /// How many recent decisions that check replays (0 turns it off).
    pub policy_guard_window: usize,
    /// Single sign-on to the console with an OpenID provider (off when `None`).
    pub sso: Option<SsoConfig>,
    /// Whether the console's sign-in page takes an API key (turn it off when
    /// every person signs in through single sign-on; keys still work on the API).
    pub key_sign_in: bool,
    /// How long a console session lasts. A person removed from a group keeps
    /// its roles at most this long (they are re-read at every sign-in).
    pub session_lifetime: Duration,
    /// Case messages in Slack and answers from there (off when `None`).
    pub slack: Option<SlackConfig>,
    /// How long before a tier's time runs out an unclaimed approval case is
    /// announced as due soon (`case.due_soon`: what pages the on-call person);
    /// `None`: never.
    pub page_before: Option<Duration>,
}

/// Slack: where case messages go, and the app's credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackConfig {
    /// The bot token (`xoxb-...`): scopes `chat:write`, `users:read`, `users:read.email`.
    pub bot_token: String,
    /// The app's signing secret: every request from Slack is checked with it.
    pub signing_secret: String,
    /// Slack's Web API (`https://slack.com/api`; tests point it at 127.0.0.1).
    pub api_url: String,
    /// Which cases go to which channel.
    pub routes: Vec<SlackRoute>,
    /// How often new case events are brought to Slack.
    pub interval: Duration,
}

impl SlackConfig {
    /// The Web API unless set.
    pub const DEFAULT_API_URL: &str = "https://slack.com/api";
    /// How often case events are brought to Slack unless set.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
}

/// A channel and the approval cases it gets: those of its project that match
/// every filter it sets (no filter: all of them).
#[derive(Debug, Clone, PartialEq)]
pub struct SlackRoute {
    /// The channel id (`C...`).
    pub channel: String,
    /// The project whose cases it gets.
    pub project: arbiter_core::ProjectId,
    /// Only these severities (empty: any).
    pub severities: std::collections::BTreeSet<arbiter_core::Severity>,
    /// Only cases one of these reviewer roles may answer (empty: any).
    pub roles: std::collections::BTreeSet<String>,
    /// Only these actions (empty: any).
    pub actions: std::collections::BTreeSet<String>,
}

impl SlackRoute {
    /// Parse `CHANNEL [severity=high,critical] [role=soc_analyst] [action=isolate_host] [project=default]`.
    pub fn parse(s: &str) -> Result<SlackRoute, String> {
        let usage = "write it as CHANNEL [severity=high,critical] [role=ROLE,...] [action=NAME,...] [project=ID], \
                     e.g. `C0123456789 severity=high,critical role=soc_analyst`";
        let mut words = s.split_whitespace();
        let channel = words.next().ok_or_else(|| format!("an empty route; {usage}"))?;
        if channel.contains('=') || channel.starts_with('#') {
            return Err(format!("`{s}`: start with the channel's id (C...), not its name; {usage}"));
        }
        let mut route = SlackRoute {
            channel: channel.to_string(),
            project: arbiter_core::ProjectId::default_project(),
            severities: Default::default(),
            roles: Default::default(),
            actions: Default::default(),
        };
        for w in words {
            let (k, v) = w.split_once('=').ok_or_else(|| format!("`{w}` in `{s}`: {usage}"))?;
            let list = || v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string);
            match k {
                "severity" => {
                    for x in list() {
                        route.severities.insert(x.parse().map_err(|e| format!("`{s}`: {e}"))?);
                    }
                }
                "role" => route.roles.extend(list()),
                "action" => route.actions.extend(list()),
                "project" => route.project = arbiter_core::ProjectId::parse(v).map_err(|e| format!("`{s}`: {e}"))?,
                other => return Err(format!("`{s}`: unknown filter `{other}`; {usage}")),
            }
        }
        Ok(route)
    }

    /// Whether an approval case of `project` goes to this route's channel.
    pub fn wants(&self, project: &arbiter_core::ProjectId, case: &arbiter_core::Case) -> bool {
        &self.project == project
            && (self.severities.is_empty() || self.severities.contains(&case.escalation.severity))
            && (self.roles.is_empty() || !self.roles.is_disjoint(case.current_reviewers()))
            && (self.actions.is_empty() || self.actions.contains(&case.action_name))
    }
}

/// Single sign-on with an OpenID Connect provider.
#[derive(Debug, Clone, PartialEq)]
pub struct SsoConfig {
    /// The issuer URL, exactly as the provider names itself.
    pub issuer: String,
    /// The client id Arbiter is registered with.
    pub client_id: String,
    /// The client secret (`None`: a public client, PKCE only).
    pub client_secret: Option<String>,
    /// Scopes asked for besides `openid` (those that bring the name, email and groups claims).
    pub scopes: Vec<String>,
    /// The ID token claim that names the person: `sub` (stable), or `email`
    /// (readable; then the provider must not say it is unverified).
    pub name_claim: String,
    /// The ID token claim that lists the person's groups.
    pub groups_claim: String,
    /// Which groups give which roles in which projects.
    pub groups: Vec<arbiter_core::GroupRule>,
    /// How far the provider's clock may be from the server's.
    pub max_skew: Duration,
    /// The sign-in button's label (e.g. "Sign in with Okta").
    pub label: String,
    /// Whether a person signed in by SSO may create an API key for themselves
    /// (for the CLI): named as them, with their current roles in the project,
    /// expiring after the session lifetime.
    pub self_keys: bool,
}

impl SsoConfig {
    /// Scopes asked for besides `openid` unless set.
    pub const DEFAULT_SCOPES: [&str; 2] = ["email", "profile"];
    /// The claim that names a person unless set.
    pub const DEFAULT_NAME_CLAIM: &str = "sub";
    /// The claim that lists a person's groups unless set.
    pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
    /// The sign-in button's label unless set.
    pub const DEFAULT_LABEL: &str = "Sign in with single sign-on";
    /// How far the provider's clock may be from the server's unless set.
    pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(60);

    /// Where the provider sends the browser back.
    pub fn redirect_uri(public_url: &str) -> String {
        format!("{}/sso/callback", public_url.trim_end_matches('/'))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 1024 * 1024,
            max_wait: Duration::from_secs(60),
            recheck_interval: Duration::from_secs(5),
            min_rationale_len: 10,
            key_cache_ttl: Duration::from_secs(5),
            policy_refresh: Duration::from_secs(5),
            limits: Limits::default(),
            claim_lease: Duration::from_secs(10 * 60),
            max_claim_lease: Duration::from_secs(60 * 60),
            sweep_interval: Duration::from_secs(1),
            webhook_interval: Duration::from_millis(500),
            webhook_max_attempts: 8,
            webhook_timeout: Duration::from_secs(10),
            webhook_concurrency: 4,
            outbound: outbound::OutboundPolicy::default(),
            webhook_retry_base: Duration::from_secs(5),
            drift: arbiter_core::drift::DriftConfig::default(),
            drift_interval: Duration::from_secs(5 * 60),
            suggest_interval: Duration::from_secs(6 * 3600),
            public_url: None,
            rate_limits: RoleRates::default(),
            max_open_cases_per_agent: Some(200),
            event_time_skew: Some(DEFAULT_EVENT_TIME_SKEW),
            policy_guard: 0.2,
            escalation_budget: 0.10,
            max_trace_bytes: 16 * 1024 * 1024,
            trace_retention: Duration::from_secs(14 * 24 * 3600),
            trace_purge_interval: Duration::from_secs(3600),
            otlp_endpoint: None,
            otlp_headers: Vec::new(),
            receipt_ttl: Duration::from_secs(15 * 60),
            receipts: true,
            policy_guard_window: 2000,
            sso: None,
            key_sign_in: true,
            session_lifetime: Duration::from_secs(12 * 3600),
            slack: None,
            page_before: None,
        }
    }
}

/// A setting out of its range, by the name the config file gives it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{setting} {message}")]
pub struct ConfigError {
    /// The setting (`policy_guard`, `escalation_budget`, ...).
    pub setting: &'static str,
    /// What its value must be, and what it was.
    pub message: String,
}

impl Config {
    /// Every setting checked in one place: a value that cannot work is an
    /// error naming the setting; intervals and lifetimes below their floor
    /// are raised to it (a 0 ms sweep would spin, a 0 s receipt would never
    /// authorise). The server checks its configuration when it starts
    /// ([`crate::AppState::new`]), however it was built.
    pub fn validated(mut self) -> Result<Config, ConfigError> {
        let err = |setting, message: String| Err(ConfigError { setting, message });
        if !(0.0..=1.0).contains(&self.policy_guard) {
            return err("policy_guard", format!("must be a share between 0 and 1, got {}", self.policy_guard));
        }
        if !(self.escalation_budget > 0.0 && self.escalation_budget <= 1.0) {
            return err(
                "escalation_budget",
                format!("must be a share above 0 and at most 1 (0.10 is 10%), got {}", self.escalation_budget),
            );
        }
        let fa = self.drift.false_alarms_per_week;
        if !(fa > 0.0 && fa.is_finite()) {
            return err("drift_false_alarms", format!("must be a positive number of false alarms a week, not {fa}"));
        }
        if self.max_body_bytes == 0 {
            return err("max_body_bytes", "must be at least 1 byte".into());
        }
        if let Some(sso) = &self.sso {
            if self.public_url.is_none() {
                return err(
                    "public_url",
                    "is needed for single sign-on: the provider sends people back to <public_url>/sso/callback".into(),
                );
            }
            if sso.groups.is_empty() {
                return err(
                    "sso_groups",
                    "maps no group to a role: nobody could sign in (e.g. `soc-analysts=reviewer:soc_analyst`)".into(),
                );
            }
            if sso.issuer.is_empty() || sso.client_id.is_empty() {
                return err("sso_issuer", "and sso_client_id are both needed for single sign-on".into());
            }
        }
        if let Some(slack) = &self.slack {
            if slack.bot_token.is_empty() || slack.signing_secret.is_empty() {
                return err(
                    "slack_bot_token",
                    "and slack_signing_secret are both needed for Slack (the app's Basic Information and OAuth pages)"
                        .into(),
                );
            }
            if slack.routes.is_empty() {
                return err("slack_route", "names no channel: no case would reach Slack".into());
            }
        }
        if !self.key_sign_in && self.sso.is_none() {
            return err(
                "key_sign_in",
                "cannot be off without single sign-on: nobody could sign in to the console".into(),
            );
        }
        let floor = |d: &mut Duration, min: Duration| *d = (*d).max(min);
        floor(&mut self.session_lifetime, Duration::from_secs(60));
        if let Some(slack) = &mut self.slack {
            floor(&mut slack.interval, Duration::from_millis(10));
        }
        floor(&mut self.sweep_interval, Duration::from_millis(10));
        floor(&mut self.webhook_interval, Duration::from_millis(10));
        floor(&mut self.webhook_timeout, Duration::from_secs(1));
        floor(&mut self.trace_retention, Duration::from_secs(1));
        floor(&mut self.receipt_ttl, Duration::from_secs(1));
        Ok(self)
    }
}

/// Default proposal rate limits by role (a key's own limit wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoleRates {
    /// Agent keys.
    pub agent: arbiter_core::rate::RateLimit,
    /// Admin keys (admins may propose too).
    pub admin: arbiter_core::rate::RateLimit,
}

impl Default for RoleRates {
    fn default() -> Self {
        RoleRates {
            agent: arbiter_core::rate::RateLimit::Bucket { per_second: 50.0, burst: 200 },
            admin: arbiter_core::rate::RateLimit::Bucket { per_second: 50.0, burst: 200 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_out_of_range_settings_are_named() {
        let d = Config::default();
        assert_eq!(d.clone().validated().unwrap().sweep_interval, d.sweep_interval);
        let e = Config { policy_guard: 1.5, ..Config::default() }.validated().unwrap_err();
        assert_eq!(e.to_string(), "policy_guard must be a share between 0 and 1, got 1.5");
        assert_eq!(
            Config { escalation_budget: 0.0, ..Config::default() }.validated().unwrap_err().setting,
            "escalation_budget"
        );
        let drift = arbiter_core::drift::DriftConfig { false_alarms_per_week: f64::NAN, ..Default::default() };
        assert_eq!(Config { drift, ..Config::default() }.validated().unwrap_err().setting, "drift_false_alarms");
        let raised = Config { sweep_interval: Duration::ZERO, receipt_ttl: Duration::ZERO, ..Config::default() }
            .validated()
            .unwrap();
        assert_eq!((raised.sweep_interval, raised.receipt_ttl), (Duration::from_millis(10), Duration::from_secs(1)));
    }
}
