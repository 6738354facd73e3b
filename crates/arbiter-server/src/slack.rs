//! Slack: every approval case that a route wants gets a message in its
//! channel, kept up to date as the case moves (claimed, approved, decided,
//! escalated to the next tier, fallen back, withdrawn), and people answer
//! from there with the same rules as in the console.
//!
//! **Out**: the audit log is the outbox. For each project one replica (the
//! holder of the `slack:<project>` lease) reads the case events after a
//! stored cursor and brings Slack up to date: a message posted for a case
//! that opened (its `ts` kept), `chat.update` for a case that changed (once
//! per batch), a thread note for tier escalations, raised requirements, the
//! fallback and withdrawals. The cursor moves only past events Slack took
//! (or refused for good, e.g. `channel_not_found`, which is logged), so a
//! crash or an outage delays messages and never loses them; a 429 pauses
//! the worker for Slack's `Retry-After`. Decisions never wait for Slack.
//!
//! **In**: `POST /slack/interactions`, verified with the signing secret
//! (`v0`, five minutes). Claim acts at once; Approve, Reject and Modify open
//! a modal (`views.open`, within Slack's three seconds) for the rationale
//! and, for Modify, the arguments; its submission is an answer through
//! [`crate::app::cases::answer`] (`via: slack`), so every rule of the console
//! applies: roles, distinct approvers, the agent's own action, the policy's
//! re-check of a modification. A refusal is an error in the modal or a
//! message only the person sees; nothing is recorded.
//!
//! **Who**: a Slack user acts as the person linked to them (an admin links
//! them: `arbiter people link-slack`), or, unlinked, as the person who
//! signed in by single sign-on with the same verified email (linked then).
//! Their roles are those of their last single sign-on while it is younger
//! than the session lifetime, else those of their API key in the project.

use crate::error::ApiError;
use crate::{AppState, SlackConfig};
use arbiter_core::{Case, CaseKind, Principal, ProjectId, Role};
use arbiter_slack::api::{ApiError as SlackError, WebApi};
use arbiter_slack::interaction::{Interaction, modal_errors};
use arbiter_slack::message::{self, CaseCard, Choice, Outcome};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Slack connection of a server.
pub struct Slack {
    api: WebApi,
    /// Rate limited: nothing is sent before then.
    paused_until: Mutex<Option<Instant>>,
}

impl Slack {
    /// The connection `config` describes.
    pub fn new(config: &SlackConfig) -> Slack {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Slack { api: WebApi::new(&config.api_url, &config.bot_token, http), paused_until: Mutex::new(None) }
    }

    fn paused(&self) -> bool {
        self.paused_until.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|t| Instant::now() < t)
    }

    fn pause(&self, d: Duration) {
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + d);
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let r = self.api.call(method, body).await;
        if let Err(SlackError::RateLimited(d)) = &r {
            tracing::warn!(method, retry_after = ?d, "Slack rate-limited Arbiter; pausing Slack calls");
            self.pause(*d);
        }
        r
    }
}

fn utc(t: arbiter_core::Timestamp) -> (i64, String) {
    let text = t.to_string();
    (t.millis().div_euclid(1000), format!("{} {} UTC", &text[..10], &text[11..16]))
}

