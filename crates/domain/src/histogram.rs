//! A log-scale histogram of durations in milliseconds, from which
//! percentiles are read with a bounded relative error.
//!
//! Bucket `i` holds the values in `(γ^(i-1), γ^i]` with
//! `γ = (1 + α) / (1 - α)`; a bucket is reported as `2γ^i / (γ + 1)`, which
//! is within `α` (relative) of every value in it. So a percentile read from
//! the histogram is within [`RELATIVE_ERROR`] of the exact nearest-rank
//! percentile of the recorded values. The buckets are fixed, so two
//! histograms merge by adding counts (which is how hourly and daily rollups
//! combine) and the answer does not depend on the order values arrived in.
//! Values below [`MIN_MS`] count as `MIN_MS` (an absolute error under a
//! microsecond); values above [`MAX_MS`] as `MAX_MS`.

use std::collections::BTreeMap;

/// `α`: the largest relative error of a percentile read from a histogram.
pub const RELATIVE_ERROR: f64 = 0.01;
/// The smallest value told apart from zero: one microsecond.
pub const MIN_MS: f64 = 0.001;
/// The largest value told apart: about 11.6 days.
pub const MAX_MS: f64 = 1.0e9;

const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);

/// Nearest-rank percentiles the usage endpoints report, in per mille.
pub const P50: u32 = 500;
pub const P95: u32 = 950;
pub const P99: u32 = 990;

/// Counts per bucket; only buckets that hold values are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: BTreeMap<i32, u64>,
}

/// The bucket a value falls in.
pub fn bucket_of(ms: f64) -> i32 {
    let v = if ms.is_nan() {
        MIN_MS
    } else {
        ms.clamp(MIN_MS, MAX_MS)
    };
    // |ln v / ln γ| stays below 1,100 for v in [MIN_MS, MAX_MS].
    (v.ln() / GAMMA.ln()).ceil() as i32
}

