//! The forecast job: on each tick, every series with recent data is forecast at
//! the allocation and planning horizons and the result stored with the engine
//! version, and its recent steps are checked against the series' behavioural
//! profile, storing anomalies with their reason. A retried tick stores nothing
//! twice (forecasts are keyed by origin, anomalies by step).

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use std::sync::Arc;

use headroom_core::forecast::inputs::{
    Category, ExternalEvent, WorkloadProfile, apply_events, blend_with_prior,
};
use headroom_core::forecast::{
    Forecast, Grid, Horizon, ModelSpec, PackedSteps, STATISTICAL_VERSION, SeriesForecaster,
    grid_from_buckets,
};
use headroom_core::profile::{AnomalyDetector, DEFAULT_PERSISTENCE, ProfileConfig};
use headroom_store::Db;
use headroom_store::forecasts::{ActiveSeries, StoredAnomaly, StoredForecast};

use crate::handover::{Handed, Handover};
use crate::lstm::{LstmError, LstmForecaster, fill_gaps};
use crate::warm::{SeriesKey, Warm, WarmDetector, WarmEngine};

/// Series without a point for this long are not forecast.
pub(crate) const ACTIVE_WITHIN_MS: i64 = 86_400_000;
/// History a behavioural profile is rebuilt from: a week and a day, so each
/// hour of the week has been seen once before it is judged.
const PROFILE_HISTORY_MS: i64 = 8 * 86_400_000;
/// Profiles judge 5-minute steps.
const PROFILE_STEP_MS: i64 = 300_000;

#[derive(Debug, Clone)]
pub struct ForecastJob {
    pub db: Db,
    pub lstm: Option<Arc<LstmForecaster>>,
    /// Allocation-horizon engines and anomaly detectors kept between runs
    /// in this process.
    pub warm: Arc<Warm>,
    /// Where the allocation job of this process takes each series' new
    /// allocation forecast and demand from.
    pub handover: Arc<Handover>,
    /// The job's schedule: the hourly planning replays are spread over the
    /// runs left in each hour.
    pub schedule: cron::Schedule,
}

/// Totals of one run, for logs, metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub series: usize,
    pub stored: usize,
    /// Too little history at that horizon yet (not an error).
    pub skipped: usize,
    /// Already forecast from the horizon's latest closed step (an hourly
    /// horizon changes once an hour, not at every run): not computed again.
    pub current: usize,
    /// Anomalies stored for the first time.
    pub anomalies: u64,
    /// Series fed to an engine kept from the last run instead of replayed.
    pub warm: usize,
    /// Planning forecasts left to a later run of the same hour.
    pub deferred: usize,
}

pub async fn run(tick: Tick, ctx: Data<ForecastJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    let summary = forecast_all_with(
        &ctx.db,
        ctx.lstm.as_ref(),
        &ctx.warm,
        &ctx.handover,
        Some(&ctx.schedule),
        now_ms,
    )
    .await?;
    metrics::counter!("headroom_forecasts_stored_total").increment(summary.stored as u64);
    metrics::counter!("headroom_anomalies_stored_total").increment(summary.anomalies);
    tracing::info!(
        series = summary.series,
        stored = summary.stored,
        skipped = summary.skipped,
        current = summary.current,
        warm = summary.warm,
        deferred = summary.deferred,
        anomalies = summary.anomalies,
        "forecast run finished"
    );
    Ok(())
}

/// Forecasts every active series as of `now_ms`, every one replayed from its
/// history (no engine kept between calls).
pub async fn forecast_all(
    db: &Db,
    lstm: Option<&Arc<LstmForecaster>>,
    now_ms: i64,
) -> Result<RunSummary, BoxDynError> {
    forecast_all_with(db, lstm, &Warm::new(0), &Handover::new(), None, now_ms).await
}

/// What a run does for one series at one horizon.
enum Work {
    /// Replay the history into a new engine.
    Cold(Grid),
    /// Feed a kept engine the steps closed since its last one.
    Warm(Box<WarmEngine>, Grid),
}

