//! The model registry's job. Every version this process can run (the
//! statistical engine, and with the LSTM loaded the engine with the LSTM as a
//! candidate) is scored by rolling origins on the recent data of a sample of
//! series — the same origins for every version, each forecast made only from
//! the values before its origin — and registered with its MASE and interval
//! coverage. A version goes live only when it beats the live one by a margin
//! (`core::forecast::registry`). Scoring runs weekly, and sooner when the live
//! version's accuracy over the last hours has dropped a quarter below its
//! registered score (checked at every tick).

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use headroom_core::forecast::accuracy::{evaluate, mase_scale};
use headroom_core::forecast::backtest::{Origins, rolling_origin_offered};
use headroom_core::forecast::registry::{self, Score, Verdict};
use headroom_core::forecast::{Grid, Horizon, ModelSpec, STATISTICAL_VERSION};
use headroom_store::Db;
use headroom_store::forecasts::ActiveSeries;

use crate::forecast::{ACTIVE_WITHIN_MS, load_grid, lstm_offers, lstm_serves};
use crate::lstm::LstmForecaster;

/// Series scored at most (an even stride through every active series).
pub const SAMPLE_SERIES: usize = 100;
/// Versions are scored again after this long.
pub const SCORE_EVERY_MS: i64 = 7 * 86_400_000;

#[derive(Debug, Clone)]
pub struct ModelJob {
    pub db: Db,
    pub lstm: Option<Arc<LstmForecaster>>,
}

/// What one check did at one horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonCheck {
    pub horizon: Horizon,
    /// Why every version was scored (`None`: not due).
    pub scored_because: Option<String>,
    pub scores: Vec<(String, Score)>,
    /// The live version after the check, and why.
    pub live: Option<String>,
    pub verdict: Option<Verdict>,
    /// The live version's accuracy over the last hours, when measured.
    pub recent: Option<Score>,
}

pub async fn run(tick: Tick, ctx: Data<ModelJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    for c in check(&ctx.db, ctx.lstm.as_ref(), now_ms, false).await? {
        if let Some(why) = &c.scored_because {
            tracing::info!(
                horizon = c.horizon.as_str(),
                why,
                live = c.live.as_deref().unwrap_or("none"),
                verdict = ?c.verdict,
                "forecast versions scored"
            );
        }
    }
    Ok(())
}

/// The statistical engine's version name.
pub const STATISTICAL: &str = STATISTICAL_VERSION;

/// The version names this process can run at `horizon`.
pub fn versions(horizon: Horizon, lstm: Option<&Arc<LstmForecaster>>) -> Vec<String> {
    let mut out = vec![STATISTICAL_VERSION.to_owned()];
    if let Some(m) = lstm.filter(|m| lstm_serves(m, horizon)) {
        out.push(with_lstm(m));
    }
    out
}

pub fn with_lstm(m: &LstmForecaster) -> String {
    format!("{STATISTICAL_VERSION}+{}", m.spec().version)
}

/// Origins scored at each horizon: (spacing in steps, how many when every
/// version is scored, how many for the live version's recent accuracy).
fn origins_plan(horizon: Horizon) -> (usize, usize, usize) {
    match horizon {
        // Hourly over the last day, for both: a window of whole days, so a
        // daily cycle's phase does not move the recent score (over the last
        // 6 hours it swung from 0.5 to 1.4 times the day's on a steady series).
        Horizon::Allocation => (12, 24, 24),
        // Daily over three days (a week ahead each); the latest.
        Horizon::Planning => (24, 3, 1),
    }
}

