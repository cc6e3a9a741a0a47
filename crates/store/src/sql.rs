//! A small statement builder for dynamic filters: static SQL fragments plus
//! numbered `$N` placeholders, which both SQLite and PostgreSQL accept.
//! (sqlx's own `QueryBuilder` writes `?` for the Any driver, which
//! PostgreSQL refuses.) User input only ever travels as bound arguments.

use std::fmt::Write;

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

pub(crate) struct Sql {
    text: String,
    args: AnyArguments<'static>,
    count: usize,
}

impl Sql {
    pub(crate) fn new(text: &'static str) -> Self {
        Self {
            text: text.to_owned(),
            args: AnyArguments::default(),
            count: 0,
        }
    }

    pub(crate) fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'static, Any> + Type<Any> + Send + 'static,
    {
        self.count += 1;
        // Writing into a String cannot fail.
        let _ = write!(self.text, "${}", self.count);
        // Encoding into AnyArguments only fails for types Any cannot carry,
        // which the bounds above already exclude.
        let _ = self.args.add(value);
        self
    }

    /// Appends `(…, …)` placeholders for every value, comma separated.
    pub(crate) fn bind_list<T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: Encode<'static, Any> + Type<Any> + Send + 'static,
    {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    /// Appends ` LIMIT $n OFFSET $m` for a page.
    pub(crate) fn page(&mut self, page: modelplane_domain::page::Page) -> &mut Self {
        self.push(" LIMIT ")
            .bind(page.limit)
            .push(" OFFSET ")
            .bind(page.offset)
    }

    pub(crate) fn build(self) -> (String, AnyArguments<'static>) {
        (self.text, self.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ");
        sql.bind(1_i64)
            .push(" AND b IN ")
            .bind_list(["x".to_owned(), "y".to_owned()]);
        let (text, _) = sql.build();
        assert_eq!(text, "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
    }
}
