//! How the Hub is reached.

use std::fmt;
use std::time::Duration;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How the Hub is reached. Build with [`HubSettings::default`] or
/// [`HubSettings::from_env_or`] and override fields with `..`.
#[derive(Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// The Hub's origin; a path prefix is kept (`http://mirror:8080/hf`).
    pub base_url: String,
    /// Sent as `Authorization: Bearer` to `base_url`'s origin only, never to a
    /// redirect target on another host. Never logged (`Debug` redacts it).
    pub token: Option<String>,
    /// Per request: a JSON request or a small file whole; for content reads,
    /// the wait for headers and the longest gap between body chunks.
    pub timeout: Duration,
    /// Attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    /// First backoff; doubles per retry, with full jitter.
    pub backoff: Duration,
    /// The longest single wait, a `Retry-After` hint included.
    pub max_backoff: Duration,
    pub user_agent: String,
}

impl Default for HubSettings {
    fn default() -> HubSettings {
        HubSettings {
            base_url: DEFAULT_ENDPOINT.to_owned(),
            token: None,
            timeout: Duration::from_secs(30),
            max_attempts: 4,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            user_agent: concat!("modelplane/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl fmt::Debug for HubSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSettings")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl HubSettings {
    /// Defaults, with the base URL and token from the arguments, or when an
    /// argument is `None` from `HF_ENDPOINT` / `HF_TOKEN` (then the legacy
    /// `HUGGING_FACE_HUB_TOKEN`). Empty values count as unset.
    pub fn from_env_or(base: Option<String>, token: Option<String>) -> HubSettings {
        HubSettings::from_lookup(base, token, |name| std::env::var(name).ok())
    }

    fn from_lookup(
        base: Option<String>,
        token: Option<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> HubSettings {
        let present =
            |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let base_url = present(base)
            .or_else(|| present(lookup("HF_ENDPOINT")))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let token = present(token)
            .or_else(|| present(lookup("HF_TOKEN")))
            .or_else(|| present(lookup("HUGGING_FACE_HUB_TOKEN")));
        HubSettings {
            base_url,
            token,
            ..HubSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn arguments_win_then_environment_then_defaults() {
        let vars = env(&[("HF_ENDPOINT", "http://mirror/hf"), ("HF_TOKEN", "hf_env")]);
        let s = HubSettings::from_lookup(None, None, &vars);
        assert_eq!(s.base_url, "http://mirror/hf");
        assert_eq!(s.token.as_deref(), Some("hf_env"));

        let s = HubSettings::from_lookup(Some("http://arg".into()), Some("hf_arg".into()), &vars);
        assert_eq!(s.base_url, "http://arg");
        assert_eq!(s.token.as_deref(), Some("hf_arg"));

        let s = HubSettings::from_lookup(None, None, env(&[("HF_TOKEN", " ")]));
        assert_eq!(s.base_url, DEFAULT_ENDPOINT);
        assert_eq!(s.token, None);

        let s = HubSettings::from_lookup(None, None, env(&[("HUGGING_FACE_HUB_TOKEN", "hf_old")]));
        assert_eq!(s.token.as_deref(), Some("hf_old"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let s = HubSettings {
            token: Some("hf_secret".into()),
            ..HubSettings::default()
        };
        let text = format!("{s:?}");
        assert!(!text.contains("hf_secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
