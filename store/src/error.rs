use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sea_orm::DbErr),
    #[error("database migration failed: {0}")]
    Migrate(#[source] sea_orm::DbErr),
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
}
