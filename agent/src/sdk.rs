//! A small client for applications: billable usage events and timed
//! micro-operations, buffered in memory and sent in batches.
//!
//! ```no_run
//! # async fn demo() -> Result<(), headroom_agent::sdk::SdkError> {
//! use headroom_agent::sdk::{Client, MicroOperationType};
//! let client = Client::new("http://127.0.0.1:3000", "hr_...")?;
//! client.usage_event("api_call", 1.0).workload("api").attribute("plan", "pro").record()?;
//! let rows = client.time_micro_operation("req-42", MicroOperationType::DiskIo, || 2 + 2);
//! client.flush().await?;
//! # Ok(()) }
//! ```
//!
//! Sending: a batch goes when `max_batch` items are waiting, every `flush_interval`
//! (a background task, when the client is created inside a Tokio runtime), and on
//! [`Client::flush`]. Nothing is sent on drop (it would need to block): call
//! `flush().await` before the last clone goes; unsent items are logged as a warning.
//! Failed sends keep the items (up to `max_buffered`, then the oldest go, counted and
//! logged) and are retried with backoff. Usage events are keyed by `id` (a UUIDv7
//! when not given), micro-operations by (operation_id, type, start timestamp in ms):
//! a resend after a lost answer is stored once.
//!
//! What a timed micro-operation measures:
//! - `execution_time_ms`: measured, wall-clock (monotonic) time of the closure or
//!   future; for a future it includes the time it spent suspended.
//! - `cpu_cycles`, `memory_bytes`, `network_bytes`, `disk_bytes`: **not measured**;
//!   reported as 0 unless the code sets them through
//!   [`Client::time_micro_operation_with`] or [`Client::record_micro_operation`].
//!   (No hardware cycle counter is assumed, and cycles are never estimated from time.)

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::point::{MAX_WORKLOAD_LEN, check_name, rfc3339_millis};
use crate::ship::{Backoff, MAX_BATCH, Outcome, jitter, post_ndjson};

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The item was not recorded: fix the call.
    #[error("invalid {0}")]
    Invalid(String),
    /// Nothing was lost: the items stay buffered and are sent later.
    #[error("Headroom is unreachable or busy, items kept for later: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The key is wrong, revoked, or lacks the `ingest` scope; items stay buffered.
    #[error("the server refused the API key (HTTP {status}): {message}")]
    Unauthorized { status: u16, message: String },
    #[error("invalid base URL or HTTP client: {0}")]
    Setup(String),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Items per request (at most 1000); reaching it wakes the sender.
    pub max_batch: usize,
    /// How often the background task sends what is waiting.
    pub flush_interval: Duration,
    /// Items kept while Headroom is unreachable; past it the oldest are dropped.
    pub max_buffered: usize,
    pub request_timeout: Duration,
    /// Workload for items that name none.
    pub default_workload: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            max_batch: 500,
            flush_interval: Duration::from_secs(5),
            max_buffered: 100_000,
            request_timeout: Duration::from_secs(30),
            default_workload: None,
        }
    }
}

/// What a micro-operation used. See the module docs for what is measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ResourceUsage {
    pub cpu_cycles: u64,
    pub memory_bytes: u64,
    pub network_bytes: u64,
    pub disk_bytes: u64,
    pub execution_time_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicroOperationType {
    MemoryRead,
    CpuInstruction,
    NetworkSend,
    DiskIo,
    /// Any other `UPPER_SNAKE_CASE` name.
    Other(String),
}

impl MicroOperationType {
    pub fn as_str(&self) -> &str {
        match self {
            Self::MemoryRead => "MEMORY_READ",
            Self::CpuInstruction => "CPU_INSTRUCTION",
            Self::NetworkSend => "NETWORK_SEND",
            Self::DiskIo => "DISK_IO",
            Self::Other(s) => s,
        }
    }
}

#[derive(Serialize)]
struct MicroOperationEvent<'a> {
    #[serde(serialize_with = "rfc3339_millis")]
    timestamp: DateTime<Utc>,
    operation_id: &'a str,
    micro_operation_type: &'a str,
    resource_usage: ResourceUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<&'a str>,
}

#[derive(Serialize)]
struct UsageEventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    quantity: f64,
    #[serde(serialize_with = "rfc3339_millis")]
    timestamp: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<&'a Map<String, Value>>,
}

