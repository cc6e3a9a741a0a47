//! The vocabulary and the time arithmetic of usage queries: what totals are
//! grouped by, the buckets of a time series, and which part of a time range
//! is read from which rollup (hourly, daily) and which from raw records.
//!
//! Times are microseconds since the epoch; hours and days are UTC.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::time::{to_micros, Timestamp};
use crate::ValidationError;

pub const MINUTE_MICROS: i64 = 60_000_000;
pub const HOUR_MICROS: i64 = 60 * MINUTE_MICROS;
pub const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// The most buckets one series may have.
pub const MAX_SERIES_BUCKETS: i64 = 10_000;

/// What usage totals are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    /// The model name the client asked for.
    #[default]
    Model,
    Key,
    Org,
    Upstream,
    Route,
    User,
    Endpoint,
    Status,
}

impl UsageGroup {
    pub const ALL: [UsageGroup; 8] = [
        Self::Model,
        Self::Key,
        Self::Org,
        Self::Upstream,
        Self::Route,
        Self::User,
        Self::Endpoint,
        Self::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Key => "key",
            Self::Org => "org",
            Self::Upstream => "upstream",
            Self::Route => "route",
            Self::User => "user",
            Self::Endpoint => "endpoint",
            Self::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// The width of a time series' buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesBucket {
    Minute,
    #[default]
    Hour,
    Day,
}

impl SeriesBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn micros(self) -> i64 {
        match self {
            Self::Minute => MINUTE_MICROS,
            Self::Hour => HOUR_MICROS,
            Self::Day => DAY_MICROS,
        }
    }

    /// How far back a series reaches when `from` is not given: 60 buckets
    /// of minutes, 24 of hours, 30 of days.
    pub fn default_window(self) -> i64 {
        match self {
            Self::Minute => 60 * MINUTE_MICROS,
            Self::Hour => DAY_MICROS,
            Self::Day => 30 * DAY_MICROS,
        }
    }

    /// The coarsest rollup whose rows fall wholly inside one bucket.
    pub fn coarsest_rollup(self) -> Option<Rollup> {
        match self {
            Self::Minute => None,
            Self::Hour => Some(Rollup::Hour),
            Self::Day => Some(Rollup::Day),
        }
    }
}

/// A rollup level: usage totals per org, bucket and every filterable
/// dimension, kept as records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rollup {
    Hour,
    Day,
}

impl Rollup {
    pub const ALL: [Rollup; 2] = [Self::Hour, Self::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn micros(self) -> i64 {
        match self {
            Self::Hour => HOUR_MICROS,
            Self::Day => DAY_MICROS,
        }
    }

    /// The start of the bucket holding `t`.
    pub fn bucket_of(self, t: i64) -> i64 {
        floor_to(t, self.micros())
    }
}

/// `t` rounded down to a multiple of `width`.
pub fn floor_to(t: i64, width: i64) -> i64 {
    t - t.rem_euclid(width)
}

/// `t` rounded up to a multiple of `width`.
pub fn ceil_to(t: i64, width: i64) -> i64 {
    let floor = floor_to(t, width);
    if floor == t {
        t
    } else {
        floor.saturating_add(width)
    }
}

/// A half-open time range `[from, to)` in microseconds; None is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Span {
    pub fn new(from: Option<i64>, to: Option<i64>) -> Self {
        Self { from, to }
    }

    /// Whether the range holds no instant at all.
    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.to), (Some(a), Some(b)) if a >= b)
    }
}

/// Which rows answer a query over a range: raw records for the parts that
/// do not cover whole hours, hourly rollups for whole hours, daily rollups
/// for whole days. The parts are disjoint and together cover the range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPlan {
    pub raw: Vec<Span>,
    pub hours: Vec<Span>,
    pub days: Vec<Span>,
}

/// The plan for `span`, using rollups no coarser than `coarsest` (None:
/// raw records only).
pub fn plan(span: Span, coarsest: Option<Rollup>) -> ReadPlan {
    let mut plan = ReadPlan::default();
    if span.is_empty() {
        return plan;
    }
    let Some(coarsest) = coarsest else {
        plan.raw.push(span);
        return plan;
    };
    let h1 = span.from.map(|t| ceil_to(t, HOUR_MICROS));
    let h2 = span.to.map(|t| floor_to(t, HOUR_MICROS));
    if let (Some(a), Some(b)) = (h1, h2) {
        if a >= b {
            plan.raw.push(span);
            return plan;
        }
    }
    if span.from != h1 {
        plan.raw.push(Span::new(span.from, h1));
    }
    if span.to != h2 {
        plan.raw.push(Span::new(h2, span.to));
    }
    let whole_hours = Span::new(h1, h2);
    if coarsest == Rollup::Hour {
        plan.hours.push(whole_hours);
        return plan;
    }
    let d1 = h1.map(|t| ceil_to(t, DAY_MICROS));
    let d2 = h2.map(|t| floor_to(t, DAY_MICROS));
    let days = Span::new(d1, d2);
    if days.is_empty() {
        plan.hours.push(whole_hours);
        return plan;
    }
    plan.days.push(days);
    if h1 != d1 {
        plan.hours.push(Span::new(h1, d1));
    }
    if h2 != d2 {
        plan.hours.push(Span::new(d2, h2));
    }
    plan
}

