//! The forecast job: on each tick, every series with recent data is forecast at
//! the allocation and planning horizons and the result stored with the engine
//! version, and its recent steps are checked against the series' behavioural
//! profile, storing anomalies with their reason. A retried tick stores nothing
//! twice (forecasts are keyed by origin, anomalies by step).

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use headroom_core::forecast::{
    Forecast, Horizon, STATISTICAL_VERSION, SeriesForecaster, grid_from_buckets,
};
use headroom_core::profile::{AnomalyDetector, DEFAULT_PERSISTENCE, ProfileConfig};
use headroom_store::Db;
use headroom_store::forecasts::{ActiveSeries, StoredAnomaly, StoredForecast};
use serde::Serialize;

/// Series without a point for this long are not forecast.
const ACTIVE_WITHIN_MS: i64 = 86_400_000;
/// History a behavioural profile is rebuilt from: a week and a day, so each
/// hour of the week has been seen once before it is judged.
const PROFILE_HISTORY_MS: i64 = 8 * 86_400_000;
/// Profiles judge 5-minute steps.
const PROFILE_STEP_MS: i64 = 300_000;

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
    /// Anomalies stored for the first time.
    pub anomalies: u64,
}

pub async fn run(tick: Tick, ctx: Data<ForecastJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    let summary = forecast_all(&ctx.db, now_ms).await?;
    metrics::counter!("headroom_forecasts_stored_total").increment(summary.stored as u64);
    metrics::counter!("headroom_anomalies_stored_total").increment(summary.anomalies);
    tracing::info!(
        series = summary.series,
        stored = summary.stored,
        skipped = summary.skipped,
        anomalies = summary.anomalies,
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
        summary.anomalies += detect_anomalies(db, series, now_ms).await?;
    }
    Ok(summary)
}

/// Rebuilds the series' profile from its history, scoring each step against
/// what came before it, and stores the steps flagged. Returns how many were new.
async fn detect_anomalies(db: &Db, series: &ActiveSeries, now_ms: i64) -> Result<u64, BoxDynError> {
    let buckets = db
        .rollups(
            &series.tenant,
            &series.workload,
            &series.metric,
            Horizon::Allocation.source(),
            now_ms - PROFILE_HISTORY_MS,
            now_ms,
        )
        .await?;
    let grid = grid_from_buckets(&buckets, PROFILE_STEP_MS, now_ms);
    let (workload, metric) = (series.workload.clone(), series.metric.clone());
    let found = tokio::task::spawn_blocking(move || {
        let mut detector = AnomalyDetector::new(ProfileConfig::default(), DEFAULT_PERSISTENCE);
        let mut found = Vec::new();
        for (i, v) in grid.values.iter().enumerate() {
            let ts_ms = grid.start_ms + i as i64 * grid.step_ms;
            let Some(v) = v else { continue };
            let d = detector.observe(ts_ms.div_euclid(1000), *v);
            if d.is_anomaly {
                found.push(StoredAnomaly {
                    workload: workload.clone(),
                    metric: metric.clone(),
                    ts_ms,
                    step_secs: grid.step_ms / 1000,
                    value: *v,
                    expected: d.expected,
                    score: d.score,
                    reason: d.reason(*v, ts_ms.div_euclid(1000)),
                    detected_at_ms: now_ms,
                });
            }
        }
        found
    })
    .await?;
    if found.is_empty() {
        return Ok(0);
    }
    Ok(db.insert_anomalies(&series.tenant, &found).await?)
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