/// What came of one series at one horizon.
enum Outcome {
    Made(Made),
    /// Too little history yet.
    TooShort,
    /// A kept engine saw no step close since the last run.
    NothingNew,
}

fn series_key(s: &ActiveSeries) -> SeriesKey {
    (
        s.tenant.id().to_owned(),
        s.workload.clone(),
        s.metric.clone(),
    )
}

/// Forecasts every active series as of `now_ms`; allocation-horizon engines
/// and anomaly detectors are taken from and kept in `warm` (see
/// [`crate::warm`]). Each allocation forecast stored is handed over with its
/// step's demand in `handover`. With the job's `schedule`, a run makes only
/// its share of the planning forecasts due this hour (see [`planning_share`]).
pub async fn forecast_all_with(
    db: &Db,
    lstm: Option<&Arc<LstmForecaster>>,
    warm: &Warm,
    handover: &Handover,
    schedule: Option<&cron::Schedule>,
    now_ms: i64,
) -> Result<RunSummary, BoxDynError> {
    let active = db.active_series(now_ms - ACTIVE_WITHIN_MS).await?;
    warm.retain(&active.iter().map(series_key).collect());
    let mut summary = RunSummary {
        series: active.len(),
        ..RunSummary::default()
    };
    for horizon in Horizon::ALL {
        let done = db
            .forecast_at_origin(horizon.as_str(), last_closed_step(horizon, now_ms))
            .await?;
        let mut todo: Vec<&ActiveSeries> = active
            .iter()
            .filter(|s| !done.contains(&series_key(s)))
            .collect();
        summary.current += active.len() - todo.len();
        if horizon == Horizon::Planning
            && let Some(schedule) = schedule
        {
            let take = planning_share(todo.len(), runs_left_this_hour(schedule, now_ms));
            summary.deferred += todo.len() - take;
            todo.truncate(take);
        }
        // The version the registry made live; until one is, the best this
        // process has (the engine itself picks per step by measured error).
        let live = db.live_model(horizon.as_str()).await?.map(|m| m.version);
        let lstm = lstm.filter(|m| {
            lstm_serves(m, horizon)
                && live
                    .as_ref()
                    .is_none_or(|v| *v == crate::models::with_lstm(m))
        });
        let version = match lstm {
            Some(m) => crate::models::with_lstm(m),
            None => STATISTICAL_VERSION.to_owned(),
        };
        // Only the allocation horizon's engines are kept: the planning one
        // runs once an hour and holds over ten times the error windows.
        let keep = horizon == Horizon::Allocation;
        let step_ms = horizon.step_secs() as i64 * 1000;
        let mut work = Vec::with_capacity(todo.len());
        for series in &todo {
            let kept = keep
                .then(|| warm.engines.take(&series_key(series)))
                .flatten()
                .filter(|w| {
                    w.with_lstm == lstm.is_some() && w.last_ms >= now_ms - horizon.history_ms()
                });
            work.push(match kept {
                Some(w) => {
                    let from = w.last_ms + step_ms;
                    summary.warm += 1;
                    Work::Warm(
                        Box::new(w),
                        load_grid_from(db, series, horizon, from, now_ms).await?,
                    )
                }
                None => Work::Cold(load_grid(db, series, horizon, now_ms).await?),
            });
        }
        // Engines and the model are CPU work: off the async workers, and the
        // model sees every series' windows in one batched call.
        let lstm = lstm.cloned();
        let results =
            tokio::task::spawn_blocking(move || run_engines(work, lstm.as_deref(), horizon, keep))
                .await??;
        for (series, (outcome, engine)) in todo.into_iter().zip(results) {
            if let Some(engine) = engine {
                warm.engines.put(series_key(series), engine);
            }
            let made = match outcome {
                Outcome::Made(made) => made,
                Outcome::TooShort => {
                    summary.skipped += 1;
                    continue;
                }
                Outcome::NothingNew => {
                    summary.current += 1;
                    continue;
                }
            };
            let demand = made.demand;
            let Some(forecast) = with_declared_inputs(db, series, horizon, made).await? else {
                summary.skipped += 1;
                continue;
            };
            let stored = store_forecast(
                db,
                series,
                horizon,
                forecast.0,
                &forecast.1,
                &version,
                now_ms,
            )
            .await?;
            summary.stored += usize::from(stored.is_some());
            if horizon == Horizon::Allocation {
                // One stored earlier (a retried run, another process) is
                // the newest: the tick reads that one.
                match stored {
                    Some(forecast) => {
                        handover.put(series_key(series), Handed { demand, forecast });
                    }
                    None => handover.forget(&series_key(series)),
                }
            }
        }
    }
    for series in &active {
        summary.anomalies += detect_anomalies(db, series, &warm.detectors, now_ms).await?;
    }
    Ok(summary)
}

