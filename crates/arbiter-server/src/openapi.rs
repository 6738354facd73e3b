//! The OpenAPI document, committed at `docs/openapi.json` and served at `/openapi.json`.

/// The OpenAPI 3.1 document describing this API.
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

/// Every (method, path) the router serves, for the completeness test.
pub use crate::routes::ROUTES;
