//! Point forecasters that learn one observation at a time.
//!
//! Every model here is online: `observe` folds in the next value in O(window) or
//! better, and `predict` gives point forecasts for the next steps from what it has
//! seen so far. That shape makes leakage impossible by construction (a model never
//! holds a value it has not been fed) and lets the same code serve a backtest, the
//! live forecast job and the accuracy tracking that chooses between models.

use std::collections::VecDeque;

use super::ar::Ar;

/// The candidate models, named so forecasts can record which one produced them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// The last value.
    Naive,
    /// The value one season ago (daily or weekly at the series' step).
    SeasonalNaive { season: usize },
    /// The median of the last `window` values: the MAE-optimal level when a series
    /// is a flat level with spikes, where the last value is a poor guess.
    Median { window: usize },
    /// The median since the last level shift, at most `window` values: after
    /// `confirm` values in a row fall on one side of the median, beyond
    /// three robust standard deviations, the older values are dropped, so the
    /// level follows a step change in `confirm` steps instead of `window / 2`.
    ShiftMedian { window: usize, confirm: usize },
    /// Per step, the median of the forecasts of the `top` base models with the
    /// lowest recent error. Made by the engine from the other candidates (which
    /// is why it has no model of its own) and scored like any of them.
    Ensemble { top: usize },
    /// Forecasts of the global LSTM, offered by the caller (the jobs layer runs
    /// the ONNX model; this crate stays free of I/O). Scored like any model
    /// at the steps where it was offered.
    Lstm,
    /// A direct autoregression per step ahead on the last `lags` deviations
    /// from the median of the last `level` values, fitted online with a
    /// forgetting half-life of `memory` steps (see [`super::ar`]).
    Ar {
        lags: usize,
        level: usize,
        horizon: usize,
        memory: usize,
    },
    /// Additive Holt-Winters with a damped trend, in error-correction form. The
    /// seasonal profile is kept per bucket of `bucket` steps (hour-of-day buckets at
    /// 5-minute data), so each bucket learns from many points per day instead of one.
    Ets {
        alpha: f64,
        beta: f64,
        phi: f64,
        gamma: f64,
        season: usize,
        bucket: usize,
    },
}

impl ModelSpec {
    /// A short stable label (`ets(a=0.2,…)`) for reports and stored forecasts.
    pub fn label(&self) -> String {
        match *self {
            ModelSpec::Naive => "naive".into(),
            ModelSpec::SeasonalNaive { season } => format!("snaive({season})"),
            ModelSpec::Median { window } => format!("median({window})"),
            ModelSpec::ShiftMedian { window, confirm } => {
                format!("shift_median({window},{confirm})")
            }
            ModelSpec::Ensemble { top } => format!("ensemble(top {top})"),
            ModelSpec::Lstm => "lstm".into(),
            ModelSpec::Ar { lags, level, .. } => format!("ar({lags},level {level})"),
            ModelSpec::Ets {
                alpha,
                beta,
                phi,
                gamma,
                season,
                bucket,
            } => format!("ets(a={alpha},b={beta},phi={phi},g={gamma},m={season}/{bucket})"),
        }
    }

    pub fn build(&self) -> Box<dyn PointModel> {
        match *self {
            ModelSpec::Naive => Box::new(Naive::default()),
            ModelSpec::SeasonalNaive { season } => Box::new(SeasonalNaive::new(season)),
            ModelSpec::Median { window } => Box::new(Median::new(window)),
            ModelSpec::ShiftMedian { window, confirm } => {
                Box::new(ShiftMedian::new(window, confirm))
            }
            ModelSpec::Ensemble { .. } | ModelSpec::Lstm => Box::new(FromEngine),
            ModelSpec::Ar {
                lags,
                level,
                horizon,
                memory,
            } => Box::new(Ar::new(lags, level, horizon, memory as f64, memory)),
            ModelSpec::Ets {
                alpha,
                beta,
                phi,
                gamma,
                season,
                bucket,
            } => Box::new(Ets::new(alpha, beta, phi, gamma, season, bucket)),
        }
    }
}

/// An online point forecaster.
pub trait PointModel: Send {
    /// Fold in the next observation (always finite: the caller imputes gaps).
    fn observe(&mut self, y: f64);
    /// Point forecasts for h = 1..=out.len(); `None` until the model has enough data.
    fn predict(&self, out: &mut [f64]) -> bool;
}

/// Stands in for models whose forecasts the engine assembles itself.
#[derive(Debug)]
pub struct FromEngine;