/// Runs each series' engine, replaying or catching up, with the LSTM's
/// forecasts offered; returns per series what came of it and the engine to
/// keep (when `keep` and it has seen a day: shorter histories need their
/// points for the profile's prior, so they are replayed).
fn run_engines(
    work: Vec<Work>,
    lstm: Option<&LstmForecaster>,
    horizon: Horizon,
    keep: bool,
) -> Result<Vec<(Outcome, Option<WarmEngine>)>, LstmError> {
    let window = lstm.map_or(0, |m| m.spec().input_len);
    let mut out: Vec<(Outcome, Option<WarmEngine>)> = Vec::with_capacity(work.len());
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for (i, w) in work.into_iter().enumerate() {
        out.push((Outcome::TooShort, None));
        match w {
            Work::Cold(grid) => cold.push((i, grid)),
            Work::Warm(engine, grid) => warm.push((i, *engine, grid)),
        }
    }

    let (cold_at, grids): (Vec<usize>, Vec<Grid>) = cold.into_iter().unzip();
    let offers = match lstm {
        Some(model) => lstm_offers(model, &grids, horizon.steps())?,
        None => vec![Vec::new(); grids.len()],
    };
    for ((i, grid), offered) in cold_at.into_iter().zip(&grids).zip(&offers) {
        let Some(origin_ms) = grid.last_start_ms() else {
            continue;
        };
        let mut cfg = horizon.engine();
        if lstm.is_some() {
            cfg.candidates.push(ModelSpec::Lstm);
        }
        let Ok(mut engine) = SeriesForecaster::new(cfg) else {
            continue;
        };
        for (row, v) in grid.values.iter().enumerate() {
            engine.observe(*v);
            if let Some(Some(f)) = offered.get(row) {
                engine.offer(ModelSpec::Lstm, f.clone());
            }
        }
        let short = engine.observed() < day_steps(horizon);
        // Short histories keep their points for the profile's prior.
        let observed: Vec<(i64, f64)> = if short {
            grid.values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (grid.start_ms + i as i64 * grid.step_ms, v)))
                .collect()
        } else {
            Vec::new()
        };
        let made = Made {
            origin_ms,
            demand: grid.values.last().copied().flatten(),
            forecast: engine.forecast().ok(),
            observed,
            observed_count: engine.observed(),
        };
        let kept = (keep && !short)
            .then(|| WarmEngine::after(engine, lstm.is_some(), grid, window))
            .flatten();
        out[i] = (Outcome::Made(made), kept);
    }

    let fed: Vec<usize> = warm
        .iter_mut()
        .map(|(_, w, grid)| w.catch_up(grid))
        .collect();
    if let Some(model) = lstm {
        // Offered at the newest step of each engine that saw one close.
        let ready: Vec<usize> = (0..warm.len())
            .filter(|&k| fed[k] > 0 && warm[k].1.recent.len() >= window)
            .collect();
        let windows: Vec<Vec<f64>> = ready
            .iter()
            .map(|&k| warm[k].1.recent.iter().copied().collect())
            .collect();
        let refs: Vec<&[f64]> = windows.iter().map(Vec::as_slice).collect();
        let made = if refs.is_empty() {
            Vec::new()
        } else {
            model.forecast(&refs)?
        };
        for (k, f) in ready.into_iter().zip(made) {
            let p50: Vec<f64> = f.iter().take(horizon.steps()).map(|s| s.p50).collect();
            warm[k].1.engine.offer(ModelSpec::Lstm, p50);
        }
    }
    for ((i, w, grid), fed) in warm.into_iter().zip(fed) {
        let outcome = if fed == 0 {
            Outcome::NothingNew
        } else {
            Outcome::Made(Made {
                origin_ms: w.last_ms,
                demand: grid.values.last().copied().flatten(),
                forecast: w.engine.forecast().ok(),
                observed: Vec::new(),
                observed_count: w.engine.observed(),
            })
        };
        out[i] = (outcome, Some(w));
    }
    Ok(out)
}