/// The message of a case, as it stands.
pub async fn card(state: &AppState, case: &Case) -> Result<CaseCard, ApiError> {
    let decision = match &case.decision_id {
        Some(id) => state.store.decision(id).await?,
        None => None,
    };
    let args = decision.as_ref().map_or(Value::Null, |d| d.action.args.clone());
    let args = case.answers.iter().rev().find_map(|a| a.modified_args.clone()).unwrap_or(args);
    let reasons: Vec<String> = match &decision {
        Some(d) if !d.triggers.is_empty() => d.triggers.iter().map(|t| format!("{}: {}", t.name, t.reason)).collect(),
        Some(d) => vec![d.explanation.clone()],
        None => vec![],
    };
    let outcome = match decision.as_ref().and_then(|d| d.final_verdict.as_ref()) {
        Some(f) if !case.is_active() => {
            use arbiter_core::FinalSource;
            let modified = f.action.as_ref().zip(decision.as_ref()).is_some_and(|(a, d)| a.args != d.action.args);
            let headline = match (f.source, f.verdict) {
                (FinalSource::SlaExpired, v) => format!("SLA expired: the fallback `{v}` was applied"),
                (FinalSource::Withdrawn, _) => "Withdrawn by the agent".to_string(),
                (_, arbiter_core::Verdict::Allow) if modified => "Approved with changes".to_string(),
                (_, arbiter_core::Verdict::Allow) => "Approved".to_string(),
                (_, arbiter_core::Verdict::Deny) => "Rejected".to_string(),
                (_, v) => format!("Decided: {v}"),
            };
            Some(Outcome {
                headline,
                by: f.decided_by.clone(),
                rationale: Some(f.rationale.clone()).filter(|r| !r.is_empty()),
                at: utc(f.decided_at),
            })
        }
        _ => None,
    };
    let now = state.clock.now();
    Ok(CaseCard {
        project: state.project().to_string(),
        case_id: case.id.clone(),
        action: case.action_name.clone(),
        subject: case.subject.clone(),
        agent: case.agent.clone(),
        args,
        reasons,
        confidence: case.confidence,
        threshold: case.threshold,
        severity: case.escalation.severity.to_string(),
        reviewers: case.current_reviewers().iter().cloned().collect(),
        approvals_needed: case.escalation.approvals,
        approved_by: case.approvers().into_iter().map(str::to_string).collect(),
        deadline: utc(case.sla_deadline),
        claimed_by: case.held_at(now).map(|c| c.by.clone()),
        console_url: state.config.public_url.as_ref().map(|u| format!("{}/cases/{}", u.trim_end_matches('/'), case.id)),
        outcome,
    })
}

