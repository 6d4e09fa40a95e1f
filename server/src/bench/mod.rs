//! `headroom bench …`: throughput figures printed for people; nothing asserted.

pub mod forecast;
pub mod ingest;

pub use ingest::{IngestBench, run};
