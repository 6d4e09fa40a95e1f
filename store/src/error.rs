use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sea_orm::DbErr),
    #[error("database migration failed: {0}")]
    Migrate(#[source] sea_orm::DbErr),
    /// A unique constraint refused the write; the message says which value.
    #[error("{0}")]
    Conflict(String),
    /// A stored value this version cannot read (e.g. an unknown role name).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// From the few queries that use the driver directly (bulk paths).
    #[error("database error: {0}")]
    Sqlx(sea_orm::sqlx::Error),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(message)`, anything else to `Db`.
    pub(crate) fn on_unique(e: sea_orm::DbErr, message: impl Into<String>) -> Self {
        match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Self::Conflict(message.into()),
            _ => Self::Db(e),
        }
    }
}
