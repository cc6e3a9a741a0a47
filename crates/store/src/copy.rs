//! Rows as values a multi-row `INSERT` binds or PostgreSQL's `COPY … FROM
//! STDIN` reads in its text format. A bulk insert of new rows through
//! `COPY` skips what each `INSERT` costs the server (binding thousands of
//! parameters, building and running a `VALUES` list) and fills heap pages
//! many rows at a time; the same [`Cell`]s feed both, so one function per
//! table says what its columns hold.

use std::io::Write as _;

/// One column value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(Some(v))
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        Cell::Text(v)
    }
}

impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(Some(v))
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        Cell::Int(v)
    }
}

/// Rows in `COPY`'s text format: fields separated by tabs, rows ended by a
/// newline, `\N` for null, and a backslash before each backslash, tab,
/// newline and carriage return in a text (so the text `\N` stays text).
#[derive(Debug, Default)]
pub(crate) struct CopyRows {
    buf: Vec<u8>,
}

impl CopyRows {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// Appends one row.
    pub(crate) fn row(&mut self, cells: impl IntoIterator<Item = Cell>) {
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b'\t');
            }
            self.cell(&cell);
        }
        self.buf.push(b'\n');
    }

    fn cell(&mut self, cell: &Cell) {
        match cell {
            Cell::Text(None) | Cell::Int(None) | Cell::Float(None) => {
                self.buf.extend_from_slice(b"\\N")
            }
            Cell::Text(Some(text)) => self.text(text),
            // Writing into a Vec cannot fail.
            Cell::Int(Some(v)) => {
                let _ = write!(self.buf, "{v}");
            }
            Cell::Float(Some(v)) => self.float(*v),
        }
    }

    fn text(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut start = 0;
        for (i, b) in bytes.iter().enumerate() {
            let escaped: &[u8] = match b {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            self.buf.extend_from_slice(&bytes[start..i]);
            self.buf.extend_from_slice(escaped);
            start = i + 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
    }

    /// A double as PostgreSQL's `float8` reads it back exactly: Rust's
    /// shortest round-trip digits, and the server's names for the others.
    fn float(&mut self, v: f64) {
        if v.is_nan() {
            self.buf.extend_from_slice(b"NaN");
        } else if v.is_infinite() {
            let name: &[u8] = if v > 0.0 { b"Infinity" } else { b"-Infinity" };
            self.buf.extend_from_slice(name);
        } else {
            let _ = write!(self.buf, "{v:?}");
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The rows written so far, leaving this empty (with its capacity).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let capacity = self.buf.capacity();
        std::mem::replace(&mut self.buf, Vec::with_capacity(capacity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cells: Vec<Cell>) -> String {
        let mut rows = CopyRows::default();
        rows.row(cells);
        String::from_utf8(rows.take()).expect("utf-8")
    }

    #[test]
    fn a_row_is_tab_separated_and_newline_ended_with_nulls_as_backslash_n() {
        assert_eq!(
            rows(vec![
                "a".into(),
                Cell::Text(None),
                42i64.into(),
                Cell::Int(None),
                Cell::Float(Some(0.5)),
                Cell::Float(None),
                "".into(),
            ]),
            "a\t\\N\t42\t\\N\t0.5\t\\N\t\n"
        );
    }

    #[test]
    fn text_escapes_backslash_tab_newline_and_carriage_return_and_keeps_the_rest() {
        assert_eq!(
            rows(vec![
                "a\tb\nc\rd\\e".into(),
                "\\N".into(),
                "café \"quoted\" 'single' ✓".into()
            ]),
            "a\\tb\\nc\\rd\\\\e\t\\\\N\tcafé \"quoted\" 'single' ✓\n"
        );
    }

    #[test]
    fn doubles_keep_their_exact_value_and_the_servers_names_for_the_others() {
        assert_eq!(
            rows(vec![
                Cell::Float(Some(0.1 + 0.2)),
                Cell::Float(Some(-1e-7)),
                Cell::Float(Some(3.0)),
                Cell::Float(Some(1e300)),
                Cell::Float(Some(f64::NAN)),
                Cell::Float(Some(f64::INFINITY)),
                Cell::Float(Some(f64::NEG_INFINITY)),
            ]),
            "0.30000000000000004\t-1e-7\t3.0\t1e300\tNaN\tInfinity\t-Infinity\n"
        );
        assert_eq!(rows(vec![i64::MIN.into()]), "-9223372036854775808\n");
    }

    #[test]
    fn take_leaves_the_rows_empty() {
        let mut r = CopyRows::with_capacity(16);
        assert_eq!(r.len(), 0);
        r.row(vec!["x".into()]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.take(), b"x\n");
        assert_eq!(r.len(), 0);
    }
}