/// What one [`Client::flush`] achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushReport {
    pub accepted: u64,
    pub duplicates: u64,
    /// The server's reasons for items it refused one by one.
    pub rejected: Vec<String>,
    /// Items in batches refused whole (a 4xx other than 401/403/408/429).
    pub dropped: u64,
}

/// Totals since the client was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SdkCounts {
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Refused whole by the server, or pushed out of a full buffer.
    pub dropped: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Events,
    MicroOperations,
}

#[derive(Default)]
struct Buffers {
    events: VecDeque<String>,
    micro: VecDeque<String>,
}

impl Buffers {
    fn of(&mut self, kind: Kind) -> &mut VecDeque<String> {
        match kind {
            Kind::Events => &mut self.events,
            Kind::MicroOperations => &mut self.micro,
        }
    }

    fn len(&self) -> usize {
        self.events.len() + self.micro.len()
    }
}

struct Inner {
    http: reqwest::Client,
    events_url: String,
    micro_url: String,
    api_key: String,
    options: ClientOptions,
    buffers: Mutex<Buffers>,
    /// One flush at a time, so `flush()` returns only after in-flight items are answered.
    flushing: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
    closed: CancellationToken,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
}

impl Inner {
    fn buffers(&self) -> MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, kind: Kind, line: String) {
        let (len, overflow) = {
            let mut b = self.buffers();
            b.of(kind).push_back(line);
            let mut overflow = 0u64;
            while b.len() > self.options.max_buffered.max(1) {
                // The oldest of the longer queue goes.
                if b.events.len() >= b.micro.len() {
                    b.events.pop_front();
                } else {
                    b.micro.pop_front();
                }
                overflow += 1;
            }
            (b.of(kind).len(), overflow)
        };
        if overflow > 0 {
            let total = self.dropped.fetch_add(overflow, Ordering::Relaxed) + overflow;
            tracing::warn!(
                dropped = overflow,
                dropped_total = total,
                max_buffered = self.options.max_buffered,
                "Headroom client buffer full: dropped the oldest unsent items"
            );
        }
        if len >= self.options.max_batch {
            self.wake.notify_one();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.cancel();
        let b = self.buffers();
        if b.len() > 0 {
            tracing::warn!(
                usage_events = b.events.len(),
                micro_operations = b.micro.len(),
                "Headroom client dropped with unsent items; call `flush().await` before dropping it"
            );
        }
    }
}

