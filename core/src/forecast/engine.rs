//! One series, many candidate models, online: every observation scores the
//! forecasts each model made for it, feeds the model, and slides the conformal
//! error windows. A forecast uses the candidate with the lowest recent
//! (exponentially decayed) absolute error at each step, so model choice follows
//! the series as it changes.
//!
//! Its p10/p90 come from the recent errors of what the engine *served* at that
//! step (whichever model was chosen each time), not from the chosen model's own
//! window: a model is chosen because its recent errors were small, so its own
//! window understates the error of "the best model so far" and its interval
//! covers less than it claims. The chosen model's window is the fallback until
//! the served one holds enough errors.

use std::collections::VecDeque;

use super::calibration::ErrorWindow;
use super::models::{ModelSpec, PointModel, median_in_place};
use super::{Forecast, ForecastError, Step};

/// How a series is forecast.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineConfig {
    /// Steps ahead to forecast (and to track errors for).
    pub horizon: usize,
    pub candidates: Vec<ModelSpec>,
    /// Half-life, in steps, of the error score that chooses the model.
    pub score_half_life: f64,
    /// Signed errors kept per model and horizon step for the intervals.
    pub calibration_window: usize,
    /// Errors needed at a horizon step before its own window is trusted; below
    /// that the interval comes from the widest window that has enough.
    pub min_calibration: usize,
    /// Central coverage of the p10–p90 interval (0.8).
    pub coverage: f64,
    /// Step of the adaptive conformal correction (0 keeps the plain window).
    pub adapt_rate: f64,
}

impl EngineConfig {
    /// Defaults for a series sampled every `step_secs` seconds.
    pub fn for_step(horizon: usize, step_secs: u64, family: Family) -> Self {
        Self {
            horizon: horizon.max(1),
            candidates: family.candidates(horizon, step_secs),
            score_half_life: 288.0,
            calibration_window: 288,
            min_calibration: 24,
            coverage: 0.8,
            adapt_rate: 0.005,
        }
    }
}

/// The longest horizon the autoregression is a candidate at.
const MAX_AR_HORIZON: usize = 48;

/// Which models `auto` may choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Every statistical candidate; the best one by recent accuracy serves.
    Auto,
    /// Holt-Winters (damped trend, daily season) variants only.
    Ets,
    /// Seasonal naive, daily and weekly.
    Snaive,
}

impl Family {
    pub fn candidates(self, horizon: usize, step_secs: u64) -> Vec<ModelSpec> {
        let step = step_secs.max(1) as usize;
        let day = (86_400 / step).max(1);
        let week = day * 7;
        let hour = (3_600 / step).max(1);
        let snaive = vec![
            ModelSpec::SeasonalNaive { season: day },
            ModelSpec::SeasonalNaive { season: week },
        ];
        let ets: Vec<ModelSpec> = [(0.1, 0.1), (0.3, 0.1), (0.6, 0.05)]
            .into_iter()
            .map(|(alpha, gamma)| ModelSpec::Ets {
                alpha,
                beta: 0.01,
                phi: 0.9,
                gamma,
                season: day,
                bucket: hour,
            })
            .collect();
        match self {
            Family::Snaive => snaive,
            Family::Ets => ets,
            Family::Auto => {
                let mut all = vec![ModelSpec::Naive];
                all.extend([3, 6, 12, 36].map(|window| ModelSpec::Median { window }));
                all.extend([36, 144].map(|window| ModelSpec::ShiftMedian { window, confirm: 3 }));
                all.extend(ets);
                // One regression per step ahead, for the short-range structure
                // of the last hour: at the planning horizon's 168 hourly steps it
                // would carry 168 sets of normal equations (~260 KB) per series.
                if horizon <= MAX_AR_HORIZON {
                    all.push(ModelSpec::Ar {
                        lags: 12,
                        level: 12,
                        horizon,
                        memory: day,
                    });
                }
                all.extend(snaive);
                all.push(ModelSpec::Ensemble { top: 3 });
                all
            }
        }
    }
}

