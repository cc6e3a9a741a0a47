use crate::ValidationError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A validated `limit`/`offset` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Page {
    pub fn parse(limit: Option<i64>, offset: Option<i64>) -> Result<Self, ValidationError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(ValidationError::new("offset", "must not be negative"));
        }
        Ok(Self { limit, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_to_fifty_and_is_bounded() {
        assert_eq!(Page::parse(None, None), Ok(Page::default()));
        assert_eq!(
            Page::parse(Some(200), Some(5)),
            Ok(Page {
                limit: 200,
                offset: 5
            })
        );
        for bad in [0, -1, 201] {
            assert_eq!(
                Page::parse(Some(bad), None)
                    .expect_err("must be refused")
                    .field,
                "limit"
            );
        }
        assert_eq!(
            Page::parse(None, Some(-3))
                .expect_err("must be refused")
                .field,
            "offset"
        );
    }
}
