//! Webhook delivery: due messages are claimed, signed per Standard Webhooks,
//! POSTed, and their attempts logged; failures retry over about a day, after
//! which the delivery fails, and an endpoint that keeps failing (or answers
//! 410 Gone) is disabled. Nothing is dropped: a disabled endpoint's messages
//! wait until it is enabled again.

use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use futures::StreamExt;
use headroom_core::webhooks::{Outcome, next_attempt_ms, outcome, signature_header};
use headroom_store::Db;
use headroom_store::webhooks::{AttemptResult, DueDelivery};

/// A worker that dies mid-attempt leaves the message to be retried after this.
const LEASE_MS: i64 = 60_000;
const TIMEOUT: Duration = Duration::from_secs(15);
const CONCURRENCY: usize = 8;
/// An endpoint failing every attempt for this long is disabled.
const DISABLE_AFTER_MS: i64 = 24 * 3_600_000;

#[derive(Clone)]
pub struct WebhookJob {
    pub db: Db,
    pub client: reqwest::Client,
}

impl WebhookJob {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            client: client(),
        }
    }
}

/// Redirects are not followed: a signed message goes only where it was sent.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Headroom-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

pub async fn run(tick: Tick, ctx: Data<WebhookJob>) -> Result<(), BoxDynError> {
    let _ = tick;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (sent, delivered) = deliver_due(&ctx.db, &ctx.client, now_ms).await?;
    if sent > 0 {
        tracing::info!(sent, delivered, "webhook deliveries attempted");
    }
    Ok(())
}

/// Sends every delivery due at `now_ms`; returns (attempted, delivered).
pub async fn deliver_due(
    db: &Db,
    client: &reqwest::Client,
    now_ms: i64,
) -> Result<(usize, usize), BoxDynError> {
    let mut attempted = 0;
    let mut delivered = 0;
    loop {
        let due = db.claim_due_deliveries(now_ms, LEASE_MS, 200).await?;
        if due.is_empty() {
            break;
        }
        let n = due.len();
        let results: Vec<Result<bool, BoxDynError>> = futures::stream::iter(due)
            .map(|d| attempt(db, client, d, now_ms))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for r in results {
            attempted += 1;
            match r {
                Ok(true) => delivered += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "webhook attempt not recorded"),
            }
        }
        if n < 200 {
            break;
        }
    }
    Ok((attempted, delivered))
}

async fn attempt(
    db: &Db,
    client: &reqwest::Client,
    d: DueDelivery,
    now_ms: i64,
) -> Result<bool, BoxDynError> {
    let ts = now_ms / 1000;
    let body = d.delivery.payload.as_bytes().to_vec();
    let signature = signature_header(
        &d.endpoint.signing_secrets(now_ms),
        &d.delivery.id,
        ts,
        &body,
    )?;
    let started = Instant::now();
    let sent = client
        .post(&d.endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.delivery.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let (status, error) = match sent {
        Ok(res) => (Some(res.status().as_u16()), None),
        // Without the URL: it is the customer's own and already shown beside the log.
        Err(e) => (None, Some(e.without_url().to_string())),
    };
    let attempts = u32::try_from(d.delivery.attempts).unwrap_or(0) + 1;
    let failing_for = d.endpoint.failing_since_ms.map_or(0, |s| now_ms - s);
    let result = match outcome(status) {
        Outcome::Delivered => AttemptResult {
            at_ms: now_ms,
            status_code: status.map(i32::from),
            error,
            duration_ms,
            status: "delivered",
            next_attempt_ms: None,
            disable: None,
        },
        Outcome::Gone => AttemptResult {
            at_ms: now_ms,
            status_code: status.map(i32::from),
            error,
            duration_ms,
            status: "failed",
            next_attempt_ms: None,
            disable: Some("the endpoint answered 410 Gone".into()),
        },
        Outcome::Retry => {
            let next = next_attempt_ms(attempts, now_ms);
            AttemptResult {
                at_ms: now_ms,
                status_code: status.map(i32::from),
                error: error.or_else(|| status.map(|s| format!("HTTP {s}"))),
                duration_ms,
                status: if next.is_some() { "pending" } else { "failed" },
                next_attempt_ms: next,
                disable: (failing_for >= DISABLE_AFTER_MS)
                    .then(|| "every attempt failed for over 24 hours".to_owned()),
            }
        }
    };
    let ok = result.status == "delivered";
    db.record_webhook_attempt(&d.tenant, &d.delivery, &result)
        .await?;
    Ok(ok)
}
