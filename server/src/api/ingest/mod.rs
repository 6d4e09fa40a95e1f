//! The intake: metric points, usage events, micro-operations and behaviour events,
//! in batches; each item stored once or refused with its index and reason.

pub mod body;
mod events;
pub mod feed;
pub mod items;
mod query;

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use headroom_core::accounts::Scope;
use headroom_core::telemetry::TimeWindow;
use headroom_store::StoreError;
use headroom_store::telemetry::InsertOutcome;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

pub use events::{__path_list_events, list_events};
pub(crate) use query::instant;
pub use query::{__path_list_series, __path_query_metrics, list_series, query_metrics};

use self::body::{Limits, read_batch};
use self::feed::IngestNotice;
use self::items::{
    BehaviourEventBody, MetricPointBody, MicroOperationBody, Privacy, UsageEventBody,
};
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::{AuthMethod, Caller};
use crate::http::AppState;

/// Ingest policy, from the config.
pub struct IngestSettings {
    pub limits: Limits,
    /// Requests per second per API key (or per user for browser sessions).
    pub limiter: DefaultKeyedRateLimiter<String>,
    pub max_future: Duration,
    pub raw_retention: Duration,
}

impl IngestSettings {
    pub fn new(
        limits: Limits,
        requests_per_second: std::num::NonZeroU32,
        max_future: Duration,
        raw_retention: Duration,
    ) -> Self {
        Self {
            limits,
            limiter: RateLimiter::keyed(Quota::per_second(requests_per_second)),
            max_future,
            raw_retention,
        }
    }

    fn window(&self) -> TimeWindow {
        TimeWindow {
            now_ms: Utc::now().timestamp_millis(),
            max_future_ms: self.max_future.as_millis() as i64,
            max_age_ms: self.raw_retention.as_millis() as i64,
        }
    }
}

/// What became of a batch. Every item is either accepted, a duplicate of one
/// already stored (a replay: not counted again), or rejected with its reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// Position in the batch (array index, or line number from 0 for NDJSON).
    pub index: usize,
    pub reason: String,
}

async fn ingest<T, F, Fut>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    kind: &'static str,
    validate: impl Fn(&RawValue, &TimeWindow) -> Result<T, String>,
    store: F,
) -> ApiResult<Json<IngestReport>>
where
    F: FnOnce(Vec<T>) -> Fut,
    Fut: Future<Output = Result<InsertOutcome, StoreError>>,
{
    caller.require_scope(Scope::Ingest)?;
    let budget_key = match &caller.method {
        AuthMethod::ApiKey { key_id, .. } => key_id.clone(),
        AuthMethod::Session { user, .. } => user.user_id.clone(),
    };
    let settings = &state.ingest;
    settings
        .limiter
        .check_key(&budget_key)
        .map_err(|not_until| {
            ApiError::rate_limited(not_until.wait_time_from(DefaultClock::default().now()))
        })?;

    let items = read_batch(headers, body, &settings.limits).await?;
    let window = settings.window();
    let mut rejected = Vec::new();
    let mut positions = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match item.and_then(|v| validate(&v, &window)) {
            Ok(row) => {
                positions.push(index);
                rows.push(row);
            }
            Err(reason) => rejected.push(Rejected { index, reason }),
        }
    }
    let outcome = if rows.is_empty() {
        InsertOutcome::default()
    } else {
        store(rows).await?
    };
    rejected.extend(outcome.conflicts.iter().map(|&i| Rejected {
        index: positions[i],
        reason: "id was already used for an event with different content".to_owned(),
    }));
    rejected.sort_by_key(|r| r.index);
    let accepted = outcome.inserted.len();
    if accepted > 0 {
        metrics::counter!("headroom_ingested_total", "kind" => kind).increment(accepted as u64);
        state
            .feed
            .publish(IngestNotice {
                organization_id: caller.tenant.id().to_owned(),
                kind: kind.to_owned(),
                accepted,
            })
            .await;
    }
    Ok(Json(IngestReport {
        accepted,
        duplicates: outcome.duplicates.len(),
        rejected,
    }))
}

/// Send metric points (`ingest` scope): JSON array or NDJSON, optionally gzip.
/// A point's key is (workload, metric, timestamp): sending it again is a duplicate.
#[utoipa::path(post, path = "/api/v1/metrics", tag = "ingest",
    request_body(content = Vec<MetricPointBody>, description = "JSON array, or NDJSON with Content-Type application/x-ndjson; Content-Encoding gzip accepted"),
    security(("api_key" = ["ingest"]), ("session" = [])),
    responses(
        (status = 200, body = IngestReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    ))]
pub async fn ingest_metrics(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IngestReport>> {
    let (db, tenant) = (state.db.clone(), caller.tenant.clone());
    ingest(
        &state,
        &caller,
        &headers,
        body,
        "metrics",
        items::point,
        |rows| async move { db.insert_points(&tenant, &rows).await },
    )
    .await
}

/// Send billable usage events (`ingest` scope). `id` is the idempotency key: a replay
/// is reported as a duplicate and never counted twice; the same id with different
/// content is rejected.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest",
    request_body(content = Vec<UsageEventBody>, description = "JSON array or NDJSON; gzip accepted"),
    security(("api_key" = ["ingest"]), ("session" = [])),
    responses(
        (status = 200, body = IngestReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    ))]
pub async fn ingest_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IngestReport>> {
    let (db, tenant) = (state.db.clone(), caller.tenant.clone());
    let now = Utc::now().timestamp_millis();
    ingest(
        &state,
        &caller,
        &headers,
        body,
        "events",
        items::usage_event,
        |rows| async move { db.insert_usage_events(&tenant, &rows, now).await },
    )
    .await
}

/// Send micro-operation events (`ingest` scope). Key: (operation_id,
/// micro_operation_type, timestamp).
#[utoipa::path(post, path = "/api/v1/micro-operations", tag = "ingest",
    request_body(content = Vec<MicroOperationBody>, description = "JSON array or NDJSON; gzip accepted"),
    security(("api_key" = ["ingest"]), ("session" = [])),
    responses(
        (status = 200, body = IngestReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    ))]
pub async fn ingest_micro_operations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IngestReport>> {
    let (db, tenant) = (state.db.clone(), caller.tenant.clone());
    ingest(
        &state,
        &caller,
        &headers,
        body,
        "micro_operations",
        items::micro_operation,
        |rows| async move { db.insert_micro_operations(&tenant, &rows).await },
    )
    .await
}

/// Send end-user behaviour events (`ingest` scope). `user_id` is stored only as a
/// salted hash; `device` and `geo` only if the organisation enabled them.
#[utoipa::path(post, path = "/api/v1/behaviour", tag = "ingest",
    request_body(content = Vec<BehaviourEventBody>, description = "JSON array or NDJSON; gzip accepted"),
    security(("api_key" = ["ingest"]), ("session" = [])),
    responses(
        (status = 200, body = IngestReport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody),
    ))]
pub async fn ingest_behaviour(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IngestReport>> {
    caller.require_scope(Scope::Ingest)?;
    let (store_attributes, salt) = state.db.privacy(&caller.tenant).await?;
    let privacy = Privacy {
        store_attributes,
        salt,
    };
    let (db, tenant) = (state.db.clone(), caller.tenant.clone());
    ingest(
        &state,
        &caller,
        &headers,
        body,
        "behaviour",
        move |v, w| items::behaviour_event(v, w, &privacy),
        |rows| async move { db.insert_behaviour_events(&tenant, &rows).await },
    )
    .await
}
