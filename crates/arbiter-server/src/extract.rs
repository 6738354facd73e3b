//! Request extractors: the caller's identity and size-limited JSON bodies whose
//! errors name the offending field.

use crate::AppState;
use crate::error::ApiError;
use arbiter_core::{Principal, Role};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The authenticated caller.
pub struct Auth(pub Principal);

impl Auth {
    /// Refuse unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<&Principal, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "{what} needs a key with role {}; this key is `{}`",
                names.join(" or "),
                self.0.role
            )))
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Ok(Auth(caller(parts, state).await?.0))
    }
}

/// The header that names the project a request acts in (people only: an
/// agent key acts in its own project).
pub const PROJECT_HEADER: &str = "arbiter-project";

/// The caller of a request and the state of the project it acts in, worked
/// out once per request (kept in the request's extensions): the key's
/// principal, acting in the key's project, or in the project the
/// `Arbiter-Project` header names when the key may act there.
async fn caller(parts: &mut Parts, state: &Arc<AppState>) -> Result<(Principal, Arc<AppState>), ApiError> {
    if let Some(done) = parts.extensions.get::<(Principal, Arc<AppState>)>() {
        return Ok(done.clone());
    }
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing API key: send `Authorization: Bearer <key>`".into()))?;
    let text = value.to_str().map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    let key = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::Unauthorized("use `Authorization: Bearer <key>`".into()))?;
    let mut who = state.keys.authenticate(state.root.as_ref(), key.trim(), state.clock.now()).await?;
    let asked = match parts.headers.get(PROJECT_HEADER) {
        None => None,
        Some(v) => {
            let text = v.to_str().map_err(|_| ApiError::invalid("Arbiter-Project", "the header is not text"))?;
            Some(arbiter_core::ProjectId::parse(text.trim()).map_err(|why| ApiError::invalid("Arbiter-Project", why))?)
        }
    };
    if let Some(p) = asked {
        who = act_in(state, &who, p).await?;
    }
    let scoped = state.in_project(&who.project).await?;
    parts.extensions.insert((who.clone(), scoped.clone()));
    Ok((who, scoped))
}

/// `who` (a key's principal, in its own project) as it acts in project
/// `asked`: in its own project as itself; a server admin in any project; a
/// person with a membership in `asked` with the membership's role and tags.
/// Anyone else is refused, saying why.
pub async fn act_in(state: &AppState, who: &Principal, asked: arbiter_core::ProjectId) -> Result<Principal, ApiError> {
    if asked == who.project {
        return Ok(who.clone());
    }
    if who.is_server_admin() {
        return Ok(Principal { project: asked, ..who.clone() });
    }
    if who.role == Role::Agent {
        return Err(ApiError::Forbidden(format!(
            "key `{}` belongs to project `{}` and cannot act in project `{asked}` (an agent key acts only in its own project)",
            who.name, who.project
        )));
    }
    let memberships = state.root.memberships_of(&who.project, &who.name).await?;
    match memberships.into_iter().find(|m| m.project == asked) {
        Some(m) => Ok(Principal { role: m.role, tags: m.tags, project: asked, ..who.clone() }),
        None => Err(ApiError::Forbidden(format!(
            "key `{}` belongs to project `{}` and cannot act in project `{asked}`: it has no role there (an admin of \
             `{asked}` grants one: POST /v1/projects/{asked}/members)",
            who.name, who.project
        ))),
    }
}

/// The projects `who` (in its own project) may act in, by id: its own, those
/// it has a role in, and every project for a server admin.
pub async fn projects_of(state: &AppState, who: &Principal) -> Result<Vec<arbiter_core::ProjectId>, ApiError> {
    let all: Vec<arbiter_core::ProjectId> = state.root.projects().await?.into_iter().map(|p| p.id).collect();
    if who.is_server_admin() {
        return Ok(all);
    }
    let mut mine = vec![who.project.clone()];
    if who.role != Role::Agent {
        mine.extend(state.root.memberships_of(&who.project, &who.name).await?.into_iter().map(|m| m.project));
    }
    Ok(all.into_iter().filter(|p| mine.contains(p)).collect())
}

/// The state of the project a request acts in (see [`Auth`]): every store
/// read and write of the handler goes through its project-scoped store handle.
pub struct Scope(pub Arc<AppState>);

impl FromRequestParts<Arc<AppState>> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Ok(Scope(caller(parts, state).await?.1))
    }
}

/// Read the whole body, refusing more than `limit` bytes with a 413.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = src {
            if s.is::<http_body_util::LengthLimitError>() {
                return ApiError::TooLarge(limit);
            }
            src = s.source();
        }
        ApiError::MalformedJson(format!("could not read the request body: {e}"))
    })
}

/// Parse JSON into `T`: syntax errors are 400, shape errors 422 with the path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so that "not JSON" and "wrong shape" get different answers.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("the body is not valid JSON: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "(body)".to_string() } else { path };
        ApiError::invalid(field, e.into_inner().to_string())
    })
}

/// Whether a `Content-Type` value names JSON: `application/json` or any
/// `application/*+json`, compared without case and without parameters.
pub fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

fn require_json(content_type: Option<&str>) -> Result<(), ApiError> {
    match content_type {
        Some(ct) if is_json(ct) => Ok(()),
        Some(ct) => {
            Err(ApiError::UnsupportedMediaType(format!("send JSON with `Content-Type: application/json`, not `{ct}`")))
        }
        None => Err(ApiError::UnsupportedMediaType(
            "the body is JSON but the request has no Content-Type; send `Content-Type: application/json`".into(),
        )),
    }
}

fn content_type(req: &Request) -> Option<String> {
    req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)").to_string())
}

/// The query string parsed into `T`; errors are problem+json naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "(query)".to_string() } else { path };
            ApiError::invalid(field, format!("bad query string: {}", e.into_inner()))
        })
    }
}

/// Path parameters parsed into `T`; a value that does not fit (a number too
/// large, say) is problem+json naming the parameter, not the framework's text.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => {
                Err(ApiError::invalid("(path)", format!("bad path parameter: {}", rejection.body_text())))
            }
        }
    }
}

/// A JSON request body of type `T`, limited to the configured size.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        require_json(content_type(&req).as_deref())?;
        let bytes = read_body(req.into_body(), state.config.max_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: an empty body is `None` (e.g. `POST /v1/cases/{id}/claim` without options).
impl<T: DeserializeOwned> axum::extract::OptionalFromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Option<Self>, Self::Rejection> {
        let ct = content_type(&req);
        let bytes = read_body(req.into_body(), state.config.max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        require_json(ct.as_deref())?;
        parse_json(&bytes).map(|v| Some(JsonBody(v)))
    }
}