impl PointModel for FromEngine {
    fn observe(&mut self, _: f64) {}
    fn predict(&self, _: &mut [f64]) -> bool {
        false
    }
}

#[derive(Debug, Default)]
pub struct Naive {
    last: Option<f64>,
}

impl PointModel for Naive {
    fn observe(&mut self, y: f64) {
        self.last = Some(y);
    }
    fn predict(&self, out: &mut [f64]) -> bool {
        match self.last {
            Some(v) => {
                out.fill(v);
                true
            }
            None => false,
        }
    }
}

#[derive(Debug)]
pub struct SeasonalNaive {
    season: usize,
    recent: VecDeque<f64>,
}

impl SeasonalNaive {
    pub fn new(season: usize) -> Self {
        let season = season.max(1);
        Self {
            season,
            recent: VecDeque::with_capacity(season),
        }
    }
}

impl PointModel for SeasonalNaive {
    fn observe(&mut self, y: f64) {
        if self.recent.len() == self.season {
            self.recent.pop_front();
        }
        self.recent.push_back(y);
    }
    fn predict(&self, out: &mut [f64]) -> bool {
        if self.recent.len() < self.season {
            return false;
        }
        // recent[0] is the value one full season before the next step.
        for (h, slot) in out.iter_mut().enumerate() {
            *slot = self.recent[h % self.season];
        }
        true
    }
}

#[derive(Debug)]
pub struct Median {
    window: usize,
    recent: VecDeque<f64>,
}

impl Median {
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Self {
            window,
            recent: VecDeque::with_capacity(window),
        }
    }
}

impl PointModel for Median {
    fn observe(&mut self, y: f64) {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(y);
    }
    fn predict(&self, out: &mut [f64]) -> bool {
        if self.recent.is_empty() {
            return false;
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        out.fill(median_in_place(&mut sorted));
        true
    }
}

#[derive(Debug)]
pub struct ShiftMedian {
    window: usize,
    confirm: usize,
    recent: VecDeque<f64>,
    level: Option<f64>,
    scratch: Vec<f64>,
}

impl ShiftMedian {
    pub fn new(window: usize, confirm: usize) -> Self {
        let window = window.max(2);
        Self {
            window,
            confirm: confirm.clamp(1, window - 1),
            recent: VecDeque::with_capacity(window),
            level: None,
            scratch: Vec::with_capacity(window),
        }
    }

