//! Extractors that turn every malformed request into the error envelope.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use modelplane_service::{auth, Principal};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A JSON body. Unknown fields, wrong types and bad enum values are refused
/// with a 400 naming the field; oversize bodies with 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A write body that may also carry `"stage": true`: the flag is taken out
/// and the rest read as `T`, so `T` still refuses unknown fields and errors
/// still name the field.
pub struct StageableJson<T> {
    pub body: T,
    /// Record the write as a staged change instead of applying it.
    pub stage: bool,
}

impl<S, T> FromRequest<S> for StageableJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiJson(mut fields) =
            ApiJson::<serde_json::Map<String, serde_json::Value>>::from_request(req, state).await?;
        let stage = match fields.remove("stage") {
            None => false,
            Some(serde_json::Value::Bool(stage)) => stage,
            Some(_) => return Err(ApiError::validation("stage", "must be true or false")),
        };
        let body = parse_value(serde_json::Value::Object(fields))?;
        Ok(StageableJson { body, stage })
    }
}

/// An optional JSON body (for a `DELETE`): none when the body is empty or
/// blank, else parsed like [`ApiJson`].
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        parse_json(&bytes).map(|body| OptionalJson(Some(body)))
    }
}

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
    } else {
        ApiError::new(
            ErrorCode::ValidationError,
            format!("could not read the body: {e}"),
        )
    }
}

/// Parses JSON, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(json_error)
}

/// Reads a typed value out of already-parsed JSON (one item of a bulk
/// request), naming the offending field in the error.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(json_error)
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.to_string();
    let field = field_of(path, &message, "body");
    let message = strip_position(&message);
    if inner.is_syntax() || inner.is_eof() {
        ApiError::validation("body", format!("malformed JSON: {message}"))
    } else {
        ApiError::validation(&field, message)
    }
}

/// The field an error is about: its path, or for a missing or unknown field
/// (where serde gives no path) the name in the message, else `whole`.
fn field_of(path: String, message: &str, whole: &str) -> String {
    if path.is_empty() || path == "." {
        field_from_message(message).unwrap_or_else(|| whole.to_owned())
    } else {
        path
    }
}

/// serde names a missing or unknown field only in its message.
fn field_from_message(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters; repeated keys fill `Vec` fields; unknown ones are refused.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_html_form::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = field_of(path, &message, "query");
                ApiError::validation(&field, message)
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// A UUID path parameter; anything else is a 400 naming `id`.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::validation("id", "missing path parameter"))?;
        Uuid::parse_str(&raw)
            .map(IdPath)
            .map_err(|_| ApiError::validation("id", "must be a UUID"))
    }
}

/// The `{idempotency_key}` path parameter that names a staged change.
pub struct KeyPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(key)| KeyPath(key))
            .map_err(|_| ApiError::validation("idempotency_key", "must be a UTF-8 path segment"))
    }
}

/// The request's `Idempotency-Key` header, if any; the idempotency
/// middleware has already refused a malformed one.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(crate::idempotency::IDEMPOTENCY_KEY) {
            None => Ok(IdempotencyKey(None)),
            Some(value) => value
                .to_str()
                .map(|key| IdempotencyKey(Some(key.to_owned())))
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII")),
        }
    }
}

/// The version in an `If-Match` header (`3`, `"3"` or `W/"3"`), if any.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let raw = value.to_str().unwrap_or_default().trim();
        let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        raw.parse::<i64>()
            .map(|v| IfMatch(Some(v)))
            .map_err(|_| ApiError::validation("If-Match", "must be a model version number"))
    }
}

/// The authenticated caller: `Authorization: Bearer <token>` or `X-Api-Key`.
pub struct Auth(pub Principal);

pub fn token_from(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    parts.headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = token_from(parts).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing API key: send Authorization: Bearer <token> or X-Api-Key",
            )
        })?;
        let principal = auth::authenticate(&state.store, token).await?;
        Ok(Auth(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be deserialised")]
    struct Inner {
        count: u32,
    }

    fn field_of(json: &str) -> String {
        let err = parse_json::<Body>(json.as_bytes()).expect_err("must fail");
        err.details["field"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(field_of("{}"), "name");
        assert_eq!(field_of(r#"{"name": 1}"#), "name");
        assert_eq!(field_of(r#"{"name": "a", "nope": 1}"#), "nope");
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"count": -1}}"#),
            "inner.count"
        );
        assert_eq!(field_of("{"), "body");
        assert_eq!(field_of("[]"), "body");
    }
}