struct Candidate {
    spec: ModelSpec,
    model: Box<dyn PointModel>,
    /// Forecasts made after each of the last `horizon` observations, newest last.
    pending: VecDeque<Option<Vec<f64>>>,
    errors: Vec<ErrorWindow>,
    /// Decayed absolute error per horizon step: the choice is made per step,
    /// since the model best one step ahead is rarely the best an hour ahead.
    score_sum: Vec<f64>,
    score_weight: Vec<f64>,
}

impl Candidate {
    fn score(&self, i: usize) -> Option<f64> {
        (self.score_weight[i] > 0.0).then(|| self.score_sum[i] / self.score_weight[i])
    }
}

/// What the engine served after each observation, scored like a candidate.
struct Served {
    /// Served points after each of the last `horizon` observations, newest last.
    pending: VecDeque<Option<Vec<f64>>>,
    errors: Vec<ErrorWindow>,
    /// The last observation's served points are not recorded yet: they are
    /// taken at the next observation, after any forecast offered for it.
    open: bool,
}

/// Why the ensembles are assembled: a new observation's forecasts (a new
/// entry) or a forecast offered for the current step (the newest redone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assembly {
    NewStep,
    Offered,
}

/// The online forecaster of one series.
pub struct SeriesForecaster {
    cfg: EngineConfig,
    candidates: Vec<Candidate>,
    served: Served,
    decay: f64,
    last_value: Option<f64>,
    observed: usize,
    /// No value observed was below 0 (a load, a byte count, a share): then no
    /// quantile is served below 0 either, where an interval around a median
    /// near 0 would reach. Clipping can only bring a quantile nearer such a
    /// series' values, so it costs no coverage and no accuracy.
    never_negative: bool,
    scratch: Vec<f64>,
}

fn error_windows(cfg: &EngineConfig) -> Vec<ErrorWindow> {
    (0..cfg.horizon)
        .map(|_| {
            ErrorWindow::new(
                cfg.calibration_window,
                (1.0 - cfg.coverage) / 2.0,
                cfg.adapt_rate,
            )
        })
        .collect()
}

/// Scores forecasts made at the last observations against the actual `y`:
/// `pending[len-1]` was made one step ago (h=1), `pending[len-h]` h steps ago.
/// Calls `scored(h - 1, error)` for each.
fn score_pending(
    pending: &VecDeque<Option<Vec<f64>>>,
    horizon: usize,
    y: f64,
    mut scored: impl FnMut(usize, f64),
) {
    let len = pending.len();
    for h in 1..=len.min(horizon) {
        if let Some(f) = &pending[len - h] {
            scored(h - 1, y - f[h - 1]);
        }
    }
}

/// The window at horizon index `i` if it holds at least `min` errors, else
/// the nearest longer horizon's that does (wider, so the interval errs on the
/// safe side), else the nearest shorter one's.
fn enough_window(errors: &[ErrorWindow], i: usize, min: usize) -> Option<&ErrorWindow> {
    let enough = |w: &&ErrorWindow| w.len() >= min;
    errors[i..]
        .iter()
        .find(enough)
        .or_else(|| errors[..i].iter().rev().find(enough))
}

