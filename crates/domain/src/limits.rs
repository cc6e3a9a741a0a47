//! What one API key may spend through the gateway: which models it may call,
//! requests and tokens per minute, and a spend budget per period. The
//! arithmetic of the windows these are counted in lives here; the counting
//! itself is the gateway's (local leases and tallies synced through the
//! store, so the limits hold across replicas).

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationError;

pub const ALLOWED_MODELS_MAX: usize = 200;
pub const MODEL_PATTERN_MAX: usize = 200;
pub const RPM_MAX: u64 = 100_000_000;
pub const TPM_MAX: u64 = 1_000_000_000_000;
pub const BUDGET_USD_MAX: f64 = 1e12;

/// The calendar period a budget is counted over, in UTC. `total` never resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Daily,
    Weekly,
    #[default]
    Monthly,
    Total,
}

impl BudgetPeriod {
    pub const ALL: [BudgetPeriod; 4] = [Self::Daily, Self::Weekly, Self::Monthly, Self::Total];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Total => "total",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A counting window `[start, end)` in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// Whole seconds from `now` until the window ends, at least 1: what a
    /// refused client is told to wait (`Retry-After`).
    pub fn retry_after_secs(&self, now_micros: i64) -> u64 {
        let left = self.end.saturating_sub(now_micros).max(0) as u64;
        left.div_ceil(1_000_000).max(1)
    }

    pub fn contains(&self, micros: i64) -> bool {
        self.start <= micros && micros < self.end
    }
}

/// The UTC minute containing `now` (rpm and tpm are counted per minute).
pub fn minute_window(now_micros: i64) -> Window {
    let start = now_micros.div_euclid(60_000_000) * 60_000_000;
    Window {
        start,
        end: start + 60_000_000,
    }
}

/// The budget period containing `now`: the UTC day, the ISO week (Monday
/// first), the calendar month, or all time.
pub fn budget_window(period: BudgetPeriod, now: DateTime<Utc>) -> Window {
    let day_start = |d: chrono::NaiveDate| {
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .timestamp_micros()
    };
    let today = now.date_naive();
    match period {
        BudgetPeriod::Daily => {
            let start = day_start(today);
            Window {
                start,
                end: start + 86_400_000_000,
            }
        }
        BudgetPeriod::Weekly => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            let start = day_start(monday);
            Window {
                start,
                end: start + 7 * 86_400_000_000,
            }
        }
        BudgetPeriod::Monthly => {
            let first = today.with_day(1).unwrap_or(today);
            let next = if first.month() == 12 {
                chrono::NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            }
            .unwrap_or(first);
            Window {
                start: day_start(first),
                end: day_start(next),
            }
        }
        BudgetPeriod::Total => Window {
            start: 0,
            end: i64::MAX,
        },
    }
}

/// Spend is counted in millionths of a dollar, so replicas add integers.
pub fn usd_to_micros(usd: f64) -> i64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).ceil().min(i64::MAX as f64) as i64
    } else {
        0
    }
}

/// A key's gateway limits; every one optional (absent: no limit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyLimits {
    /// Model names this key may call (route names or `provider/model`); a
    /// trailing `*` matches any suffix (`openai/*`). Absent: any model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
    /// Requests per minute (UTC minute windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<u64>,
    /// Tokens (prompt + completion) per minute; a request is admitted while
    /// the minute's tokens are below the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    /// Spend in USD per `budget_period`, priced from the catalog; a request
    /// is admitted while the period's spend is below the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// Default `monthly` when a budget is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<BudgetPeriod>,
}

impl KeyLimits {
    pub fn is_empty(&self) -> bool {
        self.allowed_models.is_none()
            && self.rpm_limit.is_none()
            && self.tpm_limit.is_none()
            && self.budget_usd.is_none()
    }

    /// Whether anything must be counted per request.
    pub fn counts(&self) -> bool {
        self.rpm_limit.is_some() || self.tpm_limit.is_some() || self.budget_usd.is_some()
    }