/// Runs of `schedule` from `now_ms` to the end of its hour, this one
/// included.
fn runs_left_this_hour(schedule: &cron::Schedule, now_ms: i64) -> usize {
    const HOUR_MS: i64 = 3_600_000;
    let hour_end_ms = (now_ms.div_euclid(HOUR_MS) + 1) * HOUR_MS;
    let Some(now) = chrono::DateTime::from_timestamp_millis(now_ms) else {
        return 1;
    };
    1 + schedule
        .after(&now)
        .take_while(|t| t.timestamp_millis() < hour_end_ms)
        .count()
}

/// Planning forecasts a run makes at least, when that many are due: a few
/// seconds of work, so a small deployment has all of them at the hour's
/// first run.
const PLANNING_PER_RUN_AT_LEAST: usize = 100;

/// How many of the `due` planning forecasts a run makes when `runs_left`
/// runs (this one included) remain in the hour: an even share, rounded up,
/// so all are made within the hour without one run doing them all (the
/// planning replay is about eight times the allocation horizon's work), and
/// never fewer than [`PLANNING_PER_RUN_AT_LEAST`].
pub fn planning_share(due: usize, runs_left: usize) -> usize {
    due.div_ceil(runs_left.max(1))
        .max(due.min(PLANNING_PER_RUN_AT_LEAST))
}

/// Start of the horizon's last step that ended by `now_ms`: the origin a
/// forecast made now has when the series reported in that step.
pub fn last_closed_step(horizon: Horizon, now_ms: i64) -> i64 {
    let step_ms = horizon.step_secs() as i64 * 1000;
    now_ms.div_euclid(step_ms) * step_ms - step_ms
}

/// What the engine made of one series, before declared inputs are applied.
struct Made {
    origin_ms: i64,
    /// Mean of the series over the step at `origin_ms`.
    demand: Option<f64>,
    forecast: Option<Forecast>,
    /// (step start, value) of every observed step, kept only for short histories.
    observed: Vec<(i64, f64)>,
    observed_count: usize,
}

/// Steps in a day at this horizon: the history a profile's prior covers for.
fn day_steps(horizon: Horizon) -> usize {
    (86_400 / horizon.step_secs()) as usize
}

/// Applies what the customer declared: the workload profile as the prior while
/// there is less than a day of history, then external events in their windows.
async fn with_declared_inputs(
    db: &Db,
    series: &ActiveSeries,
    horizon: Horizon,
    made: Made,
) -> Result<Option<(i64, Forecast)>, BoxDynError> {
    let step_ms = horizon.step_secs() as i64 * 1000;
    let mut forecast = made.forecast;
    if made.observed_count < day_steps(horizon) {
        let profile = db
            .workload_profiles(&series.tenant, Some(&series.workload))
            .await?
            .into_iter()
            .next()
            .and_then(|p| {
                let category = Category::parse(&p.category)?;
                let hours: Vec<u8> = serde_json::from_str(&p.peak_hours_json).ok()?;
                WorkloadProfile::new(category, hours, p.expected_growth).ok()
            });
        if let Some(profile) = profile
            && let Some(prior) =
                profile.prior(&made.observed, made.origin_ms, step_ms, horizon.steps())
        {
            let share = made.observed_count as f64 / day_steps(horizon) as f64;
            let label = format!("prior({})", profile.category.as_str());
            forecast = Some(match forecast {
                Some(f) => Forecast {
                    steps: blend_with_prior(&f.steps, &prior, share),
                    models: f.models.iter().map(|m| format!("{label}+{m}")).collect(),
                    score: f.score,
                },
                None => Forecast {
                    steps: prior,
                    models: vec![label; horizon.steps()],
                    score: None,
                },
            });
        }
    }
    let Some(mut forecast) = forecast else {
        return Ok(None);
    };
    let events: Vec<ExternalEvent> = db
        .external_events(&series.tenant, Some(&series.workload), made.origin_ms)
        .await?
        .into_iter()
        .map(|e| ExternalEvent {
            name: e.name,
            starts_ms: e.starts_ms,
            ends_ms: e.ends_ms,
            multiplier: e.multiplier,
        })
        .collect();
    apply_events(
        &mut forecast.steps,
        &mut forecast.models,
        made.origin_ms,
        step_ms,
        &events,
    );
    Ok(Some((made.origin_ms, forecast)))
}

