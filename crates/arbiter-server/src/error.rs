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

/// The table of error codes: each code's name on the wire, its class (the
/// adapters' statuses follow from it: `routes/problem.rs`) and its title; the
/// problem's `type` is `urn:arbiter:error:<code>`. docs/api.md's table is
/// checked against it.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $class:ident, $title:literal;)*) => {
        /// Every error code Arbiter answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// Its name on the wire (`invalid_request`, `receipt_consumed`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            /// Its class.
            pub fn class(self) -> ErrorClass {
                match self { $(Code::$variant => ErrorClass::$class),* }
            }

            /// Its title, the same for every error of the code.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title),* }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON.
    MalformedJson = "malformed_json", Malformed, "Malformed JSON";
    /// An OTLP export that cannot be decoded.
    MalformedTraces = "malformed_traces", Malformed, "Malformed OTLP payload";
    /// A receipt that does not authorise the call.
    ReceiptInvalid = "receipt_invalid", Invalid, "The receipt does not authorise this call";
    /// A receipt already used by another consumer.
    ReceiptConsumed = "receipt_consumed", Conflict, "The receipt was already used";
    /// A value of the wrong shape or out of range.
    InvalidRequest = "invalid_request", Invalid, "Invalid request";
    /// A policy document with errors.
    InvalidPolicy = "invalid_policy", Invalid, "Invalid policy";
    /// The body is over the limit.
    PayloadTooLarge = "payload_too_large", TooLarge, "Payload too large";
    /// The path and query are over the limit.
    UriTooLong = "uri_too_long", UriTooLong, "URI too long";
    /// A body of a media type the operation does not read.
    UnsupportedMediaType = "unsupported_media_type", UnsupportedMediaType, "Unsupported media type";
    /// No valid credentials.
    Unauthorized = "unauthorized", Unauthorized, "Unauthorized";
    /// Valid credentials that may not do this.
    Forbidden = "forbidden", Forbidden, "Forbidden";
    /// A case rule: none of the roles the case's tier accepts.
    WrongRole = "wrong_role", Forbidden, "Forbidden";
    /// A case rule: answering for one's own agent.
    OwnAction = "own_action", Forbidden, "Forbidden";
    /// A case rule: only an admin may do this.
    AdminOnly = "admin_only", Forbidden, "Forbidden";
    /// A case rule: speaking for a role one lacks.
    NotYourRole = "not_your_role", Forbidden, "Forbidden";
    /// The thing does not exist (or is not the caller's to see).
    NotFound = "not_found", NotFound, "Not found";
    /// The path does not take this method.
    MethodNotAllowed = "method_not_allowed", MethodNotAllowed, "Method not allowed";
    /// The request conflicts with the current state.
    Conflict = "conflict", Conflict, "Conflict";
    /// A case rule: the case is decided or closed.
    NotOpen = "not_open", Conflict, "Conflict";
    /// A case rule: someone else holds the case.
    CaseHeld = "case_held", Conflict, "Conflict";
    /// A case rule: the caller does not hold the case.
    NotHolder = "not_holder", Conflict, "Conflict";
    /// A case rule: the caller already approved these arguments.
    AlreadyAnswered = "already_answered", Conflict, "Conflict";
    /// A case rule: a command for the other kind of case.
    WrongKind = "wrong_kind", Conflict, "Conflict";
    /// A case rule: the review cannot close yet.
    ReviewIncomplete = "review_incomplete", Conflict, "Conflict";
    /// The policy denies the action as modified.
    ModificationDenied = "modification_denied", Invalid, "Modification denied by the policy";
    /// A policy version that would change too many verdicts, not forced.
    PolicyChangeUnconfirmed = "policy_change_unconfirmed", Conflict, "Policy change needs confirmation";
    /// A policy version that undoes published lessons, not forced.
    PolicyUndoesLessons = "policy_undoes_lessons", Conflict, "The policy change undoes published lessons";
    /// The key proposed faster than its limit.
    RateLimited = "rate_limited", RateLimited, "Too many requests";
    /// Not available now: retry.
    Unavailable = "unavailable", Unavailable, "Service unavailable";
    /// A bug or a failure inside.
    Internal = "internal", Internal, "Internal server error";
}

impl Code {
    /// The code of a case rule's refusal (the only map from the core's
    /// refusals to the codes clients match on).
    pub fn of_case(e: &arbiter_core::CaseError) -> Code {
        use arbiter_core::CaseError as E;
        match e {
            E::NotOpen(_) => Code::NotOpen,
            E::WrongRole { .. } => Code::WrongRole,
            E::AlreadyAnswered => Code::AlreadyAnswered,
            E::ModificationDenied { .. } => Code::ModificationDenied,
            E::OwnAction => Code::OwnAction,
            E::HeldByOther { .. } => Code::CaseHeld,
            E::NotHolder => Code::NotHolder,
            E::AdminOnly(_) => Code::AdminOnly,
            E::WrongKind(..) => Code::WrongKind,
            E::Incomplete(_) => Code::ReviewIncomplete,
            E::NotYourRole { .. } => Code::NotYourRole,
            E::Invalid { .. } => Code::InvalidRequest,
        }
    }
}

impl ApiError {
    /// Its entry in the table of codes.
    pub fn code_entry(&self) -> Code {
        match self {
            ApiError::MalformedJson(_) => Code::MalformedJson,
            ApiError::MalformedTraces(_) => Code::MalformedTraces,
            ApiError::ReceiptInvalid(_) => Code::ReceiptInvalid,
            ApiError::ReceiptConsumed(_) => Code::ReceiptConsumed,
            ApiError::Invalid { .. } => Code::InvalidRequest,
            ApiError::InvalidPolicy(_) => Code::InvalidPolicy,
            ApiError::TooLarge(_) => Code::PayloadTooLarge,
            ApiError::UriTooLong(_) => Code::UriTooLong,
            ApiError::UnsupportedMediaType(_) => Code::UnsupportedMediaType,
            ApiError::Unauthorized(_) => Code::Unauthorized,
            ApiError::Forbidden(_) => Code::Forbidden,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::MethodNotAllowed(_) => Code::MethodNotAllowed,
            ApiError::Conflict(_) => Code::Conflict,
            ApiError::PolicyUndoesLessons(_) => Code::PolicyUndoesLessons,
            ApiError::PolicyChangeUnconfirmed(_) => Code::PolicyChangeUnconfirmed,
            ApiError::Case(e) => Code::of_case(e),
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::RateLimited { .. } => Code::RateLimited,
            ApiError::Internal { .. } => Code::Internal,
        }
    }

    /// Its stable code (`invalid_request`, `receipt_consumed`, …).
    pub fn code(&self) -> &'static str {
        self.code_entry().as_str()
    }

    /// Its title, the same for every error of its code.
    pub fn title(&self) -> &'static str {
        self.code_entry().title()
    }

    /// Its class.
    pub fn class(&self) -> ErrorClass {
        self.code_entry().class()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The table names each code once.
    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{} twice", c.as_str());
        }
    }
}
