//! Lists of ids that point at other rows of the same org (an agent's
//! models, a user's departments): their shape, and the error that names the
//! ids the org does not have.

use std::collections::HashSet;

use uuid::Uuid;

use crate::ValidationError;

/// Checks a list of references: at most `max`, no id twice. Order is kept.
pub fn check_ids(field: &str, ids: &[Uuid], max: usize) -> Result<(), ValidationError> {
    if ids.len() > max {
        return Err(ValidationError::new(field, format!("at most {max} ids")));
    }
    let mut seen = HashSet::with_capacity(ids.len());
    if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
        return Err(ValidationError::new(
            field,
            format!("lists {twice} more than once"),
        ));
    }
    Ok(())
}

/// Refuses `requested` ids that are not in `existing` (the ones the org
/// has), naming every missing one. `what` is the kind of row, e.g. "model".
pub fn require_known(
    field: &str,
    what: &str,
    requested: &[Uuid],
    existing: &[Uuid],
) -> Result<(), ValidationError> {
    let existing: HashSet<&Uuid> = existing.iter().collect();
    let unknown: Vec<String> = requested
        .iter()
        .filter(|id| !existing.contains(id))
        .map(Uuid::to_string)
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("no {what} of this org has the id {}", unknown.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_bounded_and_without_repeats() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(check_ids("model_ids", &[a, b], 2), Ok(()));
        assert_eq!(check_ids("model_ids", &[], 0), Ok(()));
        let err = check_ids("model_ids", &[a, b, a], 5).expect_err("repeat");
        assert_eq!(
            (err.field.as_str(), err.message),
            ("model_ids", format!("lists {a} more than once"))
        );
        let err = check_ids("model_ids", &[a, b], 1).expect_err("too many");
        assert_eq!(err.message, "at most 1 ids");
    }

    #[test]
    fn unknown_ids_are_all_named_in_request_order() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            require_known("model_ids", "model", &[a, b], &[b, a]),
            Ok(())
        );
        let err = require_known("model_ids", "model", &[c, a, b], &[a]).expect_err("unknown");
        assert_eq!(err.field, "model_ids");
        assert_eq!(
            err.message,
            format!("no model of this org has the id {c}, {b}")
        );
    }
}
