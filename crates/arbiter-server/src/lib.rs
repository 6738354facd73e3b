//! Arbiter's server. [`app`] holds every operation, written once, with an
//! error type that knows no HTTP; the adapters are thin layers over it:
//! `routes` (the HTTP API) and [`console`] (the reviewer pages), with chat
//! adapters (Slack approvals) to come beside them, none weaker than another.
//! [`jobs`] are the background loops. [`serve`] takes an already-bound
//! listener and a shutdown future, so tests bind port 0 and stop the server
//! cleanly; the background work runs beside it and stops with it.

pub mod app;
pub mod auth;
mod config;
pub mod console;
mod error;
mod extract;
pub mod jobs;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod outbound;
pub mod receipts;
pub(crate) mod routes;
mod server;
pub mod slack;
mod state;
pub mod telemetry;
mod waiters;

pub use config::{Config, ConfigError, DEFAULT_EVENT_TIME_SKEW, RoleRates, SlackConfig, SlackRoute, SsoConfig};
pub use error::ApiError;
pub use server::{Bootstrap, DEFAULT_POLICY, RunningServer, bootstrap, router, serve, serve_otlp};
pub use state::{AppState, actor};