/// The thread note an event deserves, if any.
fn thread_note(e: &arbiter_store::Event) -> Option<String> {
    let list = |v: &Value| {
        v.as_array().map_or(String::new(), |a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
    };
    let d = &e.data;
    match e.kind.as_str() {
        "case.tier_escalated" => Some(format!(
            "Nobody answered in time: the case moved to tier {} ({}).",
            d["to_tier"].as_u64().map_or(0, |t| t + 1),
            list(&d["reviewers"])
        )),
        "case.requirements_raised" => Some(format!(
            "A reviewer's modification needs more: {} approval(s) from {}.",
            d["escalation"]["approvals"].as_u64().unwrap_or(1),
            list(&d["escalation"]["reviewers"])
        )),
        "case.due_soon" => Some(format!(
            "Due soon and nobody has claimed it: this tier ends at {}.",
            d["sla_deadline"].as_str().unwrap_or("?")
        )),
        "case.fallback_applied" => {
            Some(format!("The SLA ran out: the fallback `{}` was applied.", d["verdict"].as_str().unwrap_or("?")))
        }
        "case.withdrawn" => Some(format!("The agent withdrew the action: {}", d["reason"].as_str().unwrap_or(""))),
        _ => None,
    }
}

/// What went wrong bringing an event to Slack.
enum SyncError {
    /// Try again later (Slack down or rate limiting): the cursor stays.
    Later(String),
}

fn classify(e: SlackError) -> Result<(), SyncError> {
    if e.is_transient() {
        Err(SyncError::Later(e.to_string()))
    } else {
        // refused for good (a channel that does not exist, a bad token): logged, skipped
        tracing::error!(error = %e, "Slack refused a call; check the Slack settings (token, channel ids, scopes)");
        Ok(())
    }
}

async fn bring(
    state: &AppState,
    slack: &Slack,
    config: &SlackConfig,
    e: &arbiter_store::Event,
    update: bool,
) -> Result<(), SyncError> {
    let Some(case_id) = &e.case_id else { return Ok(()) };
    let case = match state.store.case(case_id).await {
        Ok(Some(c)) if c.kind == CaseKind::Approval => c,
        Ok(_) => return Ok(()),
        Err(err) => return Err(SyncError::Later(err.to_string())),
    };
    let card = card(state, &case).await.map_err(|err| SyncError::Later(err.to_string()))?;
    let mut messages = state.store.slack_messages(case_id).await.map_err(|err| SyncError::Later(err.to_string()))?;
    if e.kind == "case.opened" {
        for route in config.routes.iter().filter(|r| r.wants(state.project(), &case)) {
            if messages.iter().any(|(c, _)| c == &route.channel) {
                continue;
            }
            match slack.call("chat.postMessage", &card.post(&route.channel)).await {
                Ok(v) => {
                    let (channel, ts) = (
                        v["channel"].as_str().unwrap_or(&route.channel).to_string(),
                        v["ts"].as_str().unwrap_or("").to_string(),
                    );
                    state
                        .store
                        .record_slack_message(case_id, &route.channel, &ts)
                        .await
                        .map_err(|err| SyncError::Later(err.to_string()))?;
                    messages.push((channel, ts));
                }
                Err(err) => classify(err)?,
            }
        }
        return Ok(());
    }
    for (channel, ts) in &messages {
        if let Some(note) = thread_note(e)
            && let Err(err) = slack.call("chat.postMessage", &message::thread_note(channel, ts, &note)).await
        {
            classify(err)?;
        }
        if update && let Err(err) = slack.call("chat.update", &card.update(channel, ts)).await {
            classify(err)?;
        }
    }
    Ok(())
}

/// The setting that keeps how far project `project`'s log was brought to Slack.
pub fn cursor_name(project: &ProjectId) -> String {
    format!("slack-cursor:{project}")
}

/// The stored Slack cursor of a project, if it has one.
async fn stored_cursor(state: &AppState, name: &str) -> Result<Option<u64>, ApiError> {
    let found = state.root.settings_with_prefix(name).await?;
    Ok(found.into_iter().find(|(n, _)| n == name).and_then(|(_, v)| v.parse().ok()))
}

/// At server start: a project that has no Slack cursor yet (Slack just
/// turned on) starts at the head of its log, so its history is not replayed
/// into the channels; one that has one goes on from there.
pub async fn start(state: &AppState) -> Result<(), ApiError> {
    let Some(config) = &state.config.slack else { return Ok(()) };
    for p in state.all_projects().await? {
        if config.routes.iter().any(|r| &r.project == p.project()) {
            let head = p.store.chain_head().await?.map_or(0, |h| h.seq);
            state.root.setting_or_insert(&cursor_name(p.project()), &head.to_string()).await?;
        }
    }
    Ok(())
}

/// Bring this project's new case events to Slack, when this replica holds
/// the project's Slack lease; returns how many events it went through.
pub async fn sync_if_leader(state: &AppState) -> Result<usize, ApiError> {
    let (Some(slack), Some(config)) = (&state.slack, &state.config.slack) else { return Ok(0) };
    if !config.routes.iter().any(|r| &r.project == state.project()) || slack.paused() {
        return Ok(0);
    }
    let name = cursor_name(state.project());
    // every interval: reads only, until there is something to bring (a
    // lease and a cursor are writes, and SQLite has one writer)
    if let Some(at) = stored_cursor(state, &name).await?
        && state.store.events(at, 1).await?.is_empty()
    {
        return Ok(0);
    }
    let now = state.clock.now();
    let ttl = (config.interval * 10).max(Duration::from_secs(30)).as_millis() as i64;
    if !state.store.acquire_lease(&format!("slack:{}", state.project()), &state.instance, now, ttl).await? {
        return Ok(0);
    }
    // read again under the lease (another replica may have moved it); a project
    // without one yet starts at the head of its log (history is not replayed)
    let mut cursor = match stored_cursor(state, &name).await? {
        Some(at) => at,
        None => {
            let head = state.store.chain_head().await?.map_or(0, |h| h.seq);
            state.root.setting_or_insert(&name, &head.to_string()).await?.parse().unwrap_or(head)
        }
    };
    let events = state.store.events(cursor, 200).await?;
    // one update per case per batch: after its last event here
    let mut last = std::collections::HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if let Some(c) = &e.case_id {
            last.insert(c.clone(), i);
        }
    }
    let mut done = 0;
    for (i, e) in events.iter().enumerate() {
        let wanted = e.kind.starts_with("case.") && e.case_id.is_some();
        if wanted {
            let update = e.case_id.as_ref().and_then(|c| last.get(c)) == Some(&i);
            if let Err(SyncError::Later(why)) = bring(state, slack, config, e, update).await {
                tracing::warn!(project = %state.project(), seq = e.seq, error = %why, "Slack is not reachable; retrying");
                break;
            }
        }
        cursor = e.seq;
        done += 1;
    }
    if done > 0 {
        state.root.set_setting(&name, &cursor.to_string()).await?;
    }
    Ok(done)
}

