//! Usage events read back, each with the allocation in force when it happened.

use crate::api::error::page_limit;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use headroom_core::accounts::Scope;
use headroom_core::telemetry::validate_workload;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query::instant;
use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody};
use crate::auth::Caller;
use crate::http::AppState;

const MAX_LIMIT: u64 = 1_000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Start (inclusive): RFC 3339 or unix seconds.
    pub from: String,
    /// End (exclusive): RFC 3339 or unix seconds.
    pub to: String,
    /// Only events of this type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub workload: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u64>,
}

/// The allocation in force when an event happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationSnapshot {
    /// The applied allocation decision in force.
    pub decision_id: String,
    /// Instances it left in force.
    pub instances: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub quantity: f64,
    pub timestamp: DateTime<Utc>,
    pub workload: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
    pub received_at: DateTime<Utc>,
    /// The allocation in force for the event's workload when it happened;
    /// absent when the workload had no applied allocation decision yet.
    pub allocation: Option<AllocationSnapshot>,
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Billable usage events in a time range, newest first, each with the
/// allocation in force when it happened (for cost attribution).
#[utoipa::path(get, path = "/api/v1/events", tag = "ingest", params(EventQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<UsageEventOut>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<Vec<UsageEventOut>>> {
    caller.require_scope(Scope::Read)?;
    let (from, to) = (instant("from", &q.from)?, instant("to", &q.to)?);
    if to <= from {
        return Err(ApiError::unprocessable("to must be after from"));
    }
    if let Some(w) = &q.workload {
        validate_workload(w).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    }
    let limit = page_limit(q.limit, 100, MAX_LIMIT)?;
    let events = state
        .db
        .usage_events_between(
            &caller.tenant,
            from,
            to,
            q.event_type.as_deref(),
            q.workload.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| UsageEventOut {
                id: e.id,
                event_type: e.event_type,
                quantity: e.quantity,
                timestamp: at(e.ts_ms),
                workload: e.workload,
                attributes: e.attributes.and_then(|a| serde_json::from_str(&a).ok()),
                received_at: at(e.received_ms),
                allocation: e.allocation.map(|a| AllocationSnapshot {
                    decision_id: a.decision_id,
                    instances: a.instances,
                }),
            })
            .collect(),
    ))
}
