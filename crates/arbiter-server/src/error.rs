//! API errors as `application/problem+json` (RFC 9457). Every kind has a stable
//! `code` (also in `type` as `urn:arbiter:error:<code>`) that clients can match on.

use arbiter_store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The longest path and query the API reads, in bytes. (Past 64 KiB the HTTP
/// layer itself refuses the request line; [`crate::listener`] turns that
/// answer into the same problem.)
pub const MAX_URI_BYTES: usize = 16 * 1024;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON.
    #[error("{0}")]
    MalformedJson(String),
    /// A receipt that does not authorise the call (forged, altered, expired, other arguments, not allow).
    #[error("{0}")]
    ReceiptInvalid(String),
    /// A receipt already used by another consumer.
    #[error("{0}")]
    ReceiptConsumed(String),
    /// An OTLP trace export that cannot be decoded (nothing of it is stored).
    #[error("{0}")]
    MalformedTraces(String),
    /// The body is JSON of the wrong shape, or a value is out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON path of the offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A policy document has errors.
    #[error("the policy has {} error(s)", .0.0.len())]
    InvalidPolicy(arbiter_policy::PolicyErrors),
    /// The body is larger than the configured limit.
    #[error("the request body is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// The request's path and query are longer than the server reads.
    #[error("the request's path and query are {0} bytes; the limit is {MAX_URI_BYTES}: send large values in a body")]
    UriTooLong(usize),
    /// The content type is not one this endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No key, or a key that is unknown, malformed or revoked.
    #[error("{0}")]
    Unauthorized(String),
    /// The key is valid but its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (or the caller may not know it exists).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A policy activation would change too many verdicts and was not forced.
    #[error(
        "activating this version changes {changed} of the last {replayed} verdicts ({pct:.1}%, more than the {guard:.0}% guard); \
         review the backtest and repeat with force=true to activate it anyway",
        changed = .0.changed, replayed = .0.replayed, pct = .0.share * 100.0, guard = .0.guard * 100.0
    )]
    PolicyChangeUnconfirmed(Box<crate::app::policy::ActivationImpact>),
    /// The version would undo what published lessons made the policy require.
    #[error("activating this version undoes {} published lesson(s): {}; repeat with force to activate it anyway", .0.len(), .0.iter().map(|l| format!("{} ({})", l.title, l.changes.join("; "))).collect::<Vec<_>>().join(" | "))]
    PolicyUndoesLessons(Vec<arbiter_api::policy::UndoneLesson>),
    /// The case rules refused a command; each kind has its own code.
    #[error(transparent)]
    Case(arbiter_core::CaseError),
    /// The key proposed faster than its rate limit.
    #[error("this key may propose at most {limit}; wait {retry_after_ms} ms (Retry-After) and try again")]
    RateLimited {
        /// Milliseconds until a proposal is accepted again.
        retry_after_ms: u64,
        /// The limit that applies.
        limit: arbiter_core::rate::RateLimit,
    },
    /// The server is not ready (e.g. no policy is active).
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside; the context and its cause are logged, not sent.
    #[error("internal error: {context}")]
    Internal {
        /// What the server was doing.
        context: String,
        /// What failed underneath, kept for the log.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// What to tell the user: internal details stay in the log ([`ApiError::log`]).
    pub fn detail(&self) -> String {
        match self {
            ApiError::Internal { .. } => "something went wrong inside Arbiter; the server log has the details".into(),
            other => other.to_string(),
        }
    }

    /// Log an internal error with its whole chain of causes; other errors are
    /// the caller's, not the server's, and are not logged. Called once per
    /// failed request, where the error becomes a response or a console message.
    pub fn log(&self) {
        if let ApiError::Internal { .. } = self {
            let mut chain = self.to_string();
            let mut cause = std::error::Error::source(self);
            while let Some(c) = cause {
                chain.push_str(": ");
                chain.push_str(&c.to_string());
                cause = c.source();
            }
            tracing::error!(error = %chain, "internal error");
        }
    }

    /// Something broke inside while doing `context`, caused by `source`.
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ApiError {
        ApiError::Internal { context: context.into(), source: Some(source.into()) }
    }

    /// Something broke inside, with no underlying error to keep.
    pub fn internal_msg(context: impl Into<String>) -> ApiError {
        ApiError::Internal { context: context.into(), source: None }
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            ApiError::MalformedTraces(_) => (StatusCode::BAD_REQUEST, "malformed_traces", "Malformed OTLP payload"),
            ApiError::ReceiptInvalid(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "receipt_invalid", "The receipt does not authorise this call")
            }
            ApiError::ReceiptConsumed(_) => (StatusCode::CONFLICT, "receipt_consumed", "The receipt was already used"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", "Invalid request"),
            ApiError::InvalidPolicy(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy", "Invalid policy"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large"),
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long", "URI too long"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported media type")
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::PolicyUndoesLessons(_) => {
                (StatusCode::CONFLICT, "policy_undoes_lessons", "The policy change undoes published lessons")
            }
            ApiError::PolicyChangeUnconfirmed(_) => {
                (StatusCode::CONFLICT, "policy_change_unconfirmed", "Policy change needs confirmation")
            }
            ApiError::Case(e) => {
                use arbiter_core::CaseError as E;
                let (status, title) = match e {
                    E::WrongRole { .. } | E::OwnAction | E::AdminOnly(_) | E::NotYourRole { .. } => {
                        (StatusCode::FORBIDDEN, "Forbidden")
                    }
                    E::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid request"),
                    E::ModificationDenied { .. } => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "Modification denied by the policy")
                    }
                    _ => (StatusCode::CONFLICT, "Conflict"),
                };
                (status, e.code(), title)
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests"),
            ApiError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error"),
        }
    }

    /// Shorthand for a 422 naming a field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Case(arbiter_core::CaseError::Invalid { field, message }) => {
                ApiError::Invalid { field, message }
            }
            StoreError::Case(e) => ApiError::Case(e),
            StoreError::Closed => ApiError::Unavailable("the server is shutting down".into()),
            StoreError::Unavailable(why) => {
                tracing::warn!(%why, "the store is not answering");
                ApiError::Unavailable(format!("the store is not answering ({why}); try again shortly"))
            }
            other => ApiError::internal("the store failed", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let (status, code, title) = self.parts();
        let detail = self.detail();
        let mut body = json!({
            "type": format!("urn:arbiter:error:{code}"),
            "code": code,
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        match &self {
            ApiError::Invalid { field, .. } => body["field"] = json!(field),
            ApiError::PolicyChangeUnconfirmed(impact) => body["impact"] = json!(impact),
            ApiError::PolicyUndoesLessons(lessons) => body["lessons"] = json!(lessons),
            ApiError::Case(arbiter_core::CaseError::ModificationDenied { triggers }) => {
                body["field"] = json!("args");
                body["triggers"] = json!(triggers);
            }
            ApiError::Case(arbiter_core::CaseError::WrongRole { needed, have }) => {
                body["needed"] = json!(needed);
                body["have"] = json!(have);
            }
            ApiError::InvalidPolicy(errs) => {
                body["errors"] = errs
                    .0
                    .iter()
                    .map(|e| json!({"line": e.line, "column": e.col, "field": e.field, "message": e.message}))
                    .collect();
            }
            _ => {}
        }
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let ApiError::RateLimited { retry_after_ms, .. } = &self {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let ApiError::Unavailable(_) = &self {
            // the store restarting, a failover, the server shutting down: seconds, not minutes
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"arbiter\""));
        }
        resp
    }
}

#[cfg(test)]
mod store_outage_tests {
    use super::*;

    /// The trust review: during a PostgreSQL outage every request answered
    /// `500 internal`; a store that does not answer is `503 unavailable`, with
    /// `Retry-After`, as docs/api.md promises.
    #[test]
    fn a_store_that_does_not_answer_is_unavailable_not_a_bug() {
        let e: ApiError = StoreError::Unavailable("cannot connect to PostgreSQL at db:5432: refused".into()).into();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
