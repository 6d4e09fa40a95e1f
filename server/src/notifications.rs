//! The notification hub: fans committed notifications out to every open
//! stream in this process. The database is the source of truth (a stream
//! resumes from its last event id); the hub reads new rows as soon as this
//! process commits one, when PostgreSQL announces one from another process
//! (`LISTEN`), and at the latest every `poll` otherwise.

use std::sync::Arc;
use std::time::Duration;

use headroom_store::Db;
use headroom_store::billing::{NOTIFY_CHANNEL, StoredNotification};
use headroom_store::sea_orm::sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<StoredNotification>>,
    /// Cancelled at shutdown so open streams end and do not hold it up.
    closing: CancellationToken,
}

impl Hub {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
            closing: CancellationToken::new(),
        }
    }

    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    pub fn close(&self) {
        self.closing.cancel();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredNotification>> {
        self.tx.subscribe()
    }

    /// Reads and broadcasts new notifications until the task is dropped.
    pub async fn run(self, db: Db, poll: Duration) {
        let written = db.notifications_written();
        let (pg_tx, mut pg_rx) = tokio::sync::mpsc::channel::<()>(1);
        if let Some(pool) = db.postgres_pool().cloned() {
            tokio::spawn(async move {
                loop {
                    let listened = async {
                        let mut l = PgListener::connect_with(&pool).await?;
                        l.listen(NOTIFY_CHANNEL).await?;
                        loop {
                            l.recv().await?;
                            let _ = pg_tx.try_send(());
                        }
                        #[allow(unreachable_code)]
                        Ok::<(), headroom_store::sea_orm::sqlx::Error>(())
                    };
                    let lost = listened.await;
                    // Shutting down: the pool closed or the hub stopped listening.
                    if pg_tx.is_closed() || pool.is_closed() {
                        return;
                    }
                    if let Err(e) = lost {
                        tracing::warn!(error = %e, "notification listener lost; reconnecting");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        // Sequence numbers are taken at insert, so with concurrent writers a
        // lower one can commit after a higher one. Rows are therefore read
        // from a watermark that trails by `SETTLE_MS`, and each is sent once.
        let mut watermark = match db.last_notification_seq().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "notification hub cannot start");
                0
            }
        };
        let mut sent = std::collections::BTreeSet::<i64>::new();
        loop {
            tokio::select! {
                _ = written.notified() => {}
                _ = pg_rx.recv() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            let mut from = watermark;
            loop {
                let settled = chrono::Utc::now().timestamp_millis() - SETTLE_MS;
                match db.notifications_after(from, 500).await {
                    Ok(rows) => {
                        let full = rows.len() == 500;
                        for n in rows {
                            from = n.seq;
                            if n.created_ms < settled && n.seq > watermark {
                                watermark = n.seq;
                            }
                            if sent.insert(n.seq) {
                                // No subscribers is not an error.
                                let _ = self.tx.send(Arc::new(n));
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading notifications failed");
                        break;
                    }
                }
            }
            // Only rows above the watermark are read again.
            sent = sent.split_off(&(watermark + 1));
        }
    }
}

/// How long a notification's transaction may take to commit after its
/// sequence number was taken, for the hub still to send it.
const SETTLE_MS: i64 = 5_000;

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}
