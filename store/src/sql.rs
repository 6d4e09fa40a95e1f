//! Bind-parameter placeholders for raw SQL: `$n` on PostgreSQL, `?` on SQLite
//! (whose `?` are positional, so values are bound once per placeholder).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement, Value};

/// The placeholder for the `n`-th value (1-based).
pub(crate) fn placeholder(backend: DbBackend, n: usize) -> String {
    let mut out = String::new();
    push_placeholder(&mut out, backend, n);
    out
}

/// [`placeholder`], appended to `out` (no string of its own per value).
fn push_placeholder(out: &mut String, backend: DbBackend, n: usize) {
    use std::fmt::Write;
    if backend == DbBackend::Postgres {
        // Writing to a String cannot fail.
        let _ = write!(out, "${n}");
    } else {
        out.push('?');
    }
}

/// [`placeholder`] for one backend, as a function of `n`.
pub(crate) fn binder(backend: DbBackend) -> impl Fn(usize) -> String + Copy {
    move |n| placeholder(backend, n)
}

/// Placeholders for values `from..from + n`.
pub(crate) fn placeholders(backend: DbBackend, from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| placeholder(backend, i)).collect()
}

/// `$1, $2…` or `?, ?…` rows for a multi-row VALUES list. Written into one
/// string: bulk writes build it for thousands of values per statement.
pub fn values_clause(backend: DbBackend, rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 8);
    let mut n = 0;
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            n += 1;
            if c > 0 {
                out.push_str(", ");
            }
            push_placeholder(&mut out, backend, n);
        }
        out.push(')');
    }
    out
}

/// Runs one statement with its values on a connection or transaction.
pub(crate) async fn exec<C: ConnectionTrait>(
    c: &C,
    sql: String,
    values: Vec<Value>,
) -> Result<ExecResult, DbErr> {
    let backend = c.get_database_backend();
    c.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
}

/// Runs a statement that deletes at most `batch` rows until it deletes fewer;
/// how many it deleted in all. Long prunes stay many short transactions.
pub(crate) async fn delete_in_batches<C: ConnectionTrait>(
    c: &C,
    sql: &str,
    values: Vec<Value>,
    batch: i64,
) -> Result<u64, DbErr> {
    // A batch of 0 would delete nothing forever: at least one row a statement.
    let batch = u64::try_from(batch).unwrap_or(0).max(1);
    let mut deleted = 0;
    loop {
        let n = exec(c, sql.to_owned(), values.clone())
            .await?
            .rows_affected();
        deleted += n;
        if n < batch {
            return Ok(deleted);
        }
    }
}

/// Every row a query returns.
pub(crate) async fn rows<C: ConnectionTrait>(
    c: &C,
    sql: String,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    let backend = c.get_database_backend();
    c.query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
}

/// The first row a query returns, if any.
pub(crate) async fn row<C: ConnectionTrait>(
    c: &C,
    sql: String,
    values: Vec<Value>,
) -> Result<Option<QueryResult>, DbErr> {
    let backend = c.get_database_backend();
    c.query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
}

/// A value in `COPY`'s text format: backslash, tab, newline and carriage
/// return escaped (the characters that delimit fields and rows).
#[cfg(test)]
fn copy_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// Appends `s` to `out` escaped as [`copy_escape`] says. The escaped
/// characters are ASCII, so the runs between them are copied whole (most
/// values have none): no allocation and no per-character pushes.
fn escape_into(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find(['\\', '\t', '\n', '\r']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Rows for `COPY ... FROM STDIN` in its text format, field by field.
#[derive(Debug, Default)]
pub(crate) struct CopyText {
    buf: String,
    /// No field yet on the current row.
    row_start: bool,
}

impl CopyText {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: String::with_capacity(bytes),
            row_start: true,
        }
    }

    fn sep(&mut self) {
        if !self.row_start {
            self.buf.push('\t');
        }
        self.row_start = false;
    }

    pub(crate) fn text(&mut self, v: &str) -> &mut Self {
        self.sep();
        escape_into(&mut self.buf, v);
        self
    }

    pub(crate) fn opt_text(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub(crate) fn int(&mut self, v: i64) -> &mut Self {
        use std::fmt::Write;
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }

    pub(crate) fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    /// An f64 displays its shortest exact decimal, which float8 reads back to
    /// the same value; the non-finite ones are spelt as PostgreSQL spells them.
    pub(crate) fn float(&mut self, v: f64) -> &mut Self {
        use std::fmt::Write;
        self.sep();
        let _ = match v {
            v if v.is_nan() => write!(self.buf, "NaN"),
            f64::INFINITY => write!(self.buf, "Infinity"),
            f64::NEG_INFINITY => write!(self.buf, "-Infinity"),
            v => write!(self.buf, "{v}"),
        };
        self
    }

    pub(crate) fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.push_str("\\N");
        self
    }

    pub(crate) fn end_row(&mut self) {
        self.buf.push('\n');
        self.row_start = true;
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_clauses_number_every_value_once() {
        assert_eq!(
            values_clause(DbBackend::Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(values_clause(DbBackend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_clause(DbBackend::Sqlite, 0, 2), "");
    }

    #[test]
    fn copy_text_escapes_delimiters_and_spells_nulls_and_floats() {
        assert_eq!(copy_escape("a\\N\tb\nc\rd"), "a\\\\N\\tb\\nc\\rd");
        // Runs between escapes are copied whole, multi-byte characters too.
        assert_eq!(copy_escape("été\t€\\"), "été\\t€\\\\");
        assert_eq!(copy_escape("plain"), "plain");
        assert_eq!(copy_escape(""), "");
        let mut t = CopyText::with_capacity(64);
        t.text("\\N")
            .opt_text(None)
            .int(-5)
            .float(0.1)
            .float(f64::NAN);
        t.end_row();
        t.float(f64::NEG_INFINITY).float(1e300).opt_int(None);
        t.end_row();
        assert_eq!(
            String::from_utf8(t.into_bytes()).unwrap(),
            format!("\\\\N\t\\N\t-5\t0.1\tNaN\n-Infinity\t{}\t\\N\n", 1e300)
        );
    }
}
