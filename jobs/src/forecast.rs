//! The forecast job: on each tick, every series with recent data is forecast at
//! the allocation and planning horizons and the result stored with the engine
//! version. A retried tick stores nothing twice (forecasts are keyed by origin).

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use headroom_core::forecast::{
    Forecast, Horizon, STATISTICAL_VERSION, SeriesForecaster, grid_from_buckets,
};
use headroom_store::Db;
use headroom_store::forecasts::{ActiveSeries, StoredForecast};
use serde::Serialize;

/// Series without a point for this long are not forecast.
const ACTIVE_WITHIN_MS: i64 = 86_400_000;

#[derive(Debug, Clone)]
pub struct ForecastJob {
    pub db: Db,
}

/// One stored step, as the API returns it.
#[derive(Debug, Serialize)]
struct StepOut<'a> {
    p10: f64,
    p50: f64,
    p90: f64,
    model: &'a str,
}

/// Totals of one run, for logs, metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub series: usize,
    pub stored: usize,
    /// Too little history at that horizon yet (not an error).
    pub skipped: usize,
}

pub async fn run(tick: Tick, ctx: Data<ForecastJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    let summary = forecast_all(&ctx.db, now_ms).await?;
    metrics::counter!("headroom_forecasts_stored_total").increment(summary.stored as u64);
    tracing::info!(
        series = summary.series,
        stored = summary.stored,
        skipped = summary.skipped,
        "forecast run finished"
    );
    Ok(())
}

/// Forecasts every active series as of `now_ms`.
pub async fn forecast_all(db: &Db, now_ms: i64) -> Result<RunSummary, BoxDynError> {
    let active = db.active_series(now_ms - ACTIVE_WITHIN_MS).await?;
    let mut summary = RunSummary {
        series: active.len(),
        ..RunSummary::default()
    };
    for series in &active {
        for horizon in Horizon::ALL {
            match forecast_one(db, series, horizon, now_ms).await? {
                Some(true) => summary.stored += 1,
                Some(false) => {}
                None => summary.skipped += 1,
            }
        }
    }
    Ok(summary)
}

/// `None` when the series is too short at this horizon; otherwise whether a new
/// forecast was stored.
async fn forecast_one(
    db: &Db,
    series: &ActiveSeries,
    horizon: Horizon,
    now_ms: i64,
) -> Result<Option<bool>, BoxDynError> {
    let buckets = db
        .rollups(
            &series.tenant,
            &series.workload,
            &series.metric,
            horizon.source(),
            now_ms - horizon.history_ms(),
            now_ms,
        )
        .await?;
    let step_ms = horizon.step_secs() as i64 * 1000;
    let grid = grid_from_buckets(&buckets, step_ms, now_ms);
    let Some(origin_ms) = grid.last_start_ms() else {
        return Ok(None);
    };
    // The engine is CPU work: keep it off the async workers.
    let values = grid.values;
    let forecast = tokio::task::spawn_blocking(move || -> Option<Forecast> {
        let mut engine = SeriesForecaster::new(horizon.engine()).ok()?;
        for v in values {
            engine.observe(v);
        }
        engine.forecast().ok()
    })
    .await?;
    let Some(forecast) = forecast else {
        return Ok(None);
    };
    let steps: Vec<StepOut> = forecast
        .steps
        .iter()
        .zip(&forecast.models)
        .map(|(s, m)| StepOut {
            p10: s.p10,
            p50: s.p50,
            p90: s.p90,
            model: m,
        })
        .collect();
    let stored = db
        .insert_forecast(
            &series.tenant,
            &StoredForecast {
                workload: series.workload.clone(),
                metric: series.metric.clone(),
                horizon: horizon.as_str().to_owned(),
                origin_ms,
                step_secs: horizon.step_secs() as i64,
                made_at_ms: now_ms,
                model_version: STATISTICAL_VERSION.to_owned(),
                steps_json: serde_json::to_string(&steps)?,
            },
        )
        .await?;
    Ok(Some(stored))
}
