//! The reviewer console: server-rendered HTML pages at `/`, plain forms, a
//! little hand-written JavaScript (queue refresh, SLA countdown, keyboard
//! navigation). Sign-in exchanges an API key for a stored session behind a
//! signed cookie (HttpOnly, SameSite=Strict); every form carries a CSRF token
//! bound to the session. Roles are checked on the server for every page and
//! form, by the same application layer the API uses.
//!
//! Pages are [maud] templates, which escape every interpolated value at
//! compile time unless it is wrapped in `PreEscaped`; the only such values
//! are the SVG charts that `arbiter_chart` renders (and escapes) itself.
//! One module per page: [`queue`], [`case`], [`review`], [`dashboard`],
//! [`policy`], [`lessons`] (with search), [`suggestions`]; sign-in and sessions in [`auth`]; the page frame in
//! [`layout`]; form parsing and option lists in [`forms`].

mod auth;
mod case;
mod dashboard;
mod forms;
mod history;
pub(crate) mod layout;
mod lessons;
mod policy;
mod queue;
mod review;
mod sso;
mod suggestions;
mod trace;

pub use auth::{COOKIE, Viewer, session_value};

use crate::AppState;
use axum::Router;
use axum::http::header;
use axum::response::Redirect;
use axum::routing::{get, post};
use std::sync::Arc;

/// The console's routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/queue") }))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/sso/login", get(sso::start))
        .route("/sso/callback", get(sso::callback))
        .route("/me/key", get(sso::my_key_form).post(sso::my_key))
        .route("/project", post(auth::switch_project))
        .route("/queue", get(queue::page))
        .route("/cases", get(history::cases))
        .route("/reviews", get(history::reviews))
        .route("/audits", get(history::audits))
        .route("/cases/{id}", get(case::page))
        .route("/cases/{id}/act", post(case::act))
        .route("/reviews/{id}", get(review::page))
        .route("/reviews/{id}/act", post(review::act))
        .route("/dashboard", get(dashboard::page))
        .route("/lessons", get(lessons::list))
        .route("/lessons/{id}", get(lessons::page))
        .route("/lessons/{id}/edit", post(lessons::edit))
        .route("/search", get(lessons::search))
        .route("/decisions/{id}", get(lessons::decision))
        .route("/suggestions", get(suggestions::page))
        .route("/suggestions/refresh", post(suggestions::refresh))
        .route("/suggestions/{id}", post(suggestions::act))
        .route("/policy", get(policy::page))
        .route("/policy/backtest", post(policy::backtest))
        .route("/policy/activate", post(policy::activate))
        .route("/static/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/static/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
}

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");