/// The step the LSTM was trained on.
const LSTM_STEP_SECS: u64 = 300;

/// Whether the LSTM can take part at `horizon`: it speaks 5-minute steps, 12
/// ahead, i.e. the allocation horizon.
pub(crate) fn lstm_serves(m: &LstmForecaster, horizon: Horizon) -> bool {
    horizon == Horizon::Allocation
        && m.spec().horizon >= horizon.steps()
        && horizon.step_secs() == LSTM_STEP_SECS
}
/// Rows between LSTM forecasts offered over a series' history: enough to
/// score it against the statistical models, a twelfth of the inference.
const LSTM_OFFER_EVERY: usize = 12;

/// For each grid, the LSTM's p50 after every `LSTM_OFFER_EVERY`-th row (counted
/// back from the last, which always gets one), each from that row's window only.
pub(crate) fn lstm_offers(
    model: &LstmForecaster,
    grids: &[Grid],
    steps: usize,
) -> Result<Vec<Vec<Option<Vec<f64>>>>, LstmError> {
    let len = model.spec().input_len;
    let filled: Vec<Vec<f64>> = grids.iter().map(|g| fill_gaps(&g.values)).collect();
    let mut at: Vec<(usize, usize)> = Vec::new(); // (grid, row)
    for (g, values) in filled.iter().enumerate() {
        let mut row = values.len();
        while row >= len {
            at.push((g, row - 1));
            row = row.saturating_sub(LSTM_OFFER_EVERY);
        }
    }
    let windows: Vec<&[f64]> = at
        .iter()
        .map(|&(g, row)| &filled[g][row + 1 - len..=row])
        .collect();
    let made = model.forecast(&windows)?;
    let mut out: Vec<Vec<Option<Vec<f64>>>> =
        grids.iter().map(|g| vec![None; g.values.len()]).collect();
    for ((g, row), f) in at.into_iter().zip(made) {
        out[g][row] = Some(f.iter().take(steps).map(|s| s.p50).collect());
    }
    Ok(out)
}

pub(crate) async fn load_grid(
    db: &Db,
    series: &ActiveSeries,
    horizon: Horizon,
    now_ms: i64,
) -> Result<Grid, BoxDynError> {
    load_grid_from(db, series, horizon, now_ms - horizon.history_ms(), now_ms).await
}

/// The horizon's grid of the series' steps from `from_ms` on that ended by
/// `now_ms`.
async fn load_grid_from(
    db: &Db,
    series: &ActiveSeries,
    horizon: Horizon,
    from_ms: i64,
    now_ms: i64,
) -> Result<Grid, BoxDynError> {
    let buckets = db
        .rollups(
            &series.tenant,
            &series.workload,
            &series.metric,
            horizon.source(),
            from_ms,
            now_ms,
        )
        .await?;
    Ok(grid_from_buckets(
        &buckets,
        horizon.step_secs() as i64 * 1000,
        now_ms,
    ))
}