/// Scores every due horizon as of `now_ms` (all of them when `force`).
pub async fn check(
    db: &Db,
    lstm: Option<&Arc<LstmForecaster>>,
    now_ms: i64,
    force: bool,
) -> Result<Vec<HorizonCheck>, BoxDynError> {
    let active = sample(db.active_series(now_ms - ACTIVE_WITHIN_MS).await?);
    let mut out = Vec::new();
    for horizon in Horizon::ALL {
        let names = versions(horizon, lstm);
        let live = db.live_model(horizon.as_str()).await?;
        let mut grids = Vec::with_capacity(active.len());
        for series in &active {
            grids.push(load_grid(db, series, horizon, now_ms).await?);
        }
        let grids = Arc::new(grids);
        let (every, full, recent_n) = origins_plan(horizon);
        let mut result = HorizonCheck {
            horizon,
            scored_because: None,
            scores: Vec::new(),
            live: live.as_ref().map(|l| l.version.clone()),
            verdict: None,
            recent: None,
        };
        // A live version this build no longer ships (an older LSTM, where
        // this process has a newer one) gives way to what runs here; one that
        // only lacks ONNX Runtime in this process is kept.
        let retired = live.as_ref().is_some_and(|l| {
            !names.contains(&l.version) && lstm.is_some_and(|m| lstm_serves(m, horizon))
        });
        let mut due = if force {
            Some("asked for".to_owned())
        } else if retired {
            Some(format!(
                "the live version {} is not shipped by this build",
                live.as_ref().map_or("", |l| l.version.as_str())
            ))
        } else {
            match &live {
                None => Some("no version is live yet".to_owned()),
                Some(l) if now_ms - l.scored_ms >= SCORE_EVERY_MS => {
                    Some("a week since the last scoring".to_owned())
                }
                Some(_) => None,
            }
        };
        if due.is_none()
            && let Some(l) = &live
            && names.contains(&l.version)
        {
            let recent = score(lstm, &grids, horizon, &l.version, every, recent_n).await?;
            if let Some(r) = recent {
                db.record_recent_accuracy(horizon.as_str(), &l.version, r.mase, now_ms)
                    .await?;
                if registry::accuracy_dropped(l.mase.unwrap_or(f64::NAN), r.mase) {
                    due = Some(format!(
                        "the live version's recent MASE {:.3} is over {:.0} % above its registered {:.3}",
                        r.mase,
                        (registry::DROP_TOLERANCE - 1.0) * 100.0,
                        l.mase.unwrap_or(f64::NAN)
                    ));
                }
            }
            result.recent = recent;
        }
        if let Some(why) = due {
            for name in &names {
                if let Some(s) = score(lstm, &grids, horizon, name, every, full).await? {
                    result.scores.push((name.clone(), s));
                }
            }
            let scored: Vec<(&str, Score)> = result
                .scores
                .iter()
                .map(|(n, s)| (n.as_str(), *s))
                .collect();
            if let Some((name, verdict)) = registry::choose(
                live.as_ref()
                    .filter(|_| !retired)
                    .map(|l| l.version.as_str()),
                &scored,
            ) {
                let reason = match &verdict {
                    Verdict::FirstLive { reason }
                    | Verdict::Promote { reason }
                    | Verdict::KeepLive { reason } => format!("{why}: {reason}"),
                };
                db.record_model_scores(horizon.as_str(), &result.scores, &name, &reason, now_ms)
                    .await?;
                result.live = Some(name);
                result.verdict = Some(verdict);
            }
            result.scored_because = Some(why);
        }
        out.push(result);
    }
    Ok(out)
}

/// An even stride through the series, at most [`SAMPLE_SERIES`].
fn sample(mut all: Vec<ActiveSeries>) -> Vec<ActiveSeries> {
    let stride = all.len().div_ceil(SAMPLE_SERIES).max(1);
    if stride > 1 {
        all = all.into_iter().step_by(stride).collect();
    }
    all
}

/// `version`'s accuracy over the last `n` origins `every` steps apart of each
/// grid (fewer where the history is short); `None` when no series had enough.
async fn score(
    lstm: Option<&Arc<LstmForecaster>>,
    grids: &Arc<Vec<Grid>>,
    horizon: Horizon,
    version: &str,
    every: usize,
    n: usize,
) -> Result<Option<Score>, BoxDynError> {
    let model = lstm
        .filter(|m| version == with_lstm(m) && lstm_serves(m, horizon))
        .cloned();
    if version != STATISTICAL_VERSION && model.is_none() {
        return Err(format!("version {version} cannot run in this process").into());
    }
    let grids = grids.clone();
    let per_series = tokio::task::spawn_blocking(move || -> Result<_, BoxDynError> {
        let h = horizon.steps();
        let offers = match &model {
            Some(m) => lstm_offers(m, &grids, h)?,
            None => vec![Vec::new(); grids.len()],
        };
        let day = (86_400 / horizon.step_secs()) as usize;
        let mut out = Vec::new();
        for (grid, offered) in grids.iter().zip(&offers) {
            let len = grid.values.len();
            // The newest origin whose H steps are all observed, then back.
            let Some(last) = len.checked_sub(h + 1) else {
                continue;
            };
            let k = (0..n).rev().find(|k| last >= day + k * every);
            let Some(k) = k else { continue };
            let origins = Origins {
                horizon: h,
                every,
                min_train: last - k * every + 1,
            };
            let mut cfg = horizon.engine();
            if model.is_some() {
                cfg.candidates.push(ModelSpec::Lstm);
            }
            // A series too gappy to forecast at some origin is left out.
            let Ok(made) = rolling_origin_offered(&grid.values, origins, cfg, offered) else {
                continue;
            };
            let actual: Vec<f64> = grid.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            let scale = mase_scale(&actual, day, origins.min_train);
            out.push(evaluate(&actual, &made, scale));
        }
        Ok(out)
    })
    .await??;
    Ok(registry::pool(&per_series))
}