/// Cheap to clone; clones share one buffer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, SdkError> {
        Self::with_options(base_url, api_key, ClientOptions::default())
    }

    pub fn with_options(
        base_url: &str,
        api_key: &str,
        mut options: ClientOptions,
    ) -> Result<Self, SdkError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| SdkError::Setup(format!("{base_url:?}: {e}")))?;
        if url.scheme() != "http" {
            return Err(SdkError::Setup(format!(
                "{base_url:?}: only http:// is supported by this build"
            )));
        }
        if let Some(w) = &options.default_workload {
            check_name("workload", w, MAX_WORKLOAD_LEN).map_err(SdkError::Invalid)?;
        }
        options.max_batch = options.max_batch.clamp(1, MAX_BATCH);
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .user_agent(concat!("headroom-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SdkError::Setup(e.to_string()))?;
        let base = base_url.trim_end_matches('/');
        let inner = Arc::new(Inner {
            http,
            events_url: format!("{base}/api/v1/events"),
            micro_url: format!("{base}/api/v1/micro-operations"),
            api_key: api_key.to_owned(),
            options,
            buffers: Mutex::default(),
            flushing: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
            closed: CancellationToken::new(),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        spawn_flusher(&inner);
        Ok(Self { inner })
    }

    /// A billable usage event; nothing is buffered until [`UsageEvent::record`].
    pub fn usage_event(&self, event_type: impl Into<String>, quantity: f64) -> UsageEvent<'_> {
        UsageEvent {
            client: self,
            id: None,
            event_type: event_type.into(),
            quantity,
            timestamp: None,
            workload: None,
            attributes: Map::new(),
        }
    }

    /// Runs `f`, times it, and records a micro-operation (resource counters 0: see the
    /// module docs). An invalid `operation_id` or type is logged, and `f` still runs.
    pub fn time_micro_operation<R>(
        &self,
        operation_id: &str,
        kind: MicroOperationType,
        f: impl FnOnce() -> R,
    ) -> R {
        self.time_micro_operation_with(operation_id, kind, |_| f())
    }

    /// Like [`Client::time_micro_operation`]; `f` may fill in the counters it knows
    /// (e.g. `network_bytes` of what it sent). `execution_time_ms` is always measured.
    pub fn time_micro_operation_with<R>(
        &self,
        operation_id: &str,
        kind: MicroOperationType,
        f: impl FnOnce(&mut ResourceUsage) -> R,
    ) -> R {
        let started = Utc::now();
        let clock = Instant::now();
        let mut usage = ResourceUsage::default();
        let out = f(&mut usage);
        usage.execution_time_ms = clock.elapsed().as_secs_f64() * 1000.0;
        if let Err(e) = self.record_micro_operation(operation_id, kind, started, usage) {
            tracing::warn!(error = %e, "micro-operation not recorded");
        }
        out
    }

    /// Awaits `fut` and records it as a micro-operation; the time includes the time
    /// the future spent suspended.
    pub async fn time_micro_operation_async<F: Future>(
        &self,
        operation_id: &str,
        kind: MicroOperationType,
        fut: F,
    ) -> F::Output {
        let started = Utc::now();
        let clock = Instant::now();
        let out = fut.await;
        let usage = ResourceUsage {
            execution_time_ms: clock.elapsed().as_secs_f64() * 1000.0,
            ..ResourceUsage::default()
        };
        if let Err(e) = self.record_micro_operation(operation_id, kind, started, usage) {
            tracing::warn!(error = %e, "micro-operation not recorded");
        }
        out
    }

    /// Records a micro-operation measured by the caller.
    pub fn record_micro_operation(
        &self,
        operation_id: &str,
        kind: MicroOperationType,
        started: DateTime<Utc>,
        usage: ResourceUsage,
    ) -> Result<(), SdkError> {
        printable_id("operation_id", operation_id)?;
        let t = kind.as_str();
        if t.is_empty()
            || t.len() > 64
            || !t.starts_with(|c: char| c.is_ascii_uppercase())
            || !t
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(SdkError::Invalid(format!(
                "micro_operation_type {t:?}: use UPPER_SNAKE_CASE, e.g. MEMORY_READ"
            )));
        }
        let limit = i64::MAX as u64;
        if [
            usage.cpu_cycles,
            usage.memory_bytes,
            usage.network_bytes,
            usage.disk_bytes,
        ]
        .iter()
        .any(|n| *n > limit)
            || !usage.execution_time_ms.is_finite()
            || usage.execution_time_ms < 0.0
        {
            return Err(SdkError::Invalid(format!(
                "resource_usage out of range: {usage:?}"
            )));
        }
        let line = serde_json::to_string(&MicroOperationEvent {
            timestamp: started,
            operation_id,
            micro_operation_type: t,
            resource_usage: usage,
            workload: self.inner.options.default_workload.as_deref(),
        })
        .map_err(|e| SdkError::Invalid(e.to_string()))?;
        self.inner.push(Kind::MicroOperations, line);
        Ok(())
    }

    /// Items waiting to be sent.
    pub fn buffered(&self) -> usize {
        self.inner.buffers().len()
    }

    pub fn stats(&self) -> SdkCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SdkCounts {
            accepted: get(&self.inner.accepted),
            duplicates: get(&self.inner.duplicates),
            rejected: get(&self.inner.rejected),
            dropped: get(&self.inner.dropped),
        }
    }

    /// Sends everything buffered now. On `Unavailable` or `Unauthorized` the items
    /// not yet answered for stay buffered.
    pub async fn flush(&self) -> Result<FlushReport, SdkError> {
        let inner = &self.inner;
        let _one_at_a_time = inner.flushing.lock().await;
        let mut report = FlushReport::default();
        for (kind, url) in [
            (Kind::Events, &inner.events_url),
            (Kind::MicroOperations, &inner.micro_url),
        ] {
            let mut size = inner.options.max_batch;
            loop {
                let batch: Vec<String> = {
                    let mut b = inner.buffers();
                    let q = b.of(kind);
                    let n = size.min(q.len());
                    q.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let put_back = |batch: Vec<String>| {
                    let mut b = inner.buffers();
                    let q = b.of(kind);
                    for line in batch.into_iter().rev() {
                        q.push_front(line);
                    }
                };
                match post_ndjson(&inner.http, url, &inner.api_key, &batch).await {
                    Outcome::Stored(r) => {
                        inner.accepted.fetch_add(r.accepted, Ordering::Relaxed);
                        inner.duplicates.fetch_add(r.duplicates, Ordering::Relaxed);
                        inner
                            .rejected
                            .fetch_add(r.rejected.len() as u64, Ordering::Relaxed);
                        report.accepted += r.accepted;
                        report.duplicates += r.duplicates;
                        for rej in r.rejected {
                            tracing::warn!(kind = ?kind, reason = %rej.reason, "Headroom refused an item");
                            report.rejected.push(rej.reason);
                        }
                    }
                    Outcome::TooLarge { .. } if batch.len() > 1 => {
                        size = batch.len() / 2;
                        put_back(batch);
                    }
                    Outcome::TooLarge { message } => {
                        drop_refused(inner, &mut report, kind, 413, &message, batch.len());
                    }
                    Outcome::Refused { status, message } => {
                        drop_refused(inner, &mut report, kind, status, &message, batch.len());
                    }
                    Outcome::Unauthorized { status, message } => {
                        put_back(batch);
                        return Err(SdkError::Unauthorized { status, message });
                    }
                    Outcome::Retry {
                        reason,
                        retry_after,
                    } => {
                        put_back(batch);
                        return Err(SdkError::Unavailable {
                            reason,
                            retry_after,
                        });
                    }
                }
            }
        }
        Ok(report)
    }
}

