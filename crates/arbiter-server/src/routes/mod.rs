//! The API's routes, one module per resource.

mod audit;
pub(crate) mod cases;
mod decisions;
mod keys;
mod learning;
mod ops;
mod people;
mod policy;
pub mod problem;
mod projects;
mod receipts;
pub(crate) mod reviews;
pub mod traces;
mod webhooks;

use crate::AppState;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The API's routes, recorded as they are registered, so the OpenAPI
/// document is checked against exactly what is served.
struct Api {
    router: Router<Arc<AppState>>,
    table: Vec<(&'static str, &'static str)>,
}

impl Api {
    fn on<H, T>(mut self, method: &'static str, path: &'static str, handler: H) -> Self
    where
        H: axum::handler::Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let route = match method {
            "get" => get(handler),
            "post" => post(handler),
            "put" => axum::routing::put(handler),
            "delete" => axum::routing::delete(handler),
            "patch" => axum::routing::patch(handler),
            other => unreachable!("no method {other} in the API"),
        };
        self.table.push((method, path));
        self.router = self.router.route(path, route);
        self
    }
}

fn api() -> Api {
    Api { router: Router::new(), table: Vec::new() }
        .on("get", "/v1/projects", projects::list)
        .on("post", "/v1/projects", projects::create)
        .on("get", "/v1/projects/{id}/members", projects::members)
        .on("post", "/v1/projects/{id}/members", projects::grant)
        .on("delete", "/v1/projects/{id}/members/{member}", projects::revoke)
        .on("post", "/v1/decisions", decisions::propose)
        .on("get", "/v1/decisions/{id}", decisions::get)
        .on("post", "/v1/decisions/{id}/outcome", decisions::outcome)
        .on("get", "/v1/decisions/{id}/trace", traces::decision_trace)
        .on("get", "/v1/decisions/{id}/replay", traces::replay_bundle)
        .on("post", "/v1/decisions/{id}/consume", receipts::consume)
        .on("post", "/v1/decisions/{id}/withdraw", decisions::withdraw)
        .on("post", "/v1/decisions/{id}/result", decisions::tool_result)
        .on("get", "/v1/receipts/keys", receipts::keys)
        .on("post", "/v1/receipts/keys/rotate", receipts::rotate)
        .on("post", "/v1/traces", traces::ingest)
        .on("get", "/v1/traces/{trace_id}", traces::trace)
        .on("get", "/v1/queue", cases::queue)
        .on("get", "/v1/cases", cases::list)
        .on("get", "/v1/cases/{id}", cases::get)
        .on("post", "/v1/cases/{id}/claim", cases::claim)
        .on("post", "/v1/cases/{id}/release", cases::release)
        .on("post", "/v1/cases/{id}/reassign", cases::reassign)
        .on("post", "/v1/cases/{id}/decision", cases::decide)
        .on("post", "/v1/cases/{id}/label", cases::label)
        .on("post", "/v1/cases/{id}/comments", cases::comment)
        .on("get", "/v1/cases/{id}/events", cases::events)
        .on("get", "/v1/cases/{id}/chain", cases::chain)
        .on("get", "/v1/cases/{id}/insights", learning::insights)
        .on("post", "/v1/reviews", reviews::open)
        .on("get", "/v1/reviews/{id}", reviews::get)
        .on("post", "/v1/reviews/{id}/stages", reviews::stage)
        .on("post", "/v1/reviews/{id}/interventions/{index}", reviews::intervention)
        .on("post", "/v1/reviews/{id}/interventions/{index}/check", learning::check_intervention)
        .on("post", "/v1/reviews/{id}/close", reviews::close)
        .on("post", "/v1/reviews/{id}/reopen", reviews::reopen)
        .on("get", "/v1/lessons", learning::list)
        .on("post", "/v1/lessons", learning::create)
        .on("get", "/v1/lessons/{id}", learning::get)
        .on("patch", "/v1/lessons/{id}", learning::update)
        .on("get", "/v1/search", learning::search)
        .on("get", "/v1/guidance", learning::guidance)
        .on("get", "/v1/datasets/reviewed", learning::dataset)
        .on("get", "/v1/suggestions", learning::suggestions)
        .on("post", "/v1/suggestions/refresh", learning::refresh_suggestions)
        .on("post", "/v1/suggestions/{id}/accept", learning::accept_suggestion)
        .on("post", "/v1/suggestions/{id}/dismiss", learning::dismiss_suggestion)
        .on("get", "/v1/webhooks", webhooks::list)
        .on("post", "/v1/webhooks", webhooks::create)
        .on("delete", "/v1/webhooks/{id}", webhooks::delete)
        .on("get", "/v1/webhooks/{id}/deliveries", webhooks::deliveries)
        .on("get", "/v1/drift", ops::drift)
        .on("get", "/v1/drift/episodes", ops::drift_episodes)
        .on("get", "/v1/drift/episodes/{id}", ops::drift_episode)
        .on("post", "/v1/drift/episodes/{id}/acknowledge", ops::acknowledge_drift_episode)
        .on("post", "/v1/admin/clock", ops::clock)
        .on("get", "/v1/audit/verify", audit::verify)
        .on("get", "/v1/audit/events", audit::events)
        .on("get", "/v1/policy", policy::active)
        .on("put", "/v1/policy", policy::put)
        .on("post", "/v1/policy/always-denied", policy::always_denied)
        .on("get", "/v1/policy/versions", policy::versions)
        .on("post", "/v1/policy/versions", policy::draft)
        .on("get", "/v1/policy/versions/{hash}", policy::version)
        .on("post", "/v1/policy/versions/{hash}/activate", policy::activate)
        .on("post", "/v1/policy/versions/{hash}/backtest", policy::backtest)
        .on("get", "/v1/people", people::list)
        .on("put", "/v1/people/{name}/slack", people::link_slack)
        .on("get", "/v1/keys", keys::list)
        .on("post", "/v1/keys", keys::create)
        .on("delete", "/v1/keys/{id}", keys::revoke)
        .on("post", "/v1/keys/{id}/rotate", keys::rotate)
        .on("get", "/healthz", ops::healthz)
        .on("get", "/readyz", ops::readyz)
        .on("get", "/metrics", ops::metrics)
        .on("get", "/openapi.json", ops::openapi)
}

/// Every API route as `(method, path)`, exactly as the router registers them.
pub fn table() -> Vec<(&'static str, &'static str)> {
    api().table
}

/// Every route: the API, the console, and problem+json fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    api()
        .router
        .merge(crate::console::router())
        // Slack's interactivity URL: verified by the app's signing secret, not an API key
        .route("/slack/interactions", axum::routing::post(crate::slack::interactions))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn(uri_limit))
        .with_state(state)
}

/// A request line too long to read is refused as problem+json, like every
/// other error, before any route sees it.
async fn uri_limit(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > crate::error::MAX_URI_BYTES {
        return crate::ApiError::UriTooLong(len).into_response();
    }
    next.run(req).await
}