    /// Checks bounds and normalizes: patterns trimmed, sorted, unique; the
    /// period defaults to monthly when a budget is set and is refused without one.
    pub fn validated(mut self) -> Result<KeyLimits, ValidationError> {
        if let Some(models) = self.allowed_models.take() {
            if models.len() > ALLOWED_MODELS_MAX {
                return Err(ValidationError::new(
                    "allowed_models",
                    format!("at most {ALLOWED_MODELS_MAX} entries"),
                ));
            }
            let mut out = Vec::with_capacity(models.len());
            for (i, m) in models.iter().enumerate() {
                let m = m.trim();
                let field = format!("allowed_models[{i}]");
                if m.is_empty() {
                    return Err(ValidationError::new(field, "must not be empty"));
                }
                if m.chars().count() > MODEL_PATTERN_MAX {
                    return Err(ValidationError::new(
                        field,
                        format!("must be at most {MODEL_PATTERN_MAX} characters"),
                    ));
                }
                if m.chars().any(char::is_control) {
                    return Err(ValidationError::new(
                        field,
                        "must not contain control characters",
                    ));
                }
                if m.strip_suffix('*').unwrap_or(m).contains('*') {
                    return Err(ValidationError::new(
                        field,
                        "`*` is allowed only at the end of a pattern",
                    ));
                }
                out.push(m.to_owned());
            }
            out.sort();
            out.dedup();
            self.allowed_models = Some(out);
        }
        if let Some(rpm) = self.rpm_limit {
            if rpm == 0 || rpm > RPM_MAX {
                return Err(ValidationError::new(
                    "rpm_limit",
                    format!("must be between 1 and {RPM_MAX}"),
                ));
            }
        }
        if let Some(tpm) = self.tpm_limit {
            if tpm == 0 || tpm > TPM_MAX {
                return Err(ValidationError::new(
                    "tpm_limit",
                    format!("must be between 1 and {TPM_MAX}"),
                ));
            }
        }
        match self.budget_usd {
            Some(b) if !(b.is_finite() && b > 0.0 && b <= BUDGET_USD_MAX) => {
                return Err(ValidationError::new(
                    "budget_usd",
                    "must be a positive number of dollars",
                ));
            }
            Some(_) => {
                self.budget_period.get_or_insert(BudgetPeriod::Monthly);
            }
            None if self.budget_period.is_some() => {
                return Err(ValidationError::new("budget_period", "needs budget_usd"));
            }
            None => {}
        }
        Ok(self)
    }

    /// Whether this key may call `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        match &self.allowed_models {
            None => true,
            Some(patterns) => patterns.iter().any(|p| pattern_matches(p, model)),
        }
    }

    /// The budget in millionths of a dollar.
    pub fn budget_micros(&self) -> Option<i64> {
        self.budget_usd.map(usd_to_micros)
    }
}

