//! Full-text search terms, shared by both storage backends so they agree on
//! what a query means: every term must prefix-match a word of the model's
//! `model_id`, `display_name` or `description`, case-insensitively.

pub const MAX_TERMS: usize = 16;

/// Splits user input into lower-case alphanumeric terms. Everything else is a
/// separator, so the result is safe to embed in FTS5 or tsquery syntax.
pub fn terms(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(MAX_TERMS)
        .map(|t| t.to_lowercase())
        .collect()
}

/// The words of a text that search terms prefix-match: its lower-case runs
/// of letters and digits, split as [`terms`] splits a query.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// The FTS5 MATCH expression: each term quoted and prefix-matched, implicitly ANDed.
pub fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PostgreSQL `to_tsquery('simple', …)` expression for the same meaning.
pub fn tsquery(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("{t}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect_fts5: &str, expect_tsquery: &str) {
        let t = terms(input);
        assert_eq!(fts5_query(&t), expect_fts5, "fts5 for {input:?}");
        assert_eq!(tsquery(&t), expect_tsquery, "tsquery for {input:?}");
    }

    #[test]
    fn search_terms_are_sanitised_and_prefix_matched() {
        check("GPT-4o", r#""gpt"* "4o"*"#, "gpt:* & 4o:*");
        check(
            "  customer service ",
            r#""customer"* "service"*"#,
            "customer:* & service:*",
        );
        check(
            r#"a" OR b:* & !c"#,
            r#""a"* "or"* "b"* "c"*"#,
            "a:* & or:* & b:* & c:*",
        );
        check("---", "", "");
        check("Überprüfung", r#""überprüfung"*"#, "überprüfung:*");
    }
}
