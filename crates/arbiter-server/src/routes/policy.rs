//! `GET|PUT /v1/policy`, `GET /v1/policy/versions[/{hash}]`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Scope;
use crate::extract::{Auth, read_body};
use crate::extract::{Path, Query};
use arbiter_api::policy::{ActivateQuery, AlwaysDenied, AlwaysDeniedRequest, BacktestRequest, PolicyView};
use arbiter_core::Role;
use arbiter_store::PolicyVersionSummary;
use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};

/// The active policy.
pub async fn active(Scope(state): Scope, auth: Auth) -> Result<Json<PolicyView>, ApiError> {
    auth.require(&[Role::Reviewer, Role::Admin], "reading the policy")?;
    let v = state.store.active_policy().await?.ok_or_else(|| ApiError::NotFound("no policy is active".into()))?;
    let triggers = state.policy().filter(|p| p.hash() == v.hash).map_or(0, |p| p.trigger_count());
    Ok(Json(PolicyView { version: v, triggers, active: true }))
}

/// A policy file sent as the request body.
async fn yaml_body(state: &AppState, req: Request) -> Result<String, ApiError> {
    // YAML media types only, as the API document says: a missing type is
    // refused too, so a proxy that drops it fails loudly
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let media = ct.as_deref().and_then(|c| c.split(';').next()).unwrap_or("").trim().to_ascii_lowercase();
    if !["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"].contains(&media.as_str()) {
        return Err(ApiError::UnsupportedMediaType(match ct {
            Some(ct) => format!("send the policy file itself with `Content-Type: application/yaml`, not `{ct}`"),
            None => {
                "the request has no Content-Type; send the policy file with `Content-Type: application/yaml`".into()
            }
        }));
    }
    let bytes = read_body(req.into_body(), state.config.max_body_bytes).await?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid("(body)", "the policy must be UTF-8 text"))
}

/// Store a new policy version (YAML body) as a draft, without activating it:
/// to backtest it, link it to an intervention, and activate it later.
pub async fn draft(Scope(state): Scope, auth: Auth, req: Request) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    let who = auth.require(&[Role::Admin], "storing policy versions")?.clone();
    let source = yaml_body(&state, req).await?;
    let (version, created) = crate::app::policy::store_draft(&state, &source, &who.name).await?;
    let triggers = arbiter_policy::Policy::parse(&version.source).map_or(0, |p| p.trigger_count());
    let active = state.policy().is_some_and(|p| p.hash() == version.hash);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(PolicyView { version, triggers, active })))
}

/// Store a new policy version (YAML body) and activate it.
pub async fn put(
    Scope(state): Scope,
    auth: Auth,
    Query(q): Query<ActivateQuery>,
    req: Request,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    let who = auth.require(&[Role::Admin], "changing the policy")?.clone();
    let source = yaml_body(&state, req).await?;
    let (policy, created, _) = crate::app::policy::activate(&state, &source, &who.name, q.force).await?;
    let version = state
        .store
        .policy_version(policy.hash())
        .await?
        .ok_or_else(|| ApiError::internal_msg("the stored policy version vanished"))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(PolicyView { version, triggers: policy.trigger_count(), active: true })))
}

/// Every stored version, newest first.
pub async fn versions(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<PolicyVersionSummary>>, ApiError> {
    auth.require(&[Role::Reviewer, Role::Admin], "reading policy versions")?;
    Ok(Json(state.store.policy_versions().await?))
}

/// One stored version, with its source.
pub async fn version(Scope(state): Scope, auth: Auth, Path(hash): Path<String>) -> Result<Json<PolicyView>, ApiError> {
    auth.require(&[Role::Reviewer, Role::Admin], "reading policy versions")?;
    let v = crate::app::policy::version(&state, &hash).await?;
    let active = state.policy().is_some_and(|p| p.hash() == v.hash);
    let triggers = arbiter_policy::Policy::parse(&v.source).map_or(0, |p| p.trigger_count());
    Ok(Json(PolicyView { version: v, triggers, active }))
}

/// Activate a stored version again (roll back or forward); recorded as a `policy.activated` event.
pub async fn activate(
    Scope(state): Scope,
    auth: Auth,
    Path(hash): Path<String>,
    Query(q): Query<ActivateQuery>,
) -> Result<Json<PolicyView>, ApiError> {
    let who = auth.require(&[Role::Admin], "activating policies")?.clone();
    let v = crate::app::policy::version(&state, &hash).await?;
    let (policy, _, _) = crate::app::policy::activate(&state, &v.source, &who.name, q.force).await?;
    Ok(Json(PolicyView { version: v, triggers: policy.trigger_count(), active: true }))
}

/// Replay the decisions with recorded outcomes through a stored version, beside the active one.
pub async fn backtest(
    Scope(state): Scope,
    auth: Auth,
    Path(hash): Path<String>,
    body: Option<crate::extract::JsonBody<BacktestRequest>>,
) -> Result<Json<arbiter_policy::backtest::BacktestReport>, ApiError> {
    auth.require(&[Role::Reviewer, Role::Admin], "backtesting policies")?;
    let req = body.map(|b| b.0).unwrap_or_default();
    let report = crate::app::policy::backtest(&state, &hash, req.against.as_deref(), req.limit).await?;
    Ok(Json(report))
}

/// Which of the given actions the active policy denies whatever the call
/// (`Policy::always_denies`). Agents may ask: the answer reveals only refusals
/// they would meet by trying, never the policy's conditions. The MCP gateway
/// hides such tools from its tool list.
pub async fn always_denied(
    Scope(state): Scope,
    auth: Auth,
    crate::extract::JsonBody(req): crate::extract::JsonBody<AlwaysDeniedRequest>,
) -> Result<Json<AlwaysDenied>, ApiError> {
    auth.require(&[Role::Agent, Role::Reviewer, Role::Admin], "checking which actions the policy always denies")?;
    Ok(Json(crate::app::policy::always_denied(&state, req.actions)?))
}
