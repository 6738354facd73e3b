//! Errors as the API answers them: `application/problem+json` (RFC 9457),
//! with the HTTP status of each error class, `Retry-After` where waiting
//! helps and `WWW-Authenticate` on 401.

use crate::error::{ApiError, ErrorClass};
use arbiter_api::problem::Problem;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The HTTP status of an error class.
pub fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Malformed => StatusCode::BAD_REQUEST,
        ErrorClass::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorClass::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorClass::Forbidden => StatusCode::FORBIDDEN,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorClass::UriTooLong => StatusCode::URI_TOO_LONG,
        ErrorClass::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        status_of(self.class())
    }
}

impl ApiError {
    /// The problem document this error is answered with: the wire type every
    /// client reads ([`arbiter_api::problem::Problem`]), so the shape is
    /// written once.
    pub fn problem(&self) -> Problem {
        use arbiter_core::CaseError;
        let code = self.code_entry();
        let mut p = Problem {
            kind: format!("urn:arbiter:error:{}", code.as_str()),
            code: code.as_str().to_string(),
            title: code.title().to_string(),
            status: self.status().as_u16(),
            detail: self.detail(),
            field: None,
            errors: None,
            triggers: None,
            needed: None,
            have: None,
            impact: None,
            lessons: None,
        };
        match self {
            ApiError::Invalid { field, .. } => p.field = Some(field.clone()),
            ApiError::PolicyChangeUnconfirmed(impact) => p.impact = serde_json::to_value(impact).ok(),
            ApiError::PolicyUndoesLessons(lessons) => p.lessons = Some(lessons.clone()),
            ApiError::Case(CaseError::ModificationDenied { triggers }) => {
                p.field = Some("args".into());
                p.triggers = Some(triggers.clone());
            }
            ApiError::Case(CaseError::WrongRole { needed, have }) => {
                p.needed = Some(needed.clone());
                p.have = Some(have.clone());
            }
            ApiError::InvalidPolicy(errs) => {
                p.errors = Some(
                    errs.0
                        .iter()
                        .map(|e| json!({"line": e.line, "column": e.col, "field": e.field, "message": e.message}))
                        .collect(),
                );
            }
            _ => {}
        }
        p
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = serde_json::to_string(&self.problem()).unwrap_or_else(|_| "{}".into());
        let mut resp = (status, body).into_response();
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
mod table_tests {
    use super::*;
    use crate::error::Code;

    /// docs/api.md's table of errors is the table of codes: every code with
    /// the status its class answers with, and nothing else.
    #[test]
    fn the_documented_errors_are_the_table() {
        let doc = include_str!("../../../../docs/api.md");
        let table = doc.split("## Errors").nth(1).expect("docs/api.md has an Errors section");
        let mut documented = std::collections::BTreeMap::new();
        for line in table.lines().take_while(|l| !l.starts_with("## ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(status) = cells.get(1).and_then(|s| s.parse::<u16>().ok()) else { continue };
            for code in cells[2].split('`').skip(1).step_by(2) {
                documented.insert(code.to_string(), status);
            }
        }
        for c in Code::ALL {
            assert_eq!(
                documented.remove(c.as_str()),
                Some(status_of(c.class()).as_u16()),
                "docs/api.md lists `{}` with the status it is answered with",
                c.as_str()
            );
        }
        assert!(documented.is_empty(), "docs/api.md lists codes the server never answers: {documented:?}");
    }
}

#[cfg(test)]
mod store_outage_tests {
    use super::*;
    use arbiter_store::StoreError;

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
