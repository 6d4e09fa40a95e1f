//! The system status shown on the home page, read from the database on the server.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemStatus {
    pub db_backend: String,
    pub pending_migrations: u64,
    pub housekeeping_runs: u64,
    /// RFC 3339, UTC.
    pub last_housekeeping_at: Option<String>,
    /// When the server answered (RFC 3339, UTC).
    pub checked_at: String,
}

// A fixed endpoint: the default one hashes the source path, so a bundle built
// from another checkout would call a route this server does not have.
#[server(prefix = "/rpc", endpoint = "get_status")]
pub async fn get_status() -> Result<SystemStatus, ServerFnError> {
    use chrono::{SecondsFormat, Utc};
    use headroom_store::Db;

    let db = use_context::<Db>()
        .ok_or_else(|| ServerFnError::new("database handle missing from the request context"))?;
    let internal = |e: headroom_store::StoreError| {
        tracing::error!(error = %e, "status query failed");
        ServerFnError::new("the status could not be read from the database")
    };
    let housekeeping = db.housekeeping_summary().await.map_err(internal)?;
    let pending = db.pending_migrations().await.map_err(internal)?;
    Ok(SystemStatus {
        db_backend: db.backend().as_str().to_owned(),
        pending_migrations: pending as u64,
        housekeeping_runs: housekeeping.runs,
        last_housekeeping_at: housekeeping
            .last_finished_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        checked_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}