fn drop_refused(
    inner: &Inner,
    report: &mut FlushReport,
    kind: Kind,
    status: u16,
    message: &str,
    n: usize,
) {
    inner.dropped.fetch_add(n as u64, Ordering::Relaxed);
    report.dropped += n as u64;
    tracing::error!(kind = ?kind, status, items = n, %message, "Headroom refused a batch; dropped it");
}

fn printable_id(field: &str, s: &str) -> Result<(), SdkError> {
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err(SdkError::Invalid(format!(
            "{field} must be 1 to 200 printable characters"
        )));
    }
    Ok(())
}

/// Sends on size (woken by `push`) and every `flush_interval`; backs off on failures.
/// Holds the client only while sending, so dropping the last clone ends it.
fn spawn_flusher(inner: &Arc<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let (wake, closed) = (inner.wake.clone(), inner.closed.clone());
    let interval = inner.options.flush_interval;
    runtime.spawn(async move {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let mut wait = interval;
        loop {
            tokio::select! {
                () = closed.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            let Some(inner) = weak.upgrade() else {
                return;
            };
            if inner.buffers().len() == 0 {
                wait = interval;
                continue;
            }
            let client = Client { inner };
            wait = match client.flush().await {
                Ok(_) => {
                    backoff.reset();
                    interval
                }
                Err(SdkError::Unavailable {
                    reason,
                    retry_after,
                }) => {
                    let delay = retry_after
                        .map_or_else(|| backoff.next_delay(), |after| after + jitter(Duration::from_millis(500)));
                    tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "Headroom client could not send; will retry");
                    delay
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "Headroom client could not send");
                    delay
                }
            };
        }
    });
}

/// A usage event being built; [`UsageEvent::record`] buffers it.
#[must_use = "call .record() to buffer the event"]
pub struct UsageEvent<'c> {
    client: &'c Client,
    id: Option<String>,
    event_type: String,
    quantity: f64,
    timestamp: Option<DateTime<Utc>>,
    workload: Option<String>,
    attributes: Map<String, Value>,
}

