//! Decoding helpers: turn stored text and integers back into domain types,
//! reporting undecodable data as `StoreError::Corrupt` rather than panicking.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::{Result, StoreError};
use modelplane_domain::time::{from_micros, to_micros};

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn uuid(row: &AnyRow, col: &str) -> Result<Uuid> {
    parse_uuid(&text(row, col)?)
}

pub(crate) fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>> {
    opt_text(row, col)?.as_deref().map(parse_uuid).transpose()
}

pub(crate) fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("bad uuid {s:?}")))
}

pub(crate) fn time(row: &AnyRow, col: &str) -> Result<DateTime<Utc>> {
    Ok(from_micros(int(row, col)?))
}

pub(crate) fn opt_time(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

pub(crate) fn enum_of<T>(row: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s = text(row, col)?;
    parse(&s).ok_or_else(|| StoreError::Corrupt(format!("bad {col} {s:?}")))
}

pub(crate) fn micros(ts: &DateTime<Utc>) -> i64 {
    to_micros(ts)
}

pub(crate) fn opt_micros(ts: &Option<DateTime<Utc>>) -> Option<i64> {
    ts.as_ref().map(to_micros)
}
