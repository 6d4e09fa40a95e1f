//! The live feed: newly stored data is announced to in-process subscribers (server-sent
//! events later), without polling the database. Within one process only for now.

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
pub struct IngestNotice {
    pub organization_id: String,
    /// `metrics`, `events`, `micro_operations` or `behaviour`.
    pub kind: &'static str,
    pub accepted: usize,
}

pub type Feed = broadcast::Sender<IngestNotice>;

/// Slow subscribers skip notices (and learn how many) instead of slowing ingest down.
pub fn new_feed() -> Feed {
    broadcast::channel(1024).0
}