/// The earliest and latest instants a usage query may name:
/// 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const EARLIEST_MICROS: i64 = 0;
const LATEST_MICROS: i64 = 253_402_300_799_000_000;

/// Checks a query's `from` and `to` (each optional): within 1970..=9999,
/// and `from` before `to`.
pub fn check_range(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<Span, ValidationError> {
    let bound = |field: &str, t: Option<Timestamp>| -> Result<Option<i64>, ValidationError> {
        let Some(t) = t else { return Ok(None) };
        let micros = to_micros(&t);
        if !(EARLIEST_MICROS..=LATEST_MICROS).contains(&micros) {
            return Err(ValidationError::new(
                field,
                "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
            ));
        }
        Ok(Some(micros))
    };
    let span = Span::new(bound("from", from)?, bound("to", to)?);
    if span.is_empty() {
        return Err(ValidationError::new("from", "must be before to"));
    }
    Ok(span)
}

/// The start of every bucket of a series over `[from, to)`: from the bucket
/// holding `from` to the one holding the last instant before `to`.
pub fn series_starts(
    bucket: SeriesBucket,
    from: i64,
    to: i64,
) -> Result<Vec<i64>, ValidationError> {
    if from >= to {
        return Err(ValidationError::new("from", "must be before to"));
    }
    let width = bucket.micros();
    let first = floor_to(from, width);
    // `to - first` is positive here, so this rounds up.
    let count = (to - first + width - 1) / width;
    if count > MAX_SERIES_BUCKETS {
        return Err(ValidationError::new(
            "bucket",
            format!(
                "the range holds {count} {} buckets; at most {MAX_SERIES_BUCKETS} are allowed: narrow from/to or use a wider bucket",
                bucket.as_str()
            ),
        ));
    }
    Ok((0..count).map(|i| first + i * width).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MICROS;
    const D: i64 = DAY_MICROS;

    fn span(from: Option<i64>, to: Option<i64>) -> Span {
        Span::new(from, to)
    }

    /// The plan, with each part checked to be aligned to what reads it.
    fn check(s: Span, coarsest: Option<Rollup>, want: ReadPlan) {
        let got = plan(s, coarsest);
        assert_eq!(got, want, "plan of {s:?} with {coarsest:?}");
        for part in &got.hours {
            for t in [part.from, part.to].into_iter().flatten() {
                assert_eq!(t % H, 0, "hour part {part:?} not aligned");
            }
        }
        for part in &got.days {
            for t in [part.from, part.to].into_iter().flatten() {
                assert_eq!(t % D, 0, "day part {part:?} not aligned");
            }
        }
    }

    #[test]
    fn rounding_to_a_width() {
        let cases = [
            (0, 0, 0),
            (1, 0, H),
            (H - 1, 0, H),
            (H, H, H),
            (H + 1, H, 2 * H),
            (-1, -H, 0),
        ];
        for (t, floor, ceil) in cases {
            assert_eq!(floor_to(t, H), floor, "floor {t}");
            assert_eq!(ceil_to(t, H), ceil, "ceil {t}");
        }
    }

    #[test]
    fn plans_split_a_range_into_raw_edges_hours_and_days() {
        let m = MINUTE_MICROS;
        let base = 100 * D;
        // Open both ways: every day rollup.
        check(
            span(None, None),
            Some(Rollup::Day),
            ReadPlan {
                days: vec![span(None, None)],
                ..ReadPlan::default()
            },
        );
        // Inside one hour: raw only.
        check(
            span(Some(base + 5 * m), Some(base + 50 * m)),
            Some(Rollup::Day),
            ReadPlan {
                raw: vec![span(Some(base + 5 * m), Some(base + 50 * m))],
                ..ReadPlan::default()
            },
        );
        // Across one hour boundary but no whole hour: raw only.
        check(
            span(Some(base + 30 * m), Some(base + H + 10 * m)),
            Some(Rollup::Day),
            ReadPlan {
                raw: vec![span(Some(base + 30 * m), Some(base + H + 10 * m))],
                ..ReadPlan::default()
            },
        );
        // Aligned hours inside one day: hour rollups only.
        check(
            span(Some(base + 2 * H), Some(base + 5 * H)),
            Some(Rollup::Day),
            ReadPlan {
                hours: vec![span(Some(base + 2 * H), Some(base + 5 * H))],
                ..ReadPlan::default()
            },
        );
        // Ragged edges around whole days.
        check(
            span(Some(base + 3 * H + m), Some(base + 3 * D + 4 * H + 2 * m)),
            Some(Rollup::Day),
            ReadPlan {
                raw: vec![
                    span(Some(base + 3 * H + m), Some(base + 4 * H)),
                    span(
                        Some(base + 3 * D + 4 * H),
                        Some(base + 3 * D + 4 * H + 2 * m),
                    ),
                ],
                hours: vec![
                    span(Some(base + 4 * H), Some(base + D)),
                    span(Some(base + 3 * D), Some(base + 3 * D + 4 * H)),
                ],
                days: vec![span(Some(base + D), Some(base + 3 * D))],
            },
        );
        // The same range with hours as the coarsest rollup.
        check(
            span(Some(base + 3 * H + m), Some(base + 3 * D + 4 * H + 2 * m)),
            Some(Rollup::Hour),
            ReadPlan {
                raw: vec![
                    span(Some(base + 3 * H + m), Some(base + 4 * H)),
                    span(
                        Some(base + 3 * D + 4 * H),
                        Some(base + 3 * D + 4 * H + 2 * m),
                    ),
                ],
                hours: vec![span(Some(base + 4 * H), Some(base + 3 * D + 4 * H))],
                days: vec![],
            },
        );
        // Open start, ragged end.
        check(
            span(None, Some(base + 7 * H + m)),
            Some(Rollup::Day),
            ReadPlan {
                raw: vec![span(Some(base + 7 * H), Some(base + 7 * H + m))],
                hours: vec![span(Some(base), Some(base + 7 * H))],
                days: vec![span(None, Some(base))],
            },
        );
        // Ragged start, open end.
        check(
            span(Some(base + 20 * H + m), None),
            Some(Rollup::Day),
            ReadPlan {
                raw: vec![span(Some(base + 20 * H + m), Some(base + 21 * H))],
                hours: vec![span(Some(base + 21 * H), Some(base + D))],
                days: vec![span(Some(base + D), None)],
            },
        );
        // Raw only.
        check(
            span(Some(base), Some(base + 2 * D)),
            None,
            ReadPlan {
                raw: vec![span(Some(base), Some(base + 2 * D))],
                ..ReadPlan::default()
            },
        );
        // Empty.
        check(
            span(Some(base), Some(base)),
            Some(Rollup::Day),
            ReadPlan::default(),
        );
    }

    #[test]
    fn series_buckets_cover_the_range_and_are_bounded() {
        let base = 10 * D;
        assert_eq!(
            series_starts(SeriesBucket::Hour, base + 30 * MINUTE_MICROS, base + 3 * H),
            Ok(vec![base, base + H, base + 2 * H])
        );
        assert_eq!(
            series_starts(SeriesBucket::Hour, base, base + 3 * H + 1),
            Ok(vec![base, base + H, base + 2 * H, base + 3 * H])
        );
        assert_eq!(
            series_starts(SeriesBucket::Day, base + H, base + D + H).map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            series_starts(SeriesBucket::Minute, 0, MAX_SERIES_BUCKETS * MINUTE_MICROS)
                .map(|v| v.len() as i64),
            Ok(MAX_SERIES_BUCKETS)
        );
        let too_many = series_starts(
            SeriesBucket::Minute,
            0,
            MAX_SERIES_BUCKETS * MINUTE_MICROS + 1,
        );
        assert_eq!(too_many.map_err(|e| e.field), Err("bucket".to_owned()));
        assert_eq!(
            series_starts(SeriesBucket::Hour, base, base).map_err(|e| e.field),
            Err("from".to_owned())
        );
    }

    #[test]
    fn ranges_are_bounded_and_ordered() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&chrono::Utc)
        };
        assert_eq!(check_range(None, None), Ok(Span::default()));
        assert!(check_range(
            Some(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-02T00:00:00Z"))
        )
        .is_ok());
        let err = |from: Option<&str>, to: Option<&str>| {
            check_range(from.map(t), to.map(t)).map_err(|e| e.field)
        };
        assert_eq!(
            err(Some("2026-01-02T00:00:00Z"), Some("2026-01-01T00:00:00Z")),
            Err("from".to_owned())
        );
        assert_eq!(
            err(Some("2026-01-01T00:00:00Z"), Some("2026-01-01T00:00:00Z")),
            Err("from".to_owned())
        );
        assert_eq!(
            err(Some("1969-12-31T23:59:59Z"), None),
            Err("from".to_owned())
        );
        assert_eq!(
            err(None, Some("1900-01-01T00:00:00Z")),
            Err("to".to_owned())
        );
    }

    #[test]
    fn group_and_bucket_names_round_trip() {
        for g in UsageGroup::ALL {
            assert_eq!(UsageGroup::parse(g.as_str()), Some(g));
        }
        assert_eq!(UsageGroup::parse("nope"), None);
        assert_eq!(UsageGroup::default(), UsageGroup::Model);
        assert_eq!(SeriesBucket::default(), SeriesBucket::Hour);
    }
}
