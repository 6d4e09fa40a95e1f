//! Sends spooled points to `POST /api/v1/metrics` and removes them from the spool once
//! the server has answered for them.
//!
//! Delivery is at least once: a batch stays in the spool until a 200 answer (or a
//! refusal that can never turn into success) comes back, and is sent again otherwise.
//! The server keys points by (workload, metric, timestamp), so a batch sent twice is
//! stored once and reported as duplicates the second time: together, exactly once.
//!
//! Answers:
//! - 200: acknowledged; items the server rejected one by one (e.g. too old) are logged
//!   and counted, and not sent again.
//! - connection errors, 5xx, 408, 429: retried with exponential backoff and full
//!   jitter (base 0.5 s, cap 60 s); a `Retry-After` (seconds) is honoured.
//! - 413: the batch is halved and sent again (a single point too large is dropped).
//! - 401, 403: the key is wrong, revoked or lacks the `ingest` scope: [`ShipError::Unauthorized`],
//!   and the agent stops.
//! - any other 4xx: the batch can never succeed; the server's message is logged and
//!   the batch dropped and counted.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::spool::SharedSpool;

/// Most points per request.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// Where Headroom answers, e.g. `http://127.0.0.1:3000`.
    pub base_url: String,
    /// `hr_...`, with the `ingest` scope.
    pub api_key: String,
    /// Points per request, at most [`MAX_BATCH`].
    pub batch_size: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub request_timeout: Duration,
    /// How often an empty spool is looked at again.
    pub idle_poll: Duration,
}

impl ShipConfig {
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: api_key.into(),
            batch_size: MAX_BATCH,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// Exponential backoff with full jitter: the n-th delay (from 0) is uniform in
/// `[0, min(cap, base × 2^n)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Failed attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The largest delay the next call to [`Backoff::next_delay`] can return.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        jitter(ceiling)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Uniform in `[0, max]`.
pub fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// The server's answer to a batch.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IngestReport {
    pub accepted: u64,
    pub duplicates: u64,
    #[serde(default)]
    pub rejected: Vec<Rejected>,
}

/// An item the server refused, by its position in the batch.
#[derive(Debug, Clone, Deserialize)]
pub struct Rejected {
    pub index: usize,
    pub reason: String,
}

/// What became of one request.
#[derive(Debug)]
pub enum Outcome {
    Stored(IngestReport),
    /// Connection error, 5xx, 408 or 429: send the same batch again later.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 413: the batch is too large for the server.
    TooLarge {
        message: String,
    },
    /// Another 4xx: this batch can never succeed.
    Refused {
        status: u16,
        message: String,
    },
    /// 401 or 403: the key is wrong, revoked, or lacks the scope.
    Unauthorized {
        status: u16,
        message: String,
    },
}

/// Posts items (one JSON value per line) as NDJSON, and classifies the answer.
pub async fn post_ndjson(
    http: &reqwest::Client,
    url: &str,
    api_key: &str,
    lines: &[String],
) -> Outcome {
    let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        body.push_str(line);
        body.push('\n');
    }
    let sent = http
        .post(url)
        .bearer_auth(api_key)
        .header(CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(res) => classify(res).await,
        Err(e) => Outcome::Retry {
            reason: error_chain(&e),
            retry_after: None,
        },
    }
}

async fn classify(res: reqwest::Response) -> Outcome {
    let status = res.status();
    let retry_after = res
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if status.is_success() {
        return match res.json::<IngestReport>().await {
            Ok(report) => Outcome::Stored(report),
            // E.g. the connection broke mid-answer: sending again is safe.
            Err(e) => Outcome::Retry {
                reason: format!("unreadable answer ({status}): {}", error_chain(&e)),
                retry_after: None,
            },
        };
    }
    let text = res.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(300).collect());
    let code = status.as_u16();
    match code {
        401 | 403 => Outcome::Unauthorized {
            status: code,
            message,
        },
        413 => Outcome::TooLarge { message },
        408 | 429 => Outcome::Retry {
            reason: format!("HTTP {status}: {message}"),
            retry_after,
        },
        400..=499 => Outcome::Refused {
            status: code,
            message,
        },
        _ => Outcome::Retry {
            reason: format!("HTTP {status}: {message}"),
            retry_after,
        },
    }
}