/// Stores one forecast; it, if it was new.
async fn store_forecast(
    db: &Db,
    series: &ActiveSeries,
    horizon: Horizon,
    origin_ms: i64,
    forecast: &Forecast,
    version: &str,
    now_ms: i64,
) -> Result<Option<StoredForecast>, BoxDynError> {
    let stored = StoredForecast {
        workload: series.workload.clone(),
        metric: series.metric.clone(),
        horizon: horizon.as_str().to_owned(),
        origin_ms,
        step_secs: horizon.step_secs() as i64,
        made_at_ms: now_ms,
        model_version: version.to_owned(),
        steps: PackedSteps::pack(
            forecast
                .steps
                .iter()
                .copied()
                .zip(forecast.models.iter().map(String::as_str)),
        )?,
    };
    let new = db.insert_forecast(&series.tenant, &stored).await?;
    Ok(new.then_some(stored))
}

/// Scores the series' steps that closed since its kept detector's last one
/// (or, without one, rebuilds the profile from its history, scoring each
/// step against what came before it), and stores the steps flagged. Returns
/// how many were new.
async fn detect_anomalies(
    db: &Db,
    series: &ActiveSeries,
    kept: &crate::warm::Kept<WarmDetector>,
    now_ms: i64,
) -> Result<u64, BoxDynError> {
    let key = series_key(series);
    let warm = kept
        .take(&key)
        .filter(|w| w.last_ms >= now_ms - PROFILE_HISTORY_MS);
    let from_ms = warm
        .as_ref()
        .map_or(now_ms - PROFILE_HISTORY_MS, |w| w.last_ms + PROFILE_STEP_MS);
    let buckets = db
        .rollups(
            &series.tenant,
            &series.workload,
            &series.metric,
            Horizon::Allocation.source(),
            from_ms,
            now_ms,
        )
        .await?;
    let grid = grid_from_buckets(&buckets, PROFILE_STEP_MS, now_ms);
    let (workload, metric) = (series.workload.clone(), series.metric.clone());
    let (found, detector) = tokio::task::spawn_blocking(move || {
        let mut detector = warm.unwrap_or_else(|| WarmDetector {
            detector: AnomalyDetector::new(ProfileConfig::default(), DEFAULT_PERSISTENCE),
            last_ms: i64::MIN,
        });
        let mut found = Vec::new();
        for (i, v) in grid.values.iter().enumerate() {
            let ts_ms = grid.start_ms + i as i64 * grid.step_ms;
            detector.last_ms = ts_ms;
            let Some(v) = v else { continue };
            let d = detector.detector.observe(ts_ms.div_euclid(1000), *v);
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
        (found, detector)
    })
    .await?;
    // A detector that has seen no step yet has nothing worth keeping.
    if detector.last_ms != i64::MIN {
        kept.put(key, detector);
    }
    if found.is_empty() {
        return Ok(0);
    }
    Ok(db.insert_anomalies(&series.tenant, &found).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn planning_forecasts_are_spread_over_the_runs_left_in_the_hour() {
        let every_five = cron::Schedule::from_str("30 */5 * * * *").unwrap();
        let hour = 1_764_975_600_000; // 2025-12-05 23:00:00 UTC, a whole hour
        // The run at :00:30: it and the eleven after it, up to :55:30.
        assert_eq!(runs_left_this_hour(&every_five, hour + 30_000), 12);
        assert_eq!(
            runs_left_this_hour(&every_five, hour + 55 * 60_000 + 30_000),
            1
        );
        // 10,000 due: 834 now; the hour's last run takes whatever is left.
        assert_eq!(planning_share(10_000, 12), 834);
        assert_eq!(planning_share(7, 1), 7);
        assert_eq!(planning_share(0, 12), 0);
        // A few: all at once (never fewer than 100 a run).
        assert_eq!(planning_share(6, 12), 6);
        assert_eq!(planning_share(1000, 12), 100);
        // Made at every run, the share empties the backlog within the hour.
        let mut due = 10_000;
        for runs_left in (1..=12).rev() {
            due -= planning_share(due, runs_left);
        }
        assert_eq!(due, 0);
    }
}
