use serde::Serialize;

/// Input that breaks a domain rule. `field` names the offending field so a
/// client can point at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a required free-text value: trimmed non-empty, bounded, no control
/// characters.
pub fn required_text(field: &str, value: &str, max_len: usize) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    optional_text(field, Some(trimmed), max_len).map(|v| v.unwrap_or_default())
}

/// Checks an optional free-text value; an empty string counts as absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max_len: usize,
) -> Result<Option<String>, ValidationError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > max_len {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_len} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(trimmed.to_owned()))
}