/// An error and its causes on one line ("error sending request: ...: Connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Running totals, readable while the shipper runs.
#[derive(Debug, Default)]
pub struct ShipStats {
    batches: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    dropped_batches: AtomicU64,
    dropped_points: AtomicU64,
    retries: AtomicU64,
}

/// A snapshot of [`ShipStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipCounts {
    /// Batches the server answered 200 to.
    pub batches: u64,
    pub accepted: u64,
    /// Points the server already had (re-sent after a lost answer or a restart).
    pub duplicates: u64,
    /// Points the server refused one by one (e.g. older than its retention).
    pub rejected: u64,
    /// Batches refused whole with a 4xx, and the points in them.
    pub dropped_batches: u64,
    pub dropped_points: u64,
    /// Failed attempts that were (or will be) retried.
    pub retries: u64,
}

impl ShipStats {
    pub fn snapshot(&self) -> ShipCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ShipCounts {
            batches: get(&self.batches),
            accepted: get(&self.accepted),
            duplicates: get(&self.duplicates),
            rejected: get(&self.rejected),
            dropped_batches: get(&self.dropped_batches),
            dropped_points: get(&self.dropped_points),
            retries: get(&self.retries),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(
        "the server refused the API key (HTTP {status}: {message}); check HEADROOM_AGENT_KEY and that the key has the ingest scope"
    )]
    Unauthorized { status: u16, message: String },
    #[error("spool: {0}")]
    Spool(#[from] io::Error),
}

/// What one [`Shipper::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The spool is empty.
    Idle,
    /// A batch was stored (and removed from the spool).
    Sent,
    /// A batch was refused for good (and removed from the spool).
    Dropped,
    /// Nothing was removed; try again after this delay.
    Retry(Duration),
}

pub struct Shipper {
    http: reqwest::Client,
    url: String,
    api_key: String,
    batch_size: usize,
    backoff: Backoff,
    backoff_base: Duration,
    idle_poll: Duration,
    stats: Arc<ShipStats>,
}