    fn median_and_spread(&mut self) -> (f64, f64) {
        self.scratch.clear();
        self.scratch.extend(self.recent.iter().copied());
        let median = median_in_place(&mut self.scratch);
        for v in &mut self.scratch {
            *v = (*v - median).abs();
        }
        // 1.4826 × MAD estimates a standard deviation robustly.
        (median, 1.4826 * median_in_place(&mut self.scratch))
    }
}

impl PointModel for ShiftMedian {
    fn observe(&mut self, y: f64) {
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(y);
        let (median, sigma) = self.median_and_spread();
        let n = self.recent.len();
        if n > 2 * self.confirm && sigma > 0.0 {
            let tail = self.recent.range(n - self.confirm..);
            let (mut above, mut below) = (true, true);
            for v in tail {
                above &= *v > median + 3.0 * sigma;
                below &= *v < median - 3.0 * sigma;
            }
            if above || below {
                self.recent.drain(..n - self.confirm);
                self.level = Some(self.median_and_spread().0);
                return;
            }
        }
        self.level = Some(median);
    }
    fn predict(&self, out: &mut [f64]) -> bool {
        match self.level {
            Some(v) => {
                out.fill(v);
                true
            }
            None => false,
        }
    }
}

/// Median of a non-empty slice (reorders it).
pub(crate) fn median_in_place(values: &mut [f64]) -> f64 {
    let n = values.len();
    let mid = n / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *m;
    if n % 2 == 1 {
        upper
    } else {
        let lower = values[..mid]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

#[derive(Debug)]
pub struct Ets {
    alpha: f64,
    beta: f64,
    phi: f64,
    gamma: f64,
    season: usize,
    bucket: usize,
    level: f64,
    trend: f64,
    seasonal: Vec<f64>,
    /// Position within the season of the next observation.
    phase: usize,
    seen: usize,
}

impl Ets {
    pub fn new(alpha: f64, beta: f64, phi: f64, gamma: f64, season: usize, bucket: usize) -> Self {
        let bucket = bucket.max(1);
        let buckets = if season == 0 {
            0
        } else {
            season.div_ceil(bucket)
        };
        Self {
            alpha: alpha.clamp(0.0, 1.0),
            beta: beta.clamp(0.0, 1.0),
            phi: phi.clamp(0.0, 1.0),
            gamma: gamma.clamp(0.0, 1.0),
            season,
            bucket,
            level: 0.0,
            trend: 0.0,
            seasonal: vec![0.0; buckets],
            phase: 0,
            seen: 0,
        }
    }

    fn season_at(&self, steps_ahead: usize) -> f64 {
        if self.seasonal.is_empty() {
            return 0.0;
        }
        let phase = (self.phase + steps_ahead) % self.season;
        self.seasonal[phase / self.bucket]
    }
}

impl PointModel for Ets {
    fn observe(&mut self, y: f64) {
        if self.seen == 0 {
            self.level = y;
        } else {
            let s = self.season_at(0);
            let fitted = self.level + self.phi * self.trend + s;
            let e = y - fitted;
            self.level = self.level + self.phi * self.trend + self.alpha * e;
            self.trend = self.phi * self.trend + self.beta * e;
            if !self.seasonal.is_empty() {
                let b = self.phase / self.bucket;
                // Spread the correction over the bucket's steps so a bucket moves
                // as fast per day as a per-step season would.
                self.seasonal[b] += self.gamma * (1.0 - self.alpha) * e;
            }
        }
        self.seen += 1;
        if self.season > 0 {
            self.phase = (self.phase + 1) % self.season;
        }
    }

    fn predict(&self, out: &mut [f64]) -> bool {
        if self.seen == 0 {
            return false;
        }
        let mut damp = 0.0;
        let mut power = 1.0;
        for (i, slot) in out.iter_mut().enumerate() {
            power *= self.phi;
            damp += power;
            *slot = self.level + damp * self.trend + self.season_at(i);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict(model: &dyn PointModel, h: usize) -> Option<Vec<f64>> {
        let mut out = vec![0.0; h];
        model.predict(&mut out).then_some(out)
    }

    #[test]
    fn naive_repeats_the_last_value() {
        let mut m = Naive::default();
        assert_eq!(predict(&m, 3), None);
        m.observe(1.0);
        m.observe(4.0);
        assert_eq!(predict(&m, 3), Some(vec![4.0; 3]));
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let mut m = SeasonalNaive::new(3);
        for y in [1.0, 2.0, 3.0, 4.0, 5.0] {
            m.observe(y);
        }
        // Last season is [3, 4, 5]; the next step is one season after 3.
        assert_eq!(predict(&m, 4), Some(vec![3.0, 4.0, 5.0, 3.0]));
    }

    #[test]
    fn median_ignores_a_spike() {
        let mut m = Median::new(5);
        for y in [2.0, 2.0, 50.0, 2.0, 3.0] {
            m.observe(y);
        }
        assert_eq!(predict(&m, 2), Some(vec![2.0, 2.0]));
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn shift_median_follows_a_step_change_quickly() {
        let mut m = ShiftMedian::new(36, 3);
        let mut plain = Median::new(36);
        for i in 0..100 {
            let y = 17.0 + (i % 3) as f64 * 0.2;
            m.observe(y);
            plain.observe(y);
        }
        for _ in 0..3 {
            m.observe(28.0);
            plain.observe(28.0);
        }
        assert_eq!(predict(&m, 1), Some(vec![28.0]));
        assert!(
            predict(&plain, 1).unwrap()[0] < 18.0,
            "the plain median lags"
        );
        // One spike does not move it.
        let mut m = ShiftMedian::new(36, 3);
        for i in 0..100 {
            m.observe(17.0 + (i % 3) as f64 * 0.2);
        }
        m.observe(76.0);
        assert!(predict(&m, 1).unwrap()[0] < 18.0);
    }

    #[test]
    fn ets_learns_a_daily_pattern_and_a_trend() {
        // Level 10, +0.01 per step, a square wave of ±3 over a season of 24.
        let season = 24;
        let truth = |t: usize| 10.0 + 0.01 * t as f64 + if t % season < 12 { 3.0 } else { -3.0 };
        let mut m = Ets::new(0.2, 0.01, 0.98, 0.3, season, 4);
        for t in 0..season * 40 {
            m.observe(truth(t));
        }
        let n = season * 40;
        let out = predict(&m, 12).unwrap();
        for (h, f) in out.iter().enumerate() {
            let want = truth(n + h);
            assert!(
                (f - want).abs() < 0.6,
                "h={} forecast {f} truth {want}",
                h + 1
            );
        }
    }
}
