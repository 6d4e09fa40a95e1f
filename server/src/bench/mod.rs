//! `headroom bench …`: throughput figures printed for people; nothing asserted.

pub mod controller;
mod cpu;
pub mod forecast;
pub mod forecast_job;
pub mod ingest;
pub mod notifications;
pub mod tick;

pub use ingest::{IngestBench, run};

use std::time::{Duration, Instant};

pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` over `items` split across all cores; returns the wall time.
pub(crate) fn timed_parallel<T: Send>(items: &mut [T], work: impl Fn(&mut T) + Sync) -> Duration {
    let chunk = items.len().div_ceil(threads()).max(1);
    let started = Instant::now();
    std::thread::scope(|s| {
        for part in items.chunks_mut(chunk) {
            let work = &work;
            s.spawn(move || part.iter_mut().for_each(work));
        }
    });
    started.elapsed()
}