/// The value a bucket is reported as: within `RELATIVE_ERROR` of every
/// value in it.
pub fn value_of(bucket: i32) -> f64 {
    2.0 * GAMMA.powi(bucket) / (GAMMA + 1.0)
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, ms: f64) {
        self.add(bucket_of(ms), 1);
    }

    pub fn add(&mut self, bucket: i32, count: u64) {
        if count > 0 {
            *self.counts.entry(bucket).or_insert(0) += count;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&bucket, &count) in &other.counts {
            self.add(bucket, count);
        }
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The nearest-rank percentile `per_mille / 1000`: the reported value of
    /// the bucket that holds the `ceil(n × per_mille / 1000)`-th smallest
    /// value. None when the histogram is empty.
    pub fn percentile(&self, per_mille: u32) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = (u128::from(n) * u128::from(per_mille.min(1000))).div_ceil(1000);
        let rank = rank.max(1);
        let mut seen: u128 = 0;
        for (&bucket, &count) in &self.counts {
            seen += u128::from(count);
            if seen >= rank {
                return Some(value_of(bucket));
            }
        }
        self.counts.keys().next_back().map(|&b| value_of(b))
    }

    /// A compact text form: runs of consecutive buckets as
    /// `first:count,count,…`, runs separated by `;` (a gap of one or two
    /// empty buckets is written as zeros rather than starting a new run).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut previous: Option<i32> = None;
        for (&bucket, &count) in &self.counts {
            match previous {
                Some(p) if bucket - p <= 3 => {
                    for _ in p + 1..bucket {
                        out.push_str(",0");
                    }
                    out.push(',');
                }
                Some(_) => {
                    out.push(';');
                    out.push_str(&bucket.to_string());
                    out.push(':');
                }
                None => {
                    out.push_str(&bucket.to_string());
                    out.push(':');
                }
            }
            out.push_str(&count.to_string());
            previous = Some(bucket);
        }
        out
    }

    /// Reads what [`Histogram::encode`] wrote; None if it is malformed.
    pub fn decode(text: &str) -> Option<Histogram> {
        let mut histogram = Histogram::new();
        if text.is_empty() {
            return Some(histogram);
        }
        for run in text.split(';') {
            let (first, counts) = run.split_once(':')?;
            let mut bucket: i32 = first.parse().ok()?;
            for count in counts.split(',') {
                histogram.add(bucket, count.parse().ok()?);
                bucket = bucket.checked_add(1)?;
            }
        }
        Some(histogram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact nearest-rank percentile of `values`.
    fn exact(values: &[f64], per_mille: u32) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = (sorted.len() as u64 * u64::from(per_mille)).div_ceil(1000) as usize;
        sorted[rank.max(1) - 1]
    }

    #[test]
    fn every_reported_value_is_within_the_relative_error_of_the_value_recorded() {
        let mut v = MIN_MS;
        while v < MAX_MS {
            let got = value_of(bucket_of(v));
            assert!(
                (got - v).abs() <= v * RELATIVE_ERROR * (1.0 + 1e-9),
                "{v} reported as {got}"
            );
            v *= 1.37;
        }
        for v in [1.0, 2.0, 100.0, 250.0, 1000.0, 12_345.678] {
            let got = value_of(bucket_of(v));
            assert!((got - v).abs() <= v * RELATIVE_ERROR * (1.0 + 1e-9));
        }
    }

    #[test]
    fn values_outside_the_range_are_clamped() {
        assert_eq!(bucket_of(0.0), bucket_of(MIN_MS));
        assert_eq!(bucket_of(-5.0), bucket_of(MIN_MS));
        assert_eq!(bucket_of(f64::NAN), bucket_of(MIN_MS));
        assert_eq!(bucket_of(f64::INFINITY), bucket_of(MAX_MS));
        assert_eq!(bucket_of(1e15), bucket_of(MAX_MS));
    }

    #[test]
    fn percentiles_are_nearest_rank_within_the_stated_error() {
        let cases: Vec<Vec<f64>> = vec![
            vec![100.0],
            vec![10.0, 20.0],
            (1..=20).map(|i| f64::from(i) * 10.0).collect(),
            (1..=1000).map(|i| f64::from(i) * 1.7).collect(),
            vec![5.0, 5.0, 5.0, 900.0, 30_000.0],
            (0..997).map(|i| (f64::from(i) * 0.02).exp()).collect(),
        ];
        for values in cases {
            let mut h = Histogram::new();
            values.iter().for_each(|v| h.record(*v));
            assert_eq!(h.count(), values.len() as u64);
            for p in [1, P50, P95, P99, 1000] {
                let want = exact(&values, p);
                let got = h.percentile(p).expect("not empty");
                assert!(
                    (got - want).abs() <= want * RELATIVE_ERROR * (1.0 + 1e-9),
                    "p{p} of {} values: got {got}, exact {want}",
                    values.len()
                );
            }
        }
        assert_eq!(Histogram::new().percentile(P50), None);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let values: Vec<f64> = (0..500).map(|i| f64::from(i % 37) * 13.3 + 0.5).collect();
        let mut whole = Histogram::new();
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for (i, v) in values.iter().enumerate() {
            whole.record(*v);
            if i % 3 == 0 {
                a.record(*v);
            } else {
                b.record(*v);
            }
        }
        a.merge(&b);
        assert_eq!(a, whole);
    }

    #[test]
    fn the_text_form_round_trips_and_refuses_garbage() {
        let mut h = Histogram::new();
        for v in [0.0005, 0.9, 1.0, 1.01, 1.05, 3.0, 3.0, 250.0, 251.0, 9e8] {
            h.record(v);
        }
        let text = h.encode();
        assert_eq!(Histogram::decode(&text), Some(h));
        assert_eq!(Histogram::decode(""), Some(Histogram::new()));
        assert_eq!(Histogram::new().encode(), "");
        let mut runs = Histogram::new();
        runs.add(-2, 1);
        runs.add(0, 4);
        runs.add(10, 2);
        assert_eq!(runs.encode(), "-2:1,0,4;10:2");
        for bad in ["x", "1:", "1:a", ":3", "1:2;", "1:2;;3:4", "1:-1"] {
            assert_eq!(Histogram::decode(bad), None, "{bad}");
        }
    }
}
