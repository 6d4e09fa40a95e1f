//! Forecasts made by the forecast job, read back per workload.

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

#[derive(Debug, Deserialize)]
struct StoredStep {
    p10: f64,
    p50: f64,
    p90: f64,
    model: String,
}

fn instant(ms: i64) -> DateTime<Utc> {
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
        let steps: Vec<StoredStep> = serde_json::from_str(&f.steps_json)
            .map_err(|e| ApiError::internal(format!("stored forecast is not readable: {e}")))?;
        let step_ms = f.step_secs * 1000;
        forecasts.push(MetricForecast {
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| ForecastStep {
                    t: instant(f.origin_ms + (i as i64 + 1) * step_ms),
                    p10: s.p10,
                    p50: s.p50,
                    p90: s.p90,
                    model: s.model,
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
