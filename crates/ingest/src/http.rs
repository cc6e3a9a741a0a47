//! The HTTP client every source shares: base URL and credential from
//! configuration, retries with backoff, bounded bodies, readable errors.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use crate::SourceError;

/// How one source is reached.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// The service's origin, e.g. `https://api.openai.com`; a path prefix is
    /// kept (`http://127.0.0.1:9000/openai`).
    pub base_url: String,
    pub api_key: Option<String>,
    /// Per request, connect to last byte.
    pub timeout: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per retry, with jitter.
    pub backoff: Duration,
    /// The longest a single wait may be, `Retry-After` included.
    pub max_backoff: Duration,
    /// Page size to ask for where the API takes one.
    pub page_size: Option<u32>,
    /// Stop after this many pages (Hugging Face lists millions of repos).
    pub max_pages: Option<u32>,
    /// Extra query parameters sent with the first page (e.g. Hugging Face's
    /// `author`, `filter`, `sort`).
    pub params: Vec<(String, String)>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
}

impl SourceSettings {
    pub fn new(base_url: impl Into<String>) -> SourceSettings {
        SourceSettings {
            base_url: base_url.into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            page_size: None,
            max_pages: None,
            params: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }

    pub fn with_api_key(mut self, key: impl Into<String>) -> SourceSettings {
        self.api_key = Some(key.into());
        self
    }
}

/// A response body that arrived whole with a success status.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Fetched {
    /// Decodes the body as `T`; a body that does not decode is `Malformed`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, SourceError> {
        serde_json::from_slice(&self.body).map_err(|e| SourceError::Malformed {
            url: self.url.clone(),
            detail: e.to_string(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One source's HTTP client.
#[derive(Debug, Clone)]
pub struct SourceClient {
    http: reqwest::Client,
    settings: SourceSettings,
}

impl SourceClient {
    pub fn new(settings: SourceSettings) -> Result<SourceClient, SourceError> {
        Url::parse(&settings.base_url)
            .map_err(|e| SourceError::Config(format!("base_url {:?}: {e}", settings.base_url)))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("modelplane/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Config(e.to_string()))?;
        Ok(SourceClient { http, settings })
    }

    pub fn settings(&self) -> &SourceSettings {
        &self.settings
    }

    /// The API key, or `MissingCredential` for `source`.
    pub fn api_key(&self, source: &'static str) -> Result<&str, SourceError> {
        self.settings
            .api_key
            .as_deref()
            .ok_or(SourceError::MissingCredential(source))
    }

    /// A stable, non-secret name of the configured credential (`key:` and
    /// the first 12 hex digits of its SHA-256), recorded with the models it
    /// saw; None when the source is read without one.
    pub fn credential_id(&self) -> Option<String> {
        self.settings.api_key.as_deref().map(|key| {
            let digest = Sha256::digest(key.as_bytes());
            format!("key:{}", &hex::encode(digest)[..12])
        })
    }

    /// `base_url` + `path` (which starts with `/`), query parameters added.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, SourceError> {
        let base = self.settings.base_url.trim_end_matches('/');
        let mut url = Url::parse(&format!("{base}{path}"))
            .map_err(|e| SourceError::Config(format!("url {base}{path}: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// GET with retries: 429 waits for `Retry-After` (or the service's own
    /// hint), 5xx, timeouts and broken connections back off exponentially;
    /// after `max_attempts` the last failure is returned. Other statuses fail
    /// at once, 401/403 (and a 400 about the API key) as `Auth`.
    pub async fn get(&self, url: Url, headers: &[(&str, String)]) -> Result<Fetched, SourceError> {
        let attempts = self.settings.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= attempts;
            let mut request = self.http.get(url.clone());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let response_headers = response.headers().clone();
                    match self.read_body(response).await {
                        Ok(body) if status.is_success() => {
                            return Ok(Fetched {
                                url: url.to_string(),
                                headers: response_headers,
                                body,
                            })
                        }
                        Ok(body) => {
                            let error = status_error(status, &response_headers, &body);
                            if !retryable(status) || last {
                                return Err(error);
                            }
                            let hint = retry_hint(&response_headers, &body);
                            tracing::warn!(%url, %status, attempt, "source request failed; retrying");
                            Retry::After(hint)
                        }
                        Err(BodyError::TooLarge) => {
                            return Err(SourceError::Malformed {
                                url: url.to_string(),
                                detail: format!(
                                    "body larger than {} bytes",
                                    self.settings.max_body_bytes
                                ),
                            })
                        }
                        Err(BodyError::Broken(e)) => Retry::Transport(e),
                    }
                }
                Err(e) => Retry::Transport(e),
            };
            let hint = match failure {
                Retry::After(hint) => hint,
                Retry::Transport(e) => {
                    if last {
                        return Err(if e.is_timeout() {
                            SourceError::Timeout {
                                url: url.to_string(),
                                attempts: attempt,
                            }
                        } else {
                            SourceError::Transport {
                                url: url.to_string(),
                                attempts: attempt,
                                message: error_chain(&e),
                            }
                        });
                    }
                    tracing::warn!(%url, attempt, error = %error_chain(&e), "source request failed; retrying");
                    None
                }
            };
            tokio::time::sleep(self.wait(attempt, hint)).await;
        }
    }

    /// The wait before retry number `attempt`: the server's hint when it gave
    /// one, else exponential backoff with full jitter; capped either way.
    fn wait(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let cap = self.settings.max_backoff;
        if let Some(hint) = hint {
            return hint.min(cap);
        }
        let exp = self
            .settings
            .backoff
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let ceiling = exp.min(cap);
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        ceiling.mul_f64(jitter)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Bytes, BodyError> {
        let limit = self.settings.max_body_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(BodyError::TooLarge);
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(BodyError::Broken)? {
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

enum Retry {
    After(Option<Duration>),
    Transport(reqwest::Error),
}

enum BodyError {
    TooLarge,
    Broken(reqwest::Error),
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The typed error of a failed response, with the service's own message.
fn status_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> SourceError {
    let message = error_message(headers, body)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let code = status.as_u16();
    let bad_key = code == 400 && {
        let lower = message.to_lowercase();
        lower.contains("api key") || lower.contains("api_key_invalid")
    } || body_mentions(body, "API_KEY_INVALID");
    if code == 401 || code == 403 || bad_key {
        SourceError::Auth {
            status: code,
            message,
        }
    } else {
        SourceError::Http {
            status: code,
            message,
        }
    }
}

fn body_mentions(body: &[u8], needle: &str) -> bool {
    body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The message of an error body in any of the shapes the sources use:
/// OpenAI / Anthropic / Gemini `{"error": {"message"}}`, xAI and Hugging Face
/// `{"error": "…"}`, Cohere and Mistral `{"message"}`, Mistral `{"detail"}`,
/// and Hugging Face's `X-Error-Message` header.
pub fn error_message(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let from_body = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error"),
            v.get("message"),
            v.get("detail"),
            v.pointer("/detail/0/msg"),
        ];
        candidates
            .into_iter()
            .flatten()
            .find_map(|c| c.as_str().map(str::to_owned))
    });
    let text = from_body
        .or_else(|| {
            headers
                .get("x-error-message")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .or_else(|| {
            let text = String::from_utf8_lossy(body).trim().to_owned();
            (!text.is_empty() && !text.starts_with('<')).then_some(text)
        })?;
    Some(text.chars().take(500).collect())
}

/// How long the server asked us to wait: `Retry-After` (seconds or an HTTP
/// date), Hugging Face's `ratelimit: "api";r=0;t=<seconds>`, or Gemini's
/// `google.rpc.RetryInfo.retryDelay` ("12s") in the body.
pub fn retry_hint(headers: &HeaderMap, body: &[u8]) -> Option<Duration> {
    if let Some(value) = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(secs) = value.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs.min(86_400.0)));
            }
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            return Some(
                when.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default(),
            );
        }
    }
    if let Some(value) = headers.get("ratelimit").and_then(|v| v.to_str().ok()) {
        let reset = value
            .split(';')
            .filter_map(|part| part.trim().strip_prefix("t="))
            .find_map(|t| t.parse::<u64>().ok());
        if let Some(secs) = reset {
            return Some(Duration::from_secs(secs));
        }
    }
    let body: Value = serde_json::from_slice(body).ok()?;
    let details = body.pointer("/error/details")?.as_array()?;
    details.iter().find_map(|d| {
        let delay = d.get("retryDelay")?.as_str()?;
        let secs: f64 = delay.strip_suffix('s')?.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("valid header"));
        }
        h
    }

    #[test]
    fn retry_after_seconds_date_ratelimit_and_gemini_body() {
        assert_eq!(
            retry_hint(&headers(&[("retry-after", "7")]), b""),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = retry_hint(&headers(&[("retry-after", &date)]), b"").expect("a date");
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28));
        assert_eq!(
            retry_hint(&headers(&[("ratelimit", "\"api\";r=0;t=55")]), b""),
            Some(Duration::from_secs(55))
        );
        let gemini = br#"{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#;
        assert_eq!(
            retry_hint(&HeaderMap::new(), gemini),
            Some(Duration::from_secs(12))
        );
        assert_eq!(retry_hint(&HeaderMap::new(), b"{}"), None);
    }

    #[test]
    fn error_messages_from_every_body_shape() {
        let h = HeaderMap::new();
        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"error":{"message":"Incorrect API key","type":"x"}}"#,
                "Incorrect API key",
            ),
            (
                br#"{"code":"invalid-argument","error":"Incorrect API key provided"}"#,
                "Incorrect API key provided",
            ),
            (
                br#"{"message":"Requests rate limit exceeded"}"#,
                "Requests rate limit exceeded",
            ),
            (br#"{"detail":"Unauthorized"}"#, "Unauthorized"),
            (b"plain text", "plain text"),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(&h, body).as_deref(), Some(expected));
        }
        let hf = headers(&[("x-error-message", "Repository not found")]);
        assert_eq!(
            error_message(&hf, b"").as_deref(),
            Some("Repository not found")
        );
    }

    #[test]
    fn bad_key_statuses_are_auth_errors() {
        let gemini = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        assert!(matches!(
            status_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), gemini),
            SourceError::Auth { status: 400, .. }
        ));
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), b"{}"),
            SourceError::Auth { status: 401, .. }
        ));
        assert!(matches!(
            status_error(
                StatusCode::BAD_REQUEST,
                &HeaderMap::new(),
                br#"{"message":"bad page"}"#
            ),
            SourceError::Http { status: 400, .. }
        ));
    }

    #[test]
    fn credential_id_names_the_key_without_revealing_it() {
        let client =
            SourceClient::new(SourceSettings::new("http://127.0.0.1:1").with_api_key("sk-secret"))
                .expect("client");
        let id = client.credential_id().expect("an id");
        assert!(id.starts_with("key:") && id.len() == 16);
        assert!(!id.contains("secret"));
    }

    #[test]
    fn urls_keep_a_base_path_prefix() {
        let client =
            SourceClient::new(SourceSettings::new("http://127.0.0.1:9/openai/")).expect("client");
        let url = client
            .url("/v1/models", &[("limit", "5".into())])
            .expect("url");
        assert_eq!(url.as_str(), "http://127.0.0.1:9/openai/v1/models?limit=5");
    }
}
