//! Timestamps: RFC 3339 UTC on the wire, microseconds since the epoch in storage.

use chrono::{DateTime, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current time truncated to microseconds, the precision storage keeps,
/// so a value read back equals the value written.
pub fn now() -> Timestamp {
    from_micros(Utc::now().timestamp_micros())
}

pub fn to_micros(ts: &Timestamp) -> i64 {
    ts.timestamp_micros()
}

pub fn from_micros(micros: i64) -> Timestamp {
    Utc.timestamp_micros(micros)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
