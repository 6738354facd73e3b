//! The API's routes, one module per resource.

mod audit;
pub(crate) mod cases;
mod decisions;
mod keys;
mod ops;
mod policy;
pub(crate) mod reviews;
mod webhooks;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// Every route, with the paths documented in `docs/openapi.json`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/decisions", post(decisions::propose))
        .route("/v1/decisions/{id}", get(decisions::get))
        .route("/v1/decisions/{id}/outcome", post(decisions::outcome))
        .route("/v1/queue", get(cases::queue))
        .route("/v1/cases", get(cases::list))
        .route("/v1/cases/{id}", get(cases::get))
        .route("/v1/cases/{id}/claim", post(cases::claim))
        .route("/v1/cases/{id}/release", post(cases::release))
        .route("/v1/cases/{id}/reassign", post(cases::reassign))
        .route("/v1/cases/{id}/decision", post(cases::decide))
        .route("/v1/cases/{id}/comments", post(cases::comment))
        .route("/v1/cases/{id}/events", get(cases::events))
        .route("/v1/cases/{id}/chain", get(cases::chain))
        .route("/v1/reviews", post(reviews::open))
        .route("/v1/reviews/{id}", get(reviews::get))
        .route("/v1/reviews/{id}/stages", post(reviews::stage))
        .route("/v1/reviews/{id}/interventions/{index}", post(reviews::intervention))
        .route("/v1/reviews/{id}/close", post(reviews::close))
        .route("/v1/reviews/{id}/reopen", post(reviews::reopen))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/v1/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/drift", get(ops::drift))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/events", get(audit::events))
        .route("/v1/policy", get(policy::active).put(policy::put))
        .route("/v1/policy/versions", get(policy::versions))
        .route("/v1/policy/versions/{hash}", get(policy::version))
        .route("/v1/policy/versions/{hash}/activate", post(policy::activate))
        .route("/v1/policy/versions/{hash}/backtest", post(policy::backtest))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(crate::console::router())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .with_state(state)
}

/// The route table as (method, path) pairs, for the OpenAPI completeness test.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/decisions"),
    ("get", "/v1/decisions/{id}"),
    ("post", "/v1/decisions/{id}/outcome"),
    ("get", "/v1/queue"),
    ("get", "/v1/cases"),
    ("get", "/v1/cases/{id}"),
    ("post", "/v1/cases/{id}/claim"),
    ("post", "/v1/cases/{id}/release"),
    ("post", "/v1/cases/{id}/reassign"),
    ("post", "/v1/cases/{id}/decision"),
    ("post", "/v1/cases/{id}/comments"),
    ("get", "/v1/cases/{id}/events"),
    ("get", "/v1/cases/{id}/chain"),
    ("post", "/v1/reviews"),
    ("get", "/v1/reviews/{id}"),
    ("post", "/v1/reviews/{id}/stages"),
    ("post", "/v1/reviews/{id}/interventions/{index}"),
    ("post", "/v1/reviews/{id}/close"),
    ("post", "/v1/reviews/{id}/reopen"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/webhooks"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/deliveries"),
    ("get", "/v1/drift"),
    ("get", "/v1/audit/verify"),
    ("get", "/v1/audit/events"),
    ("get", "/v1/policy"),
    ("put", "/v1/policy"),
    ("get", "/v1/policy/versions"),
    ("get", "/v1/policy/versions/{hash}"),
    ("post", "/v1/policy/versions/{hash}/activate"),
    ("post", "/v1/policy/versions/{hash}/backtest"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("delete", "/v1/keys/{id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];