impl UsageEvent<'_> {
    /// The idempotency key (1 to 200 printable characters); a UUIDv7 if not given.
    /// Reuse it when recording the same event again (e.g. after a crash).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn workload(mut self, workload: impl Into<String>) -> Self {
        self.workload = Some(workload.into());
        self
    }

    /// When it happened; now if not given.
    pub fn timestamp(mut self, at: DateTime<Utc>) -> Self {
        self.timestamp = Some(at);
        self
    }

    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Checks the event as the server would and buffers it. Returns its id.
    pub fn record(self) -> Result<String, SdkError> {
        let id = self.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        printable_id("id", &id)?;
        check_name("type", &self.event_type, 100).map_err(SdkError::Invalid)?;
        if !self.quantity.is_finite() || self.quantity < 0.0 {
            return Err(SdkError::Invalid(format!(
                "quantity must be a finite, non-negative number (got {})",
                self.quantity
            )));
        }
        let options = &self.client.inner.options;
        let workload = self
            .workload
            .as_deref()
            .or(options.default_workload.as_deref());
        if let Some(w) = workload {
            check_name("workload", w, MAX_WORKLOAD_LEN).map_err(SdkError::Invalid)?;
        }
        let attributes = (!self.attributes.is_empty()).then_some(&self.attributes);
        if let Some(a) = attributes
            && serde_json::to_string(a).map_or(0, |s| s.len()) > 4096
        {
            return Err(SdkError::Invalid(
                "attributes must be at most 4 KiB of JSON".to_owned(),
            ));
        }
        let line = serde_json::to_string(&UsageEventBody {
            id: &id,
            event_type: &self.event_type,
            quantity: self.quantity,
            timestamp: self.timestamp.unwrap_or_else(Utc::now),
            workload,
            attributes,
        })
        .map_err(|e| SdkError::Invalid(e.to_string()))?;
        self.client.inner.push(Kind::Events, line);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(max_buffered: usize) -> Client {
        // Outside a runtime: no background task, nothing is sent.
        Client::with_options(
            "http://127.0.0.1:9",
            "hr_x_y",
            ClientOptions {
                max_buffered,
                ..ClientOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn events_are_checked_before_they_are_buffered() {
        let c = client(100);
        let id = c.usage_event("api_call", 2.0).record().unwrap();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
        assert_eq!(
            c.usage_event("api_call", 1.0)
                .id("req-1")
                .workload("api")
                .attribute("plan", "pro")
                .record()
                .unwrap(),
            "req-1"
        );
        assert!(c.usage_event("api call", 1.0).record().is_err());
        assert!(c.usage_event("api_call", -1.0).record().is_err());
        assert!(c.usage_event("api_call", f64::NAN).record().is_err());
        assert!(c.usage_event("api_call", 1.0).id("").record().is_err());
        assert!(
            c.usage_event("api_call", 1.0)
                .workload("a b")
                .record()
                .is_err()
        );
        assert!(
            c.usage_event("api_call", 1.0)
                .attribute("big", "x".repeat(5000))
                .record()
                .is_err()
        );
        assert_eq!(c.buffered(), 2);
        let line = c.inner.buffers().events[1].clone();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], "req-1");
        assert_eq!(v["type"], "api_call");
        assert_eq!(v["attributes"]["plan"], "pro");
        c.inner.buffers().events.clear();
    }

    #[test]
    fn timing_measures_execution_time_and_reports_unmeasured_counters_as_zero() {
        let c = client(100);
        let out = c.time_micro_operation("op-1", MicroOperationType::DiskIo, || {
            std::thread::sleep(Duration::from_millis(20));
            7
        });
        assert_eq!(out, 7);
        c.time_micro_operation_with("op-2", MicroOperationType::NetworkSend, |u| {
            u.network_bytes = 1500;
        });
        // Invalid type: not recorded, the closure still runs.
        assert_eq!(
            c.time_micro_operation("op-3", MicroOperationType::Other("lower".into()), || 1),
            1
        );
        let lines: Vec<Value> = c
            .inner
            .buffers()
            .micro
            .drain(..)
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["micro_operation_type"], "DISK_IO");
        let ms = lines[0]["resource_usage"]["execution_time_ms"]
            .as_f64()
            .unwrap();
        assert!(ms >= 20.0, "{ms}");
        assert_eq!(lines[0]["resource_usage"]["cpu_cycles"], 0);
        assert_eq!(lines[1]["resource_usage"]["network_bytes"], 1500);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let c = client(3);
        for i in 0..5 {
            c.usage_event("e", 1.0)
                .id(format!("id-{i}"))
                .record()
                .unwrap();
        }
        assert_eq!(c.buffered(), 3);
        assert_eq!(c.stats().dropped, 2);
        let first: Value = serde_json::from_str(&c.inner.buffers().events[0]).unwrap();
        assert_eq!(first["id"], "id-2");
        c.inner.buffers().events.clear();
    }

    #[tokio::test]
    async fn an_unreachable_server_keeps_the_items() {
        let c = client(100);
        c.usage_event("e", 1.0).record().unwrap();
        c.time_micro_operation_async("op", MicroOperationType::CpuInstruction, async {})
            .await;
        // Port 9 on loopback: nothing listens.
        match c.flush().await {
            Err(SdkError::Unavailable { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(c.buffered(), 2);
        c.inner.buffers().events.clear();
        c.inner.buffers().micro.clear();
    }
}
