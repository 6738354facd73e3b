//! The errors of Arbiter's operations. Every kind has a stable `code` (also
//! in `type` as `urn:arbiter:error:<code>`) that clients can match on, a
//! title and a class; nothing here knows HTTP: each adapter maps the class
//! to its own terms (the API's statuses and problem+json bodies are in
//! `routes/problem.rs`, the console renders the same error as a page).

use arbiter_store::StoreError;

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

/// What kind of failure an error is, for adapters to map to their own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request could not be read at all (bad JSON, bad OTLP).
    Malformed,
    /// A value is wrong or out of range.
    Invalid,
    /// No valid credentials.
    Unauthorized,
    /// Valid credentials, but not allowed to do this.
    Forbidden,
    /// The thing does not exist (or is not the caller's to see).
    NotFound,
    /// The resource does not take this method.
    MethodNotAllowed,
    /// The request conflicts with the current state.
    Conflict,
    /// The body is too large.
    TooLarge,
    /// The path and query are too long.
    UriTooLong,
    /// The body's media type is not one this operation reads.
    UnsupportedMediaType,
    /// Too many requests: wait and retry.
    RateLimited,
    /// Not available now (shutting down, no policy, the store not answering): retry.
    Unavailable,
    /// A bug or a failure inside.
    Internal,
}

impl ApiError {
    /// Its stable code (`invalid_request`, `receipt_consumed`, …).
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// Its title, the same for every error of its code.
    pub fn title(&self) -> &'static str {
        self.parts().2
    }

    /// Its class.
    pub fn class(&self) -> ErrorClass {
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

    fn parts(&self) -> (ErrorClass, &'static str, &'static str) {
        use ErrorClass as C;
        match self {
            ApiError::MalformedJson(_) => (C::Malformed, "malformed_json", "Malformed JSON"),
            ApiError::MalformedTraces(_) => (C::Malformed, "malformed_traces", "Malformed OTLP payload"),
            ApiError::ReceiptInvalid(_) => (C::Invalid, "receipt_invalid", "The receipt does not authorise this call"),
            ApiError::ReceiptConsumed(_) => (C::Conflict, "receipt_consumed", "The receipt was already used"),
            ApiError::Invalid { .. } => (C::Invalid, "invalid_request", "Invalid request"),
            ApiError::InvalidPolicy(_) => (C::Invalid, "invalid_policy", "Invalid policy"),
            ApiError::TooLarge(_) => (C::TooLarge, "payload_too_large", "Payload too large"),
            ApiError::UriTooLong(_) => (C::UriTooLong, "uri_too_long", "URI too long"),
            ApiError::UnsupportedMediaType(_) => {
                (C::UnsupportedMediaType, "unsupported_media_type", "Unsupported media type")
            }
            ApiError::Unauthorized(_) => (C::Unauthorized, "unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => (C::Forbidden, "forbidden", "Forbidden"),
            ApiError::NotFound(_) => (C::NotFound, "not_found", "Not found"),
            ApiError::MethodNotAllowed(_) => (C::MethodNotAllowed, "method_not_allowed", "Method not allowed"),
            ApiError::Conflict(_) => (C::Conflict, "conflict", "Conflict"),
            ApiError::PolicyUndoesLessons(_) => {
                (C::Conflict, "policy_undoes_lessons", "The policy change undoes published lessons")
            }
            ApiError::PolicyChangeUnconfirmed(_) => {
                (C::Conflict, "policy_change_unconfirmed", "Policy change needs confirmation")
            }
            ApiError::Case(e) => {
                use arbiter_core::CaseError as E;
                let (class, title) = match e {
                    E::WrongRole { .. } | E::OwnAction | E::AdminOnly(_) | E::NotYourRole { .. } => {
                        (C::Forbidden, "Forbidden")
                    }
                    E::Invalid { .. } => (C::Invalid, "Invalid request"),
                    E::ModificationDenied { .. } => (C::Invalid, "Modification denied by the policy"),
                    _ => (C::Conflict, "Conflict"),
                };
                (class, e.code(), title)
            }
            ApiError::Unavailable(_) => (C::Unavailable, "unavailable", "Service unavailable"),
            ApiError::RateLimited { .. } => (C::RateLimited, "rate_limited", "Too many requests"),
            ApiError::Internal { .. } => (C::Internal, "internal", "Internal server error"),
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
