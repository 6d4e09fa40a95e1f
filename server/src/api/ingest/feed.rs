//! The live feed: newly stored data is announced to subscribers (server-sent events
//! later) without polling the database. With SQLite there is one process and the feed
//! is a broadcast channel. With PostgreSQL, replicas share it: notices go out through
//! `NOTIFY` and every process (the sender included) rebroadcasts what it hears via
//! `LISTEN`, so a browser connected to any replica sees data ingested by any other.

use headroom_store::Db;
use headroom_store::sea_orm::sqlx::{self, PgPool, postgres::PgListener};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

const CHANNEL: &str = "headroom_ingest";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestNotice {
    pub organization_id: String,
    /// `metrics`, `events`, `micro_operations` or `behaviour`.
    pub kind: String,
    pub accepted: usize,
}

#[derive(Clone)]
pub struct Feed {
    local: broadcast::Sender<IngestNotice>,
    postgres: Option<PgPool>,
}

impl Feed {
    pub fn new(db: &Db) -> Self {
        // Slow subscribers skip notices (and learn how many) instead of slowing ingest.
        Self {
            local: broadcast::channel(1024).0,
            postgres: db.postgres_pool().cloned(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<IngestNotice> {
        self.local.subscribe()
    }

    /// Announces a notice; a lost notice is logged, never an ingest failure (the data
    /// is stored either way, and a dashboard refresh shows it).
    pub async fn publish(&self, notice: IngestNotice) {
        match &self.postgres {
            None => {
                let _ = self.local.send(notice);
            }
            Some(pool) => {
                let payload = serde_json::to_string(&notice).unwrap_or_default();
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(pool)
                    .await
                {
                    tracing::warn!(error = %e, "live feed notice not sent");
                }
            }
        }
    }

    /// With PostgreSQL: relays `NOTIFY`s from every process into the local channel
    /// until the task is dropped. Reconnects after errors.
    pub async fn relay(self) {
        let Some(pool) = self.postgres.clone() else {
            return;
        };
        loop {
            if let Err(e) = self.listen(&pool).await {
                tracing::warn!(error = %e, "live feed listener lost; reconnecting");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }

    async fn listen(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        loop {
            let n = listener.recv().await?;
            match serde_json::from_str::<IngestNotice>(n.payload()) {
                Ok(notice) => {
                    let _ = self.local.send(notice);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable live feed notice"),
            }
        }
    }
}
