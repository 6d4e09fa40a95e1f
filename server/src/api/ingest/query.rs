//! Range queries for dashboards, answered from the rollups (never the raw points).

use crate::api::error::page_limit;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use headroom_core::accounts::Scope;
use headroom_core::telemetry::{
    Resolution, parse_timestamp, regroup, validate_metric, validate_workload,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ApiQuery, ApiResult, ErrorBody};
use crate::auth::Caller;
use crate::http::AppState;

const MAX_WINDOWS: i64 = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct MetricQuery {
    pub workload: String,
    pub metric: String,
    /// Start (inclusive): RFC 3339 or unix seconds.
    pub from: String,
    /// End (exclusive): RFC 3339 or unix seconds.
    pub to: String,
    /// Window in seconds: a multiple of 60 (default 60); multiples of 3600 read hourly rollups.
    /// Windows are built from whole stored buckets that start in [from, to).
    pub step: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the window.
    pub t: DateTime<Utc>,
    pub count: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The latest value in the window.
    pub last: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    pub workload: String,
    pub metric: String,
    pub step_seconds: i64,
    /// Windows without data are absent, not zero.
    pub points: Vec<SeriesPoint>,
}

pub(crate) fn instant(field: &str, raw: &str) -> Result<i64, ApiError> {
    let value = match raw.trim().parse::<f64>() {
        Ok(secs) => serde_json::json!(secs),
        Err(_) => serde_json::json!(raw.trim()),
    };
    parse_timestamp(&value).map_err(|e| ApiError::unprocessable(format!("{field}: {e}")))
}

/// A metric series over a time range, in windows of `step` seconds.
#[utoipa::path(get, path = "/api/v1/metrics/query", tag = "ingest", params(MetricQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Series), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn query_metrics(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<MetricQuery>,
) -> ApiResult<Json<Series>> {
    caller.require_scope(Scope::Read)?;
    validate_workload(&q.workload).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    validate_metric(&q.metric).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (from, to) = (instant("from", &q.from)?, instant("to", &q.to)?);
    if to <= from {
        return Err(ApiError::unprocessable("to must be after from"));
    }
    let step_seconds = q.step.unwrap_or(60);
    let step_ms = step_seconds
        .checked_mul(1000)
        .filter(|s| *s > 0)
        .unwrap_or(0);
    let res = Resolution::for_step(step_ms)
        .ok_or_else(|| ApiError::unprocessable("step must be a positive multiple of 60 seconds"))?;
    if (to - from) / step_ms > MAX_WINDOWS {
        return Err(ApiError::unprocessable(format!(
            "at most {MAX_WINDOWS} windows per query; use a larger step"
        )));
    }
    let buckets = state
        .db
        .rollups(&caller.tenant, &q.workload, &q.metric, res, from, to)
        .await?;
    let points = regroup(&buckets, from, step_ms)
        .into_iter()
        .filter(|b| b.start_ms < to)
        .map(|b| SeriesPoint {
            t: DateTime::from_timestamp_millis(b.start_ms).unwrap_or_default(),
            count: b.count,
            sum: b.sum,
            min: b.min,
            max: b.max,
            mean: b.mean(),
            last: b.last,
        })
        .collect();
    Ok(Json(Series {
        workload: q.workload,
        metric: q.metric,
        step_seconds,
        points,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesListQuery {
    /// Series reported within this many days (1–400, default 30).
    pub days: Option<i64>,
    /// With `after_metric`: the page after this series (the last of the previous page).
    pub after_workload: Option<String>,
    pub after_metric: Option<String>,
    /// At most this many series (1–1000, default 200).
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesInfo {
    pub workload: String,
    pub metric: String,
    /// Start of the newest hour with data.
    pub last_hour: DateTime<Utc>,
    /// The horizons it has a forecast for (`allocation`, `planning`), so a
    /// client asks `/workloads/{id}/forecast` only for those.
    pub forecasts: Vec<&'static str>,
}

/// The organisation's series (workload and metric) reported recently, by
/// workload and metric: what dashboards offer to show.
#[utoipa::path(get, path = "/api/v1/series", tag = "ingest", params(SeriesListQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<SeriesInfo>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_series(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SeriesListQuery>,
) -> ApiResult<Json<Vec<SeriesInfo>>> {
    caller.require_scope(Scope::Read)?;
    let days = q.days.unwrap_or(30);
    if !(1..=400).contains(&days) {
        return Err(ApiError::unprocessable(format!(
            "days must be 1 to 400, not {days}"
        )));
    }
    let limit = page_limit(q.limit, 200, 1000)?;
    let after = match (&q.after_workload, &q.after_metric) {
        (Some(w), Some(m)) => Some((w.as_str(), m.as_str())),
        (None, None) => None,
        _ => {
            return Err(ApiError::unprocessable(
                "give both after_workload and after_metric, or neither",
            ));
        }
    };
    let since = chrono::Utc::now().timestamp_millis() - days * 86_400_000;
    let rows = state
        .db
        .series_catalog(&caller.tenant, since, after, limit)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|s| SeriesInfo {
                workload: s.workload,
                metric: s.metric,
                last_hour: DateTime::from_timestamp_millis(s.last_hour_ms).unwrap_or_default(),
                forecasts: [
                    ("allocation", s.allocation_forecast),
                    ("planning", s.planning_forecast),
                ]
                .into_iter()
                .filter_map(|(h, has)| has.then_some(h))
                .collect(),
            })
            .collect(),
    ))
}