/// The person a Slack user acts as, in `state`'s project, or why they cannot act.
pub async fn principal(state: &AppState, user: &str) -> Result<Principal, String> {
    let person = match state.root.person_by_slack(user).await.map_err(|e| e.to_string())? {
        Some(p) => p,
        None => link_by_email(state, user).await?,
    };
    let now = state.clock.now();
    let fresh = person
        .signed_in_at
        .is_some_and(|at| now.millis() < at.millis() + state.config.session_lifetime.as_millis() as i64);
    if let Some(identity) = person.identity.as_ref().filter(|_| fresh)
        && let Some(p) = identity.principal_in(state.project())
    {
        return Ok(p);
    }
    let keys = state.store.keys().await.map_err(|e| e.to_string())?;
    let key = keys
        .iter()
        .filter(|k| k.name == person.name && k.role != Role::Agent && k.inactive_at(now).is_none())
        .max_by_key(|k| (k.role == Role::Admin, k.created_at));
    match key {
        Some(k) => Ok(k.principal()),
        None if person.identity.is_some() && !fresh => Err(format!(
            "{} has no role in project `{}` right now: your roles come from your last sign-in, which is older than \
             the session lifetime. Sign in to the Arbiter console again to refresh them.",
            person.name,
            state.project()
        )),
        None => Err(format!(
            "{} has no role in project `{}`: ask an admin for a reviewer role there.",
            person.name,
            state.project()
        )),
    }
}

async fn link_by_email(state: &AppState, user: &str) -> Result<arbiter_core::Person, String> {
    let not_linked = || {
        format!(
            "your Slack account ({user}) is not linked to an Arbiter person. Sign in to the Arbiter console once \
             with single sign-on using the email of your Slack profile, or ask an admin to run \
             `arbiter people link-slack NAME {user}`."
        )
    };
    let Some(slack) = &state.slack else { return Err(not_linked()) };
    let info = match slack.api.call_form("users.info", &[("user", user)]).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "could not look up a Slack user's email (scope users:read.email?)");
            return Err(not_linked());
        }
    };
    let Some(email) = info["user"]["profile"]["email"].as_str().filter(|e| !e.is_empty()) else {
        return Err(not_linked());
    };
    let people = state.root.people_by_email(email).await.map_err(|e| e.to_string())?;
    let signed_in: Vec<_> = people.into_iter().filter(|p| p.identity.is_some()).collect();
    match &signed_in[..] {
        [one] => {
            state.root.link_slack(&one.name, Some(user)).await.map_err(|e| e.to_string())?;
            tracing::info!(person = %one.name, slack_user = user, "linked a Slack user by their verified email");
            Ok(arbiter_core::Person { slack_user: Some(user.to_string()), ..one.clone() })
        }
        [] => Err(not_linked()),
        _ => Err(format!(
            "several Arbiter people signed in with {email}; ask an admin to link your Slack account ({user}) to one of them"
        )),
    }
}

async fn ephemeral(state: &AppState, channel: Option<&str>, user: &str, text: &str) {
    let (Some(slack), Some(channel)) = (&state.slack, channel) else { return };
    if let Err(e) = slack.call("chat.postEphemeral", &message::ephemeral(channel, user, text)).await {
        tracing::warn!(error = %e, "could not tell a Slack user why their action was refused");
    }
}

/// Which input of the answer modal an error belongs under.
fn error_field(e: &ApiError) -> &'static str {
    match e {
        ApiError::Invalid { field, .. } if field.starts_with("args") => "args",
        ApiError::Invalid { field, .. } if field.starts_with("failure_modes") => "failure_modes",
        ApiError::Case(c) if c.to_string().contains("modif") => "args",
        _ => "rationale",
    }
}