impl Shipper {
    pub fn new(config: ShipConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("headroom-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            url: format!("{}/api/v1/metrics", config.base_url.trim_end_matches('/')),
            api_key: config.api_key,
            batch_size: config.batch_size.clamp(1, MAX_BATCH),
            backoff: Backoff::new(config.backoff_base, config.backoff_cap),
            backoff_base: config.backoff_base,
            idle_poll: config.idle_poll,
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> Arc<ShipStats> {
        self.stats.clone()
    }

    /// One attempt at the oldest batch in the spool.
    pub async fn step(&mut self, spool: &SharedSpool) -> Result<Step, ShipError> {
        let batch = spool.lock().peek(self.batch_size)?;
        let Some(batch) = batch else {
            return Ok(Step::Idle);
        };
        let n = batch.lines.len() as u64;
        match post_ndjson(&self.http, &self.url, &self.api_key, &batch.lines).await {
            Outcome::Stored(report) => {
                // Counted before the spool forgets the batch: whoever sees the spool
                // empty also sees the counts.
                let s = &self.stats;
                add(&s.batches, 1);
                add(&s.accepted, report.accepted);
                add(&s.duplicates, report.duplicates);
                add(&s.rejected, report.rejected.len() as u64);
                spool.lock().ack(&batch)?;
                if self.backoff.attempt() > 0 {
                    tracing::info!(
                        after_attempts = self.backoff.attempt(),
                        "sending points works again"
                    );
                }
                self.backoff.reset();
                if let Some(first) = report.rejected.first() {
                    tracing::warn!(
                        rejected = report.rejected.len(),
                        first_index = first.index,
                        first_reason = %first.reason,
                        "the server refused some points; they are not sent again"
                    );
                }
                tracing::debug!(
                    points = n,
                    accepted = report.accepted,
                    duplicates = report.duplicates,
                    "batch sent"
                );
                Ok(Step::Sent)
            }
            Outcome::TooLarge { message } if n > 1 => {
                self.batch_size = (batch.lines.len() / 2).max(1);
                tracing::warn!(
                    points = n,
                    batch_size = self.batch_size,
                    %message,
                    "batch too large for the server; sending smaller batches"
                );
                Ok(Step::Retry(Duration::ZERO))
            }
            Outcome::TooLarge { message } => self.drop_batch(spool, &batch, 413, &message),
            Outcome::Refused { status, message } => {
                self.drop_batch(spool, &batch, status, &message)
            }
            Outcome::Unauthorized { status, message } => {
                Err(ShipError::Unauthorized { status, message })
            }
            Outcome::Retry {
                reason,
                retry_after,
            } => {
                let delay = match retry_after {
                    Some(after) => after + jitter(self.backoff_base),
                    None => self.backoff.next_delay(),
                };
                add(&self.stats.retries, 1);
                tracing::warn!(
                    attempt = self.backoff.attempt(),
                    retry_in_ms = delay.as_millis() as u64,
                    pending = spool.pending(),
                    %reason,
                    "could not send points; they stay spooled and will be sent again"
                );
                Ok(Step::Retry(delay))
            }
        }
    }

    fn drop_batch(
        &mut self,
        spool: &SharedSpool,
        batch: &crate::spool::Batch,
        status: u16,
        message: &str,
    ) -> Result<Step, ShipError> {
        add(&self.stats.dropped_batches, 1);
        add(&self.stats.dropped_points, batch.lines.len() as u64);
        spool.lock().ack(batch)?;
        self.backoff.reset();
        tracing::error!(
            status,
            points = batch.lines.len(),
            %message,
            "the server refused a batch that can never succeed; dropped it"
        );
        Ok(Step::Dropped)
    }

    /// Sends whatever the spool holds, as it arrives, until `cancel` fires (an
    /// in-flight request is finished first). Returns early only on a refused key.
    pub async fn run(
        &mut self,
        spool: &SharedSpool,
        cancel: &CancellationToken,
    ) -> Result<(), ShipError> {
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let wait = match self.step(spool).await? {
                Step::Sent | Step::Dropped => continue,
                Step::Idle => self.idle_poll,
                Step::Retry(delay) => delay,
            };
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends until the spool is empty (`Ok(true)`) or `limit` has passed (`Ok(false)`;
    /// what is left stays spooled). For shutdown.
    pub async fn drain(&mut self, spool: &SharedSpool, limit: Duration) -> Result<bool, ShipError> {
        let deadline = Instant::now() + limit;
        loop {
            let step = match tokio::time::timeout_at(deadline, self.step(spool)).await {
                Ok(step) => step?,
                Err(_) => return Ok(false),
            };
            match step {
                Step::Idle => return Ok(true),
                Step::Sent | Step::Dropped => {}
                Step::Retry(delay) => {
                    if Instant::now() + delay >= deadline {
                        return Ok(false);
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_the_cap() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(60));
        let mut b = Backoff::new(base, cap);
        for n in 0..200u32 {
            let ceiling = b.ceiling();
            let expected = if n < 8 { base * 2u32.pow(n) } else { cap };
            assert_eq!(ceiling, expected.min(cap), "attempt {n}");
            let d = b.next_delay();
            assert!(d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
        }
        assert_eq!(b.attempt(), 200);
        b.reset();
        assert_eq!(b.ceiling(), base);
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..500)
            .map(|_| {
                let mut probe = b.clone();
                probe.next_delay()
            })
            .collect();
        let (lo, hi) = (Duration::from_secs(15), Duration::from_secs(45));
        assert!(delays.iter().any(|d| *d < lo), "some short delays");
        assert!(delays.iter().any(|d| *d > hi), "some long delays");
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(60)));
    }

    #[test]
    fn a_zero_base_never_waits_and_huge_attempts_do_not_overflow() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::ZERO);
        let mut b = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::from_secs(5));
        for _ in 0..70 {
            assert!(b.next_delay() <= Duration::from_secs(5));
        }
    }

    #[test]
    fn error_chains_read_on_one_line() {
        let inner = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused");
        let outer = io::Error::other(inner);
        assert_eq!(error_chain(&outer), "Connection refused");
    }
}
