//! Forecasts and anomalies made by the forecast job, read back per workload.

use crate::api::error::page_limit;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use headroom_core::accounts::Scope;
use headroom_core::forecast::Horizon;
use headroom_core::telemetry::{validate_metric, validate_workload};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody};
use crate::auth::Caller;
use crate::http::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ForecastQuery {
    /// Only this metric (default: every forecast metric of the workload).
    pub metric: Option<String>,
    /// `allocation` (next hour, 5-minute steps) or `planning` (next 7 days, hourly).
    pub horizon: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastStep {
    /// Start of the step.
    pub t: DateTime<Utc>,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    /// The model that served this step (chosen per series and step by recent accuracy).
    pub model: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricForecast {
    pub metric: String,
    pub horizon: String,
    pub step_seconds: i64,
    /// Start of the last observed step: the forecast uses data up to its end.
    pub origin: DateTime<Utc>,
    pub made_at: DateTime<Utc>,
    pub model_version: String,
    pub steps: Vec<ForecastStep>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkloadForecast {
    pub workload: String,
    pub forecasts: Vec<MetricForecast>,
}

/// A stored unix-millisecond time for the API.
pub(super) fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The latest forecasts of a workload, per metric and horizon.
#[utoipa::path(get, path = "/api/v1/workloads/{workload}/forecast", tag = "forecasts",
    params(("workload" = String, Path, description = "Workload name as sent with its metrics"), ForecastQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = WorkloadForecast), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn workload_forecast(
    State(state): State<AppState>,
    caller: Caller,
    Path(workload): Path<String>,
    ApiQuery(q): ApiQuery<ForecastQuery>,
) -> ApiResult<Json<WorkloadForecast>> {
    caller.require_scope(Scope::Read)?;
    validate_workload(&workload).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    if let Some(m) = &q.metric {
        validate_metric(m).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    }
    let horizon = match q.horizon.as_deref() {
        None => None,
        Some(raw) => Some(Horizon::parse(raw).ok_or_else(|| {
            ApiError::unprocessable(format!(
                "horizon {raw:?} is not one of: allocation, planning"
            ))
        })?),
    };
    let stored = state.db.latest_forecasts(&caller.tenant, &workload).await?;
    let mut forecasts = Vec::new();
    for f in stored {
        if q.metric.as_ref().is_some_and(|m| *m != f.metric)
            || horizon.is_some_and(|h| h.as_str() != f.horizon)
        {
            continue;
        }
        let step_ms = f.step_secs * 1000;
        forecasts.push(MetricForecast {
            steps: f
                .steps
                .with_models()
                .enumerate()
                .map(|(i, (s, model))| ForecastStep {
                    t: instant(f.origin_ms + (i as i64 + 1) * step_ms),
                    p10: s.p10,
                    p50: s.p50,
                    p90: s.p90,
                    model: model.to_owned(),
                })
                .collect(),
            metric: f.metric,
            horizon: f.horizon,
            step_seconds: f.step_secs,
            origin: instant(f.origin_ms),
            made_at: instant(f.made_at_ms),
            model_version: f.model_version,
        });
    }
    if forecasts.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "no forecast for this workload yet: forecasts are made every few minutes for \
             series with data in the last day, once a series has a few steps of history",
        ));
    }
    Ok(Json(WorkloadForecast {
        workload,
        forecasts,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AnomalyQuery {
    /// Only this workload.
    pub workload: Option<String>,
    /// Start (inclusive): RFC 3339 or unix seconds; default 7 days ago.
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 or unix seconds; default now.
    pub to: Option<String>,
    /// At most this many, newest first (default 200, at most 1000).
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Anomaly {
    pub workload: String,
    pub metric: String,
    /// Start of the step that deviated.
    pub t: DateTime<Utc>,
    pub step_seconds: i64,
    /// The step's mean value.
    pub value: f64,
    /// What the profile expected for that hour.
    pub expected: f64,
    /// Deviation in profile spreads, sustained over consecutive steps.
    pub score: f64,
    pub reason: String,
    pub detected_at: DateTime<Utc>,
}

/// Steps that deviated from their workload's behavioural profile, newest first.
#[utoipa::path(get, path = "/api/v1/anomalies", tag = "forecasts", params(AnomalyQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<Anomaly>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_anomalies(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AnomalyQuery>,
) -> ApiResult<Json<Vec<Anomaly>>> {
    caller.require_scope(Scope::Read)?;
    if let Some(w) = &q.workload {
        validate_workload(w).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    }
    let now = Utc::now().timestamp_millis();
    let from = match &q.from {
        Some(raw) => crate::api::ingest::instant("from", raw)?,
        None => now - 7 * 86_400_000,
    };
    let to = match &q.to {
        Some(raw) => crate::api::ingest::instant("to", raw)?,
        None => now + 1,
    };
    if to <= from {
        return Err(ApiError::unprocessable("to must be after from"));
    }
    let limit = page_limit(q.limit, 200, 1000)?;
    let rows = state
        .db
        .anomalies(&caller.tenant, q.workload.as_deref(), from, to, limit)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|a| Anomaly {
                workload: a.workload,
                metric: a.metric,
                t: instant(a.ts_ms),
                step_seconds: a.step_secs,
                value: a.value,
                expected: a.expected,
                score: a.score,
                reason: a.reason,
                detected_at: instant(a.detected_at_ms),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ReadinessQuery {
    /// One billable unit type (usage event `type`); default: every type seen in 8 days.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The question: at least one event within this many seconds (1 to 3600, default 10).
    pub within: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessScore {
    #[serde(rename = "type")]
    pub event_type: String,
    pub within_seconds: f64,
    /// P(at least one event of this type within `within_seconds`).
    pub probability: f64,
    /// The estimated arrival rate behind it.
    pub events_per_second: f64,
    pub computed_at: DateTime<Utc>,
}

/// Billable-unit readiness: the probability that at least one usage event of
/// each type arrives within the next seconds, from decayed recent rates and the
/// hour-of-week profile.
#[utoipa::path(get, path = "/api/v1/readiness", tag = "forecasts", params(ReadinessQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<ReadinessScore>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn readiness(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReadinessQuery>,
) -> ApiResult<Json<Vec<ReadinessScore>>> {
    caller.require_scope(Scope::Read)?;
    let within = q.within.unwrap_or(10.0);
    if !(1.0..=3600.0).contains(&within) {
        return Err(ApiError::unprocessable(
            "within must be between 1 and 3600 seconds",
        ));
    }
    let now = Utc::now().timestamp_millis();
    let since = now - headroom_jobs::readiness::HISTORY_MS;
    let types = match q.event_type {
        Some(t) => {
            headroom_core::telemetry::validate_name("type", &t, 100)
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            vec![t]
        }
        None => state.db.usage_event_types(&caller.tenant, since).await?,
    };
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let (probability, rate) =
            headroom_jobs::readiness::score(&state.db, &caller.tenant, &t, now, within).await?;
        out.push(ReadinessScore {
            event_type: t,
            within_seconds: within,
            probability,
            events_per_second: rate,
            computed_at: instant(now),
        });
    }
    Ok(Json(out))
}
