//! What customers tell the forecaster: external events and workload profiles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use headroom_core::accounts::Scope;
use headroom_core::forecast::inputs::{Category, ExternalEvent, WorkloadProfile};
use headroom_core::telemetry::validate_workload;
use headroom_store::forecast_inputs::{StoredEvent, StoredProfile};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::error::{ApiError, ApiJson, ApiResult, ErrorBody};
use crate::api::forecasts::instant;
use crate::auth::Caller;
use crate::http::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalEventRequest {
    /// What happens, e.g. "Black Friday campaign".
    pub name: String,
    /// RFC 3339 or unix seconds.
    #[schema(value_type = String)]
    pub start: serde_json::Value,
    #[schema(value_type = String)]
    pub end: serde_json::Value,
    /// Demand during the event relative to usual (2 = double), above 0, at most 100.
    pub expected_multiplier: f64,
    /// Only this workload (default: every workload of the organisation).
    pub workload: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExternalEventOut {
    pub id: String,
    pub name: String,
    pub workload: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub expected_multiplier: f64,
    pub created_at: DateTime<Utc>,
}

impl From<StoredEvent> for ExternalEventOut {
    fn from(e: StoredEvent) -> Self {
        Self {
            id: e.id,
            name: e.name,
            workload: e.workload,
            start: instant(e.starts_ms),
            end: instant(e.ends_ms),
            expected_multiplier: e.multiplier,
            created_at: instant(e.created_ms),
        }
    }
}

fn timestamp(field: &str, v: &serde_json::Value) -> Result<i64, ApiError> {
    headroom_core::telemetry::parse_timestamp(v)
        .map_err(|e| ApiError::unprocessable(format!("{field}: {e}")))
}

/// Declares a future event that changes demand; forecasts for the steps in its
/// window are multiplied by `expected_multiplier`.
#[utoipa::path(post, path = "/api/v1/external-events", tag = "forecasts",
    request_body = ExternalEventRequest,
    security(("api_key" = ["write"]), ("session" = [])),
    responses((status = 201, body = ExternalEventOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_external_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ExternalEventRequest>,
) -> ApiResult<(StatusCode, Json<ExternalEventOut>)> {
    caller.require_scope(Scope::Write)?;
    if let Some(w) = &req.workload {
        validate_workload(w).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    }
    let (start, end) = (timestamp("start", &req.start)?, timestamp("end", &req.end)?);
    let event = ExternalEvent::new(&req.name, start, end, req.expected_multiplier)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let stored = StoredEvent {
        id: headroom_store::new_id(),
        name: event.name,
        workload: req.workload,
        starts_ms: event.starts_ms,
        ends_ms: event.ends_ms,
        multiplier: event.multiplier,
        created_ms: Utc::now().timestamp_millis(),
    };
    state
        .db
        .insert_external_event(&caller.tenant, &stored)
        .await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// Events that have not ended yet, by start.
#[utoipa::path(get, path = "/api/v1/external-events", tag = "forecasts",
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<ExternalEventOut>), (status = 401, body = ErrorBody)))]
pub async fn list_external_events(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ExternalEventOut>>> {
    caller.require_scope(Scope::Read)?;
    let now = Utc::now().timestamp_millis();
    let events = state.db.external_events(&caller.tenant, None, now).await?;
    Ok(Json(events.into_iter().map(Into::into).collect()))
}

#[utoipa::path(delete, path = "/api/v1/external-events/{id}", tag = "forecasts",
    params(("id" = String, Path, description = "External event id")),
    security(("api_key" = ["write"]), ("session" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_external_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_scope(Scope::Write)?;
    if state.db.delete_external_event(&caller.tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("external event"))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadProfileRequest {
    pub workload: String,
    /// `web`, `database`, `batch` or `other`.
    pub category: String,
    /// UTC hours (0-23) of peak demand.
    #[serde(default)]
    pub peak_hours: Vec<u8>,
    /// Expected growth per 30 days (0.1 = +10 %), between -0.9 and 10.
    #[serde(default)]
    pub expected_growth: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadProfileOut {
    pub workload: String,
    pub category: String,
    pub peak_hours: Vec<u8>,
    pub expected_growth: f64,
    pub updated_at: DateTime<Utc>,
}

impl From<StoredProfile> for WorkloadProfileOut {
    fn from(p: StoredProfile) -> Self {
        Self {
            workload: p.workload,
            category: p.category,
            peak_hours: serde_json::from_str(&p.peak_hours_json).unwrap_or_default(),
            expected_growth: p.expected_growth,
            updated_at: instant(p.updated_ms),
        }
    }
}

/// Creates or replaces a workload's profile: the forecast's prior while the
/// workload has less than a day of history.
#[utoipa::path(post, path = "/api/v1/workload-profiles", tag = "forecasts",
    request_body = WorkloadProfileRequest,
    security(("api_key" = ["write"]), ("session" = [])),
    responses((status = 200, body = WorkloadProfileOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_workload_profile(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<WorkloadProfileRequest>,
) -> ApiResult<Json<WorkloadProfileOut>> {
    caller.require_scope(Scope::Write)?;
    validate_workload(&req.workload).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let category = Category::parse(&req.category).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "category {:?} is not one of: web, database, batch, other",
            req.category
        ))
    })?;
    let profile = WorkloadProfile::new(category, req.peak_hours, req.expected_growth)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let stored = StoredProfile {
        workload: req.workload,
        category: category.as_str().to_owned(),
        peak_hours_json: serde_json::to_string(&profile.peak_hours).map_err(ApiError::internal)?,
        expected_growth: profile.expected_growth,
        updated_ms: Utc::now().timestamp_millis(),
    };
    state
        .db
        .upsert_workload_profile(&caller.tenant, &stored)
        .await?;
    Ok(Json(stored.into()))
}

#[utoipa::path(get, path = "/api/v1/workload-profiles", tag = "forecasts",
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<WorkloadProfileOut>), (status = 401, body = ErrorBody)))]
pub async fn list_workload_profiles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<WorkloadProfileOut>>> {
    caller.require_scope(Scope::Read)?;
    let profiles = state.db.workload_profiles(&caller.tenant, None).await?;
    Ok(Json(profiles.into_iter().map(Into::into).collect()))
}
