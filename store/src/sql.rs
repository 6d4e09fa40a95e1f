//! Bind-parameter placeholders for raw SQL: `$n` on PostgreSQL, `?` on SQLite
//! (whose `?` are positional, so values are bound once per placeholder).

use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, Statement, Value};

/// The placeholder for the `n`-th value (1-based).
pub(crate) fn placeholder(backend: DbBackend, n: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${n}")
    } else {
        "?".to_owned()
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

/// `$1, $2…` or `?, ?…` rows for a multi-row VALUES list.
pub fn values_clause(backend: DbBackend, rows: usize, cols: usize) -> String {
    let mut n = 0;
    (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..cols)
                .map(|_| {
                    n += 1;
                    placeholder(backend, n)
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
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
