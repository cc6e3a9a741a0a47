//! A small statement builder for dynamic filters: static SQL fragments plus
//! numbered `$N` placeholders, which both SQLite and PostgreSQL accept.
//! (sqlx's own `QueryBuilder` writes `?` for the Any driver, which
//! PostgreSQL refuses.) User input only ever travels as bound arguments.

use std::fmt::Write;

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

use crate::copy::Cell;

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

    /// Appends a placeholder for a nullable double. sqlx 0.8's Any driver
    /// sends a null `f64` to PostgreSQL typed as `float4` (and a null `f32`
    /// as `float8`); a connection that prepared a statement with such a null
    /// then refuses the next 8-byte value in that slot ("incorrect binary
    /// data format"). Binding the null through `f32` gives it `float8`.
    pub(crate) fn bind_f64(&mut self, value: Option<f64>) -> &mut Self {
        match value {
            Some(v) => self.bind(v),
            None => self.bind(None::<f32>),
        }
    }

    /// Appends `(…, …)`: a placeholder for each cell of a row.
    pub(crate) fn bind_row(&mut self, cells: impl IntoIterator<Item = Cell>) -> &mut Self {
        self.push("(");
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            match cell {
                Cell::Text(v) => self.bind(v),
                Cell::Int(v) => self.bind(v),
                Cell::Float(v) => self.bind_f64(v),
            };
        }
        self.push(")")
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

    /// The statement for `backend`. SQLite gets anonymous `?` placeholders:
    /// it looks each `$N` up by name in a linear list, which makes a
    /// statement of n parameters cost O(n²) to prepare and bind (a
    /// 4,000-parameter bulk insert spent most of its time there). The
    /// builder numbers placeholders in order, each used once, so `?` binds
    /// the same arguments.
    pub(crate) fn build_for(self, backend: crate::Backend) -> (String, AnyArguments<'static>) {
        match backend {
            crate::Backend::Postgres => (self.text, self.args),
            crate::Backend::Sqlite => (anonymous_placeholders(&self.text), self.args),
        }
    }
}

/// `$1 … $n` → `?`, leaving text inside string literals alone.
fn anonymous_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_literal = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_literal = !in_literal;
            out.push(c);
        } else if c == '$' && !in_literal && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_statements_get_anonymous_placeholders_outside_literals() {
        let mut sql = Sql::new("SELECT '$1' AS x FROM t WHERE a = ");
        sql.bind(1_i64).push(" AND b IN ").bind_list([2_i64, 3]);
        let (text, _) = sql.build_for(crate::Backend::Sqlite);
        assert_eq!(text, "SELECT '$1' AS x FROM t WHERE a = ? AND b IN (?, ?)");
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT * FROM t WHERE a = ");
        sql.bind(1_i64)
            .push(" AND b IN ")
            .bind_list(["x".to_owned(), "y".to_owned()]);
        let (text, _) = sql.build_for(crate::Backend::Postgres);
        assert_eq!(text, "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)");
    }
}