impl SeriesForecaster {
    pub fn new(cfg: EngineConfig) -> Result<Self, ForecastError> {
        if cfg.horizon == 0 {
            return Err(ForecastError::ZeroHorizon);
        }
        if cfg.candidates.is_empty() {
            return Err(ForecastError::NoCandidates);
        }
        let candidates = cfg
            .candidates
            .iter()
            .map(|spec| Candidate {
                spec: *spec,
                model: spec.build(),
                pending: VecDeque::with_capacity(cfg.horizon + 1),
                errors: error_windows(&cfg),
                score_sum: vec![0.0; cfg.horizon],
                score_weight: vec![0.0; cfg.horizon],
            })
            .collect();
        let served = Served {
            pending: VecDeque::with_capacity(cfg.horizon + 1),
            errors: error_windows(&cfg),
            open: false,
        };
        let decay = if cfg.score_half_life > 0.0 {
            0.5f64.powf(1.0 / cfg.score_half_life)
        } else {
            0.0
        };
        Ok(Self {
            scratch: vec![0.0; cfg.horizon],
            cfg,
            candidates,
            served,
            decay,
            last_value: None,
            observed: 0,
            never_negative: true,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Real (non-missing) observations seen so far.
    pub fn observed(&self) -> usize {
        self.observed
    }

    /// The next value of the series; `None` (or a non-finite value) is a gap.
    /// Gaps keep the time axis aligned: models see the last known value, but no
    /// error is scored against a value nobody measured.
    pub fn observe(&mut self, value: Option<f64>) {
        let actual = value.filter(|v| v.is_finite());
        let Some(fill) = actual.or(self.last_value) else {
            return; // nothing known yet: there is no time axis to keep
        };
        let horizon = self.cfg.horizon;
        self.record_served();
        if let Some(y) = actual {
            let s = &mut self.served;
            score_pending(&s.pending, horizon, y, |i, e| s.errors[i].push(e));
        }
        for c in &mut self.candidates {
            if let Some(y) = actual {
                c.score_sum.iter_mut().for_each(|v| *v *= self.decay);
                c.score_weight.iter_mut().for_each(|v| *v *= self.decay);
                score_pending(&c.pending, horizon, y, |i, e| {
                    c.errors[i].push(e);
                    c.score_sum[i] += e.abs();
                    c.score_weight[i] += 1.0;
                });
            }
            if matches!(c.spec, ModelSpec::Ensemble { .. }) {
                continue; // assembled below, from the others' new forecasts
            }
            c.model.observe(fill);
            let made = c
                .model
                .predict(&mut self.scratch)
                .then(|| self.scratch.clone());
            if c.pending.len() == horizon {
                c.pending.pop_front();
            }
            c.pending.push_back(made);
        }
        self.assemble_ensembles(Assembly::NewStep);
        self.served.open = true;
        if let Some(y) = actual {
            self.observed += 1;
            self.never_negative &= y >= 0.0;
        }
        self.last_value = Some(fill);
    }

    /// Records what [`forecast`](Self::forecast) would have served after the
    /// last observation (offers included), before the next one scores it.
    fn record_served(&mut self) {
        if !std::mem::take(&mut self.served.open) {
            return;
        }
        let points: Option<Vec<f64>> = (0..self.cfg.horizon)
            .map(|i| {
                let c = self.choose(i)?;
                c.pending.back()?.as_ref().map(|f| f[i])
            })
            .collect();
        let s = &mut self.served;
        if s.pending.len() == self.cfg.horizon {
            s.pending.pop_front();
        }
        s.pending.push_back(points);
    }

    /// The candidate that serves horizon index `i`: the best recent score
    /// among models that can forecast now; before any is scored, the first
    /// candidate able to forecast.
    fn choose(&self, i: usize) -> Option<&Candidate> {
        self.candidates
            .iter()
            .filter(|c| matches!(c.pending.back(), Some(Some(_))))
            .min_by(|a, b| match (a.score(i), b.score(i)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
    }

    /// Hands the engine a forecast made outside it (the LSTM) for the current
    /// step, right after [`observe`](Self::observe). It is scored when its
    /// targets arrive and may serve [`forecast`](Self::forecast) if it has been
    /// the most accurate. Returns false when `spec` is not a candidate or the
    /// forecast has the wrong length.
    pub fn offer(&mut self, spec: ModelSpec, points: Vec<f64>) -> bool {
        let horizon = self.cfg.horizon;
        let Some(c) = self.candidates.iter_mut().find(|c| c.spec == spec) else {
            return false;
        };
        if points.len() != horizon || points.iter().any(|v| !v.is_finite()) {
            return false;
        }
        match c.pending.back_mut() {
            Some(slot) => {
                *slot = Some(points);
                // The ensemble is of every model, the offered one included.
                self.assemble_ensembles(Assembly::Offered);
                true
            }
            None => false,
        }
    }

    /// Fills the newest forecast of each ensemble candidate from the newest
    /// forecasts of the base models, best recent score first.
    fn assemble_ensembles(&mut self, when: Assembly) {
        let horizon = self.cfg.horizon;
        let (bases, ensembles): (Vec<&mut Candidate>, Vec<&mut Candidate>) = self
            .candidates
            .iter_mut()
            .partition(|c| !matches!(c.spec, ModelSpec::Ensemble { .. }));
        for e in ensembles {
            let ModelSpec::Ensemble { top } = e.spec else {
                continue;
            };
            let mut points = vec![0.0; horizon];
            let mut ok = true;
            for (i, slot) in points.iter_mut().enumerate() {
                let mut ranked: Vec<(f64, f64)> = bases
                    .iter()
                    .filter_map(|c| {
                        let f = c.pending.back()?.as_ref()?;
                        Some((c.score(i).unwrap_or(f64::INFINITY), f[i]))
                    })
                    .collect();
                if ranked.is_empty() {
                    ok = false;
                    break;
                }
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut best: Vec<f64> = ranked.iter().take(top.max(1)).map(|r| r.1).collect();
                *slot = median_in_place(&mut best);
            }
            if when == Assembly::Offered {
                if let Some(newest) = e.pending.back_mut() {
                    *newest = ok.then_some(points);
                }
                continue;
            }
            if e.pending.len() == horizon {
                e.pending.pop_front();
            }
            e.pending.push_back(ok.then_some(points));
        }
    }

    /// The forecast for the next `horizon` steps from everything observed so far.
    pub fn forecast(&self) -> Result<Forecast, ForecastError> {
        if self.observed < 2 {
            return Err(ForecastError::TooShort {
                have: self.observed,
                need: 2,
            });
        }
        let mut steps = Vec::with_capacity(self.cfg.horizon);
        let mut models = Vec::with_capacity(self.cfg.horizon);
        let mut scores = Vec::with_capacity(self.cfg.horizon);
        for i in 0..self.cfg.horizon {
            let chosen = self.choose(i).ok_or(ForecastError::TooShort {
                have: self.observed,
                need: 2,
            })?;
            let Some(Some(points)) = chosen.pending.back() else {
                unreachable!("filtered above")
            };
            let p50 = points[i];
            let (lo, hi) = self
                .window_for(chosen, i)
                .and_then(ErrorWindow::bounds)
                .unwrap_or((0.0, 0.0));
            let floor = |v: f64| if self.never_negative { v.max(0.0) } else { v };
            steps.push(Step::ordered(floor(p50 + lo), floor(p50), floor(p50 + hi)));
            models.push(chosen.spec.label());
            scores.extend(chosen.score(i));
        }
        Ok(Forecast {
            steps,
            models,
            score: (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64),
        })
    }

    /// The error window for horizon index `i`: the served forecast's once it
    /// holds enough errors at this step; until then the chosen model's, at
    /// this step or a neighbouring one (see [`enough_window`]); otherwise the
    /// chosen model's fullest window.
    fn window_for<'a>(&'a self, c: &'a Candidate, i: usize) -> Option<&'a ErrorWindow> {
        let min = self.cfg.min_calibration;
        self.served.errors[i..=i]
            .iter()
            .find(|w| w.len() >= min)
            .or_else(|| enough_window(&c.errors, i, min))
            .or_else(|| {
                c.errors
                    .iter()
                    .filter(|w| !w.is_empty())
                    .max_by_key(|w| w.len())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(horizon: usize, candidates: Vec<ModelSpec>) -> EngineConfig {
        EngineConfig {
            horizon,
            candidates,
            score_half_life: 50.0,
            calibration_window: 200,
            min_calibration: 10,
            coverage: 0.8,
            adapt_rate: 0.005,
        }
    }

    #[test]
    fn needs_two_observations() {
        let mut f = SeriesForecaster::new(cfg(3, vec![ModelSpec::Naive])).unwrap();
        assert!(matches!(f.forecast(), Err(ForecastError::TooShort { .. })));
        f.observe(Some(1.0));
        f.observe(None);
        f.observe(Some(f64::NAN));
        assert!(matches!(
            f.forecast(),
            Err(ForecastError::TooShort { have: 1, .. })
        ));
        f.observe(Some(2.0));
        assert_eq!(f.forecast().unwrap().steps[0].p50, 2.0);
    }

    #[test]
    fn chooses_the_model_that_has_been_more_accurate() {
        // A period-4 pattern: seasonal naive is exact, naive is not.
        let mut f = SeriesForecaster::new(cfg(
            4,
            vec![ModelSpec::Naive, ModelSpec::SeasonalNaive { season: 4 }],
        ))
        .unwrap();
        for t in 0..200 {
            f.observe(Some([1.0, 5.0, 2.0, 8.0][t % 4]));
        }
        let fc = f.forecast().unwrap();
        // Four steps ahead the naive forecast is exact too (period 4): a tie.
        assert!(
            fc.models[..3].iter().all(|m| m == "snaive(4)"),
            "{:?}",
            fc.models
        );
        let p50: Vec<f64> = fc.steps.iter().map(|s| s.p50).collect();
        assert_eq!(p50, vec![1.0, 5.0, 2.0, 8.0]);
        // Exact model, zero errors: a zero-width interval is the honest one.
        assert!(fc.steps.iter().all(|s| s.p10 == s.p50 && s.p90 == s.p50));
    }

    #[test]
    fn a_constant_series_gets_a_constant_forecast() {
        let mut f = SeriesForecaster::new(EngineConfig::for_step(12, 300, Family::Auto)).unwrap();
        for _ in 0..100 {
            f.observe(Some(7.5));
        }
        let fc = f.forecast().unwrap();
        assert_eq!(fc.steps.len(), 12);
        for s in &fc.steps {
            assert!((s.p50 - 7.5).abs() < 1e-9, "{s:?}");
            assert!((s.p90 - s.p10).abs() < 1e-9, "{s:?}");
        }
    }

    #[test]
    fn intervals_cover_about_eighty_percent_of_noise() {
        // Deterministic pseudo-random noise around a level: the p10-p90 band of
        // a median model should hold close to 80 % of later values.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let mut f = SeriesForecaster::new(cfg(1, vec![ModelSpec::Median { window: 50 }])).unwrap();
        let (mut inside, mut total) = (0, 0);
        for t in 0..5000 {
            let y = 100.0 + 10.0 * noise();
            if t > 500 {
                let s = f.forecast().unwrap().steps[0];
                total += 1;
                if s.p10 <= y && y <= s.p90 {
                    inside += 1;
                }
            }
            f.observe(Some(y));
        }
        let coverage = inside as f64 / total as f64;
        assert!((0.75..=0.85).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn a_series_never_below_zero_gets_no_quantile_below_zero() {
        // Busy (5 ± 2), then nearly idle: the band learnt while busy, around
        // the new median of 0.3, would reach below 0.
        let series = |first: f64| {
            (0..540).map(move |t| match t {
                0 => first,
                500.. => 0.3,
                _ if t % 2 == 0 => 3.0,
                _ => 7.0,
            })
        };
        let spec = vec![ModelSpec::Median { window: 50 }];
        let mut f = SeriesForecaster::new(cfg(3, spec.clone())).unwrap();
        series(5.0).for_each(|y| f.observe(Some(y)));
        let steps = f.forecast().unwrap().steps;
        assert!(
            steps.iter().all(|s| s.p10 >= 0.0 && s.p50 >= 0.0),
            "{steps:?}"
        );
        assert!(
            steps.iter().any(|s| s.p10 == 0.0),
            "the band was clipped: {steps:?}"
        );
        // A series that has gone below 0 (a net flow, a temperature) keeps its band.
        let mut f = SeriesForecaster::new(cfg(3, spec)).unwrap();
        series(-0.1).for_each(|y| f.observe(Some(y)));
        let steps = f.forecast().unwrap().steps;
        assert!(steps.iter().any(|s| s.p10 < 0.0), "{steps:?}");
    }

    #[test]
    fn an_offered_forecast_is_scored_and_serves_when_best() {
        // The offered model knows the pattern; naive does not.
        let pattern = [1.0, 5.0, 2.0, 8.0];
        let mut f = SeriesForecaster::new(cfg(2, vec![ModelSpec::Naive, ModelSpec::Lstm])).unwrap();
        for t in 0..200 {
            f.observe(Some(pattern[t % 4]));
            let next = vec![pattern[(t + 1) % 4], pattern[(t + 2) % 4]];
            assert!(f.offer(ModelSpec::Lstm, next));
        }
        let fc = f.forecast().unwrap();
        assert_eq!(fc.models, vec!["lstm", "lstm"]);
        assert_eq!(fc.steps[0].p50, pattern[200 % 4]);
        // Not offered at the latest step: it cannot serve a stale forecast.
        f.observe(Some(pattern[0]));
        assert!(f.forecast().unwrap().models.iter().all(|m| m == "naive"));
        assert!(!f.offer(ModelSpec::Lstm, vec![1.0]), "wrong length");
        assert!(
            !f.offer(ModelSpec::Median { window: 3 }, vec![1.0, 2.0]),
            "not a candidate"
        );
    }

    #[test]
    fn intervals_come_from_the_errors_of_what_was_served() {
        // A ramp: naive is always 1 short. The offered model is exact, but
        // only every other step is it offered, so what the engine serves
        // alternates between an exact forecast and one that is 1 short.
        let mut c = cfg(1, vec![ModelSpec::Naive, ModelSpec::Lstm]);
        c.adapt_rate = 0.0;
        let mut f = SeriesForecaster::new(c).unwrap();
        for t in 0..=200 {
            f.observe(Some(t as f64));
            if t % 2 == 0 {
                assert!(f.offer(ModelSpec::Lstm, vec![t as f64 + 1.0]));
            }
        }
        // Offered at the last step: the exact model serves, and its own
        // errors are all 0, but half of what was served missed by 1.
        let fc = f.forecast().unwrap();
        assert_eq!(fc.models, vec!["lstm"]);
        let s = fc.steps[0];
        assert_eq!(s.p50, 201.0);
        assert_eq!(s.p10, 201.0);
        assert!((s.p90 - 202.0).abs() < 1e-9, "{s:?}");
        // A single candidate serves itself: its own errors, as before (all
        // +1; the interval is ordered around p50).
        let mut f = SeriesForecaster::new(cfg(1, vec![ModelSpec::Naive])).unwrap();
        for t in 0..200 {
            f.observe(Some(t as f64));
        }
        let s = f.forecast().unwrap().steps[0];
        assert_eq!((s.p10, s.p50, s.p90), (199.0, 199.0, 200.0));
    }

    #[test]
    fn the_ensemble_takes_in_an_offered_forecast() {
        // A ramp: naive is always 1 short, the offered model exact. The
        // ensemble of the single best model is the offered one's forecast,
        // and (listed first) serves on a tie.
        let mut f = SeriesForecaster::new(cfg(
            1,
            vec![
                ModelSpec::Ensemble { top: 1 },
                ModelSpec::Lstm,
                ModelSpec::Naive,
            ],
        ))
        .unwrap();
        for t in 0..100 {
            f.observe(Some(t as f64));
            assert!(f.offer(ModelSpec::Lstm, vec![t as f64 + 1.0]));
        }
        let fc = f.forecast().unwrap();
        assert_eq!(fc.models, vec!["ensemble(top 1)"]);
        assert_eq!(fc.steps[0].p50, 100.0);
    }

    #[test]
    fn the_autoregression_runs_at_short_horizons_only() {
        // One regression per step ahead: not at the planning horizon's 168.
        let has_ar = |horizon| {
            EngineConfig::for_step(horizon, 300, Family::Auto)
                .candidates
                .iter()
                .any(|c| matches!(c, ModelSpec::Ar { horizon: h, .. } if *h == horizon))
        };
        assert!(has_ar(12));
        assert!(!has_ar(168));
    }

    #[test]
    fn rejects_a_zero_horizon_and_no_models() {
        assert!(matches!(
            SeriesForecaster::new(cfg(0, vec![ModelSpec::Naive])),
            Err(ForecastError::ZeroHorizon)
        ));
        assert!(matches!(
            SeriesForecaster::new(cfg(3, vec![])),
            Err(ForecastError::NoCandidates)
        ));
    }
}
