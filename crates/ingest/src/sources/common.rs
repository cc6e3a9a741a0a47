//! Small conversions every source needs.

use chrono::{DateTime, NaiveDate};
use modelplane_domain::catalog::SourceRecord;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{PageSink, SourceClient, SourceError};

/// `YYYY-MM-DD` of a unix time in seconds; None for 0 or out of range.
pub fn date_from_unix(secs: i64) -> Option<String> {
    if secs <= 0 {
        return None;
    }
    DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%d").to_string())
}

/// `YYYY-MM-DD` of an RFC 3339 date-time or a plain date; None for the epoch
/// (some providers' "unknown"), empty strings and anything unparseable.
pub fn date_from_text(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let date = if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.date_naive()
    } else if let Some(d) = text
        .get(..10)
        .and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
    {
        d
    } else if let Ok(d) = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
        // `YYYY-MM`, as knowledge cutoffs are often given.
        d
    } else {
        return None;
    };
    (date.format("%Y-%m-%d").to_string() != "1970-01-01")
        .then(|| date.format("%Y-%m-%d").to_string())
}

/// Modalities lower-cased, mapped to the catalog's words, sorted, deduped.
pub fn modalities<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = items
        .into_iter()
        .filter_map(|m| {
            let m = m.trim().to_lowercase();
            let word = match m.as_str() {
                "" => return None,
                "text" | "txt" => "text",
                "image" | "images" | "vision" => "image",
                "audio" | "speech" => "audio",
                "video" => "video",
                "pdf" => "pdf",
                "file" | "files" => "file",
                "embedding" | "embeddings" => "embedding",
                other => return Some(other.to_owned()),
            };
            Some(word.to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A JSON number as i64, accepting floats with no fraction (Cohere types
/// `context_length` as a float).
pub fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// The most records one `sink.page` call receives from a single-document
/// source, so a large document is written in bounded transactions.
pub const CHUNK: usize = 1000;

/// Pushes `records` to the sink in order, at most [`CHUNK`] at a time.
pub(crate) async fn push_in_chunks(
    sink: &mut dyn PageSink,
    records: Vec<SourceRecord>,
) -> Result<(), SourceError> {
    let mut records = records.into_iter();
    loop {
        let chunk: Vec<SourceRecord> = records.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        sink.page(chunk).await?;
    }
}

/// The configured extra query parameters, as [`SourceClient::url`] takes them.
pub(crate) fn query_params(client: &SourceClient) -> Vec<(&str, String)> {
    client
        .settings()
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

/// Today (UTC) as `YYYY-MM-DD`, for lifecycles that follow from dates.
pub(crate) fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// A price in USD per token as USD per one million tokens, rounded to nine
/// decimals so `3e-7` reads `0.3` and not `0.29999999999999993`; None for a
/// negative or non-finite price (OpenRouter's `-1` means "varies").
pub(crate) fn usd_per_million(per_token: f64) -> Option<f64> {
    if !per_token.is_finite() || per_token < 0.0 {
        return None;
    }
    let per_million = per_token * 1_000_000.0;
    // Rounding is exact only while the scaled value fits f64's 53-bit
    // mantissa; prices anywhere near that are not token prices.
    if per_million < 1.0e6 {
        Some((per_million * 1.0e9).round() / 1.0e9)
    } else {
        Some(per_million)
    }
}

/// How a listing API pages with an opaque cursor: the size and cursor
/// parameter names, and the largest page it serves.
pub struct CursorPaging<'a> {
    pub path: &'a str,
    pub headers: &'a [(&'a str, String)],
    pub size_param: &'static str,
    pub max_page_size: u32,
    pub cursor_param: &'static str,
}

/// Walks a cursor-paged listing (Anthropic's `after_id`, Gemini's
/// `pageToken`, Cohere's `page_token`): each page is parsed into records and
/// pushed to `sink`, until `next_cursor` gives none or `max_pages` is
/// reached. A cursor that does not advance is a malformed listing, not a
/// loop. Every parameter but the cursor stays the same from page to page, as
/// these APIs require.
pub async fn list_by_cursor<P: DeserializeOwned>(
    client: &SourceClient,
    sink: &mut dyn PageSink,
    paging: CursorPaging<'_>,
    next_cursor: fn(&P) -> Option<String>,
    parse: fn(&P) -> Vec<SourceRecord>,
) -> Result<(), SourceError> {
    let settings = client.settings();
    let size = settings
        .page_size
        .unwrap_or(paging.max_page_size)
        .clamp(1, paging.max_page_size);
    let mut cursor: Option<String> = None;
    let mut pages = 0u32;
    loop {
        let mut query = vec![(paging.size_param, size.to_string())];
        query.extend(query_params(client));
        if let Some(cursor) = &cursor {
            query.push((paging.cursor_param, cursor.clone()));
        }
        let url = client.url(paging.path, &query)?;
        let fetched = client.get(url, paging.headers).await?;
        let page: P = fetched.json()?;
        pages += 1;
        sink.page(parse(&page)).await?;
        let Some(next) = next_cursor(&page) else {
            return Ok(());
        };
        if cursor.as_deref() == Some(next.as_str()) {
            return Err(SourceError::Malformed {
                url: fetched.url,
                detail: format!(
                    "the next page's {} {next:?} repeats the one just used",
                    paging.cursor_param
                ),
            });
        }
        if settings.max_pages.is_some_and(|max| pages >= max) {
            return Ok(());
        }
        cursor = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_unix_and_text() {
        assert_eq!(date_from_unix(1722814719).as_deref(), Some("2024-08-04"));
        assert_eq!(date_from_unix(0), None);
        assert_eq!(
            date_from_text("2026-02-04T00:00:00Z").as_deref(),
            Some("2026-02-04")
        );
        assert_eq!(date_from_text("2026-08-31").as_deref(), Some("2026-08-31"));
        assert_eq!(date_from_text("2024-04").as_deref(), Some("2024-04-01"));
        assert_eq!(date_from_text("1970-01-01T00:00:00Z"), None);
        assert_eq!(date_from_text(""), None);
        assert_eq!(date_from_text("soon"), None);
    }

    #[test]
    fn modalities_are_normalized() {
        assert_eq!(
            modalities(["Text", "images", "text", "file"]),
            vec!["file", "image", "text"]
        );
    }

    #[test]
    fn per_token_prices_become_clean_per_million_prices() {
        assert_eq!(usd_per_million(3e-7), Some(0.3));
        assert_eq!(usd_per_million(2.5e-6), Some(2.5));
        assert_eq!(usd_per_million(0.0000375), Some(37.5));
        assert_eq!(usd_per_million(7.5e-8), Some(0.075));
        assert_eq!(usd_per_million(0.0), Some(0.0));
        assert_eq!(usd_per_million(-1.0), None);
        assert_eq!(usd_per_million(f64::NAN), None);
    }
}
