use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use headroom_store::{Backend, Db};

use crate::WorkerError;

/// Creates or upgrades the job-queue tables in the application database.
/// Idempotent; run by `headroom migrate` and before workers start.
pub async fn setup_queue(db: &Db) -> Result<(), WorkerError> {
    match db.backend() {
        Backend::Sqlite => {
            let pool = db.sqlite_pool().expect("sqlite backend has a sqlite pool");
            // Only the queue's migrations: `SqliteStorage::setup` would also switch
            // a pooled connection to `synchronous = OFF`, which we do not want for
            // billing data sharing this database.
            SqliteStorage::<()>::migrations()
                .run(pool)
                .await
                .map_err(|e| WorkerError::Queue(e.to_string()))
        }
        Backend::Postgres => {
            let pool = db
                .postgres_pool()
                .expect("postgres backend has a postgres pool");
            PostgresStorage::<()>::setup(pool)
                .await
                .map_err(|e| WorkerError::Queue(e.to_string()))
        }
    }
}