/// `gpt-4o` matches only itself; `openai/*` matches every name it prefixes.
pub fn pattern_matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn micros(s: &str) -> i64 {
        at(s).timestamp_micros()
    }

    #[test]
    fn minute_windows_are_aligned_and_say_how_long_to_wait() {
        let now = micros("2026-12-04T10:15:42.250Z");
        let w = minute_window(now);
        assert_eq!(w.start, micros("2026-12-04T10:15:00Z"));
        assert_eq!(w.end, micros("2026-12-04T10:16:00Z"));
        assert!(w.contains(now));
        assert!(!w.contains(w.end));
        // 17.75 s left rounds up to 18.
        assert_eq!(w.retry_after_secs(now), 18);
        assert_eq!(w.retry_after_secs(w.end), 1);
    }

    #[test]
    fn budget_windows_follow_the_utc_calendar() {
        // (period, now, start, end)
        let table = [
            (
                BudgetPeriod::Daily,
                "2026-12-04T23:59:59Z",
                "2026-12-04T00:00:00Z",
                "2026-12-05T00:00:00Z",
            ),
            // 2026-12-04 is a Friday; its ISO week starts Monday the 30th.
            (
                BudgetPeriod::Weekly,
                "2026-12-04T10:00:00Z",
                "2026-11-30T00:00:00Z",
                "2026-12-07T00:00:00Z",
            ),
            (
                BudgetPeriod::Weekly,
                "2026-11-30T00:00:00Z",
                "2026-11-30T00:00:00Z",
                "2026-12-07T00:00:00Z",
            ),
            (
                BudgetPeriod::Monthly,
                "2026-12-31T12:00:00Z",
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                BudgetPeriod::Monthly,
                "2028-02-29T12:00:00Z",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ),
        ];
        for (period, now, start, end) in table {
            let w = budget_window(period, at(now));
            assert_eq!(
                (w.start, w.end),
                (micros(start), micros(end)),
                "{period:?} {now}"
            );
        }
        let total = budget_window(BudgetPeriod::Total, at("2026-12-04T00:00:00Z"));
        assert_eq!((total.start, total.end), (0, i64::MAX));
    }

    #[test]
    fn model_patterns_match_exactly_or_by_prefix() {
        // (pattern, model, matches)
        let table = [
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-4o*", "gpt-4o-mini", true),
            ("openai/*", "openai/gpt-4o", true),
            ("openai/*", "anthropic/claude", false),
            ("*", "anything", true),
            ("GPT-4o", "gpt-4o", false),
        ];
        for (pattern, model, expect) in table {
            assert_eq!(pattern_matches(pattern, model), expect, "{pattern} {model}");
        }
        let none = KeyLimits::default();
        assert!(none.allows_model("any"));
        let some = KeyLimits {
            allowed_models: Some(vec!["chat-default".into(), "openai/*".into()]),
            ..KeyLimits::default()
        };
        assert!(some.allows_model("chat-default"));
        assert!(some.allows_model("openai/gpt-4o-mini"));
        assert!(!some.allows_model("claude"));
        let empty = KeyLimits {
            allowed_models: Some(vec![]),
            ..KeyLimits::default()
        };
        assert!(
            !empty.allows_model("chat-default"),
            "an empty list allows nothing"
        );
    }

    #[test]
    fn validation_checks_bounds_and_defaults_the_budget_period() {
        let ok = KeyLimits {
            allowed_models: Some(vec![" b ".into(), "a".into(), "a".into()]),
            rpm_limit: Some(60),
            tpm_limit: Some(10_000),
            budget_usd: Some(5.0),
            budget_period: None,
        }
        .validated()
        .expect("valid");
        assert_eq!(ok.allowed_models, Some(vec!["a".into(), "b".into()]));
        assert_eq!(ok.budget_period, Some(BudgetPeriod::Monthly));
        assert_eq!(ok.budget_micros(), Some(5_000_000));

        let refused = |l: KeyLimits| l.validated().expect_err("refused").field;
        assert_eq!(
            refused(KeyLimits {
                rpm_limit: Some(0),
                ..KeyLimits::default()
            }),
            "rpm_limit"
        );
        assert_eq!(
            refused(KeyLimits {
                tpm_limit: Some(0),
                ..KeyLimits::default()
            }),
            "tpm_limit"
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                refused(KeyLimits {
                    budget_usd: Some(bad),
                    ..KeyLimits::default()
                }),
                "budget_usd"
            );
        }
        assert_eq!(
            refused(KeyLimits {
                budget_period: Some(BudgetPeriod::Daily),
                ..KeyLimits::default()
            }),
            "budget_period"
        );
        assert_eq!(
            refused(KeyLimits {
                allowed_models: Some(vec!["a*b".into()]),
                ..KeyLimits::default()
            }),
            "allowed_models[0]"
        );
        assert_eq!(
            refused(KeyLimits {
                allowed_models: Some(vec!["ok".into(), "  ".into()]),
                ..KeyLimits::default()
            }),
            "allowed_models[1]"
        );
    }

    #[test]
    fn spend_is_counted_in_whole_micro_dollars_rounded_up() {
        assert_eq!(usd_to_micros(0.000011), 11);
        assert_eq!(usd_to_micros(0.0000001), 1);
        assert_eq!(usd_to_micros(0.0), 0);
        assert_eq!(usd_to_micros(-3.0), 0);
        assert_eq!(usd_to_micros(f64::NAN), 0);
    }
}
