//! Bind-parameter placeholders for raw SQL: `$n` on PostgreSQL, `?` on SQLite
//! (whose `?` are positional, so values are bound once per placeholder).

use sea_orm::DbBackend;

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