/// `POST /slack/interactions`: what people do in Slack.
pub async fn interactions(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(config) = &state.config.slack else {
        return (StatusCode::NOT_FOUND, "Slack is not configured on this server").into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let wall = arbiter_core::Clock::now(&arbiter_core::SystemClock).millis().div_euclid(1000);
    if let Err(e) = arbiter_slack::signature::verify(
        &config.signing_secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        wall,
    ) {
        tracing::warn!(error = %e, "refused a request that claims to come from Slack");
        return (StatusCode::UNAUTHORIZED, e.to_string()).into_response();
    }
    let interaction = match arbiter_slack::interaction::parse(&body) {
        Ok(i) => i,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match interaction {
        Interaction::Button { user, action_id, value, trigger_id, channel } => {
            if action_id == message::OPEN {
                return StatusCode::OK.into_response();
            }
            let refuse = |why: String| {
                let (state, user, channel) = (state.clone(), user.clone(), channel.clone());
                async move {
                    ephemeral(&state, channel.as_deref(), &user, &why).await;
                    StatusCode::OK.into_response()
                }
            };
            let Some((project, case_id)) = value.split_once('/') else {
                return refuse("this button is not one of Arbiter's".into()).await;
            };
            let scoped = match ProjectId::parse(project) {
                Ok(p) => match state.in_project(&p).await {
                    Ok(s) => s,
                    Err(e) => return refuse(e.to_string()).await,
                },
                Err(e) => return refuse(e).await,
            };
            let who = match principal(&scoped, &user).await {
                Ok(p) => p,
                Err(why) => return refuse(why).await,
            };
            if action_id == message::CLAIM {
                return match crate::app::cases::claim(&scoped, &who, case_id, None).await {
                    Ok(_) => StatusCode::OK.into_response(),
                    Err(e) => refuse(format!("Case {case_id}: {e}")).await,
                };
            }
            let Some(choice) = Choice::from_action(&action_id) else { return StatusCode::OK.into_response() };
            let case = match crate::app::cases::load(&scoped, case_id).await {
                Ok(c) => c,
                Err(e) => return refuse(e.to_string()).await,
            };
            if let Err(e) = arbiter_core::workflow::may_answer(&case, &crate::actor(&who), scoped.clock.now()) {
                return refuse(format!("You cannot answer case {case_id}: {e}")).await;
            }
            let card = match card(&scoped, &case).await {
                Ok(c) => c,
                Err(e) => return refuse(e.to_string()).await,
            };
            let modal = message::answer_modal(&trigger_id, &card, choice, scoped.config.min_rationale_len);
            let Some(slack) = &state.slack else { return StatusCode::OK.into_response() };
            // the trigger expires three seconds after the click
            match tokio::time::timeout(Duration::from_millis(2500), slack.call("views.open", &modal)).await {
                Ok(Ok(_)) => StatusCode::OK.into_response(),
                Ok(Err(e)) => {
                    refuse(format!("Could not open the form: {e}. Answer in the Arbiter console instead.")).await
                }
                Err(_) => refuse("Slack took too long to open the form; click again.".into()).await,
            }
        }
        Interaction::Answer { user, project, case_id, choice, rationale, failure_modes, args } => {
            let errors = |field: &str, why: String| axum::Json(modal_errors(&[(field, why)])).into_response();
            let scoped = match ProjectId::parse(&project) {
                Ok(p) => match state.in_project(&p).await {
                    Ok(s) => s,
                    Err(e) => return errors("rationale", e.to_string()),
                },
                Err(e) => return errors("rationale", e),
            };
            let who = match principal(&scoped, &user).await {
                Ok(p) => p,
                Err(why) => return errors("rationale", why),
            };
            let args = match (choice, args) {
                (Choice::Modify, Some(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(v) => Some(v),
                    Err(e) => return errors("args", format!("these arguments are not JSON: {e}")),
                },
                (Choice::Modify, None) => return errors("args", "give the edited arguments".into()),
                _ => None,
            };
            let input = crate::app::cases::AnswerInput {
                choice: match choice {
                    Choice::Approve => arbiter_api::cases::ReviewerChoice::Approve,
                    Choice::Reject => arbiter_api::cases::ReviewerChoice::Reject,
                    Choice::Modify => arbiter_api::cases::ReviewerChoice::Modify,
                },
                rationale,
                args,
                failure_modes,
                via: Some("slack".into()),
            };
            match crate::app::cases::answer(&scoped, &who, &case_id, input).await {
                // decided: the form closes; the message shows the outcome
                Ok(u) if u.decision.is_some() => StatusCode::OK.into_response(),
                // recorded, and the case needs more: say what, instead of closing silently
                Ok(u) => {
                    let raised = u.events.iter().any(|e| e.kind == "case.requirements_raised");
                    let c = &u.case;
                    let needs = format!(
                        "{} approval(s) of {} from {}",
                        c.escalation.approvals.saturating_sub(c.approvals() as u32),
                        c.escalation.approvals,
                        c.current_reviewers().iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                    let text = if raised {
                        format!(
                            "Your answer is recorded. Your modification needs more than the case asked for: it now \
                             needs {needs} (the policy's check of the modified action)."
                        )
                    } else {
                        format!("Your answer is recorded. The case still needs {needs}.")
                    };
                    axum::Json(message::notice_view("Answer recorded", &text)).into_response()
                }
                Err(e) => errors(error_field(&e), e.to_string()),
            }
        }
        Interaction::Other(_) => StatusCode::OK.into_response(),
    }
}
