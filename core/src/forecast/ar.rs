//! A direct multi-step autoregression on deviations from a local level, fitted
//! online: one regression per step ahead, each on the last `lags` values
//! (less the level) and an intercept, by least squares with exponential
//! forgetting and a small ridge.
//!
//! The median-type models forecast a flat level; this one learns what the
//! last values say about the next ones on top of it: an alternation left by a
//! job every ten minutes, a swing that carries on for a few steps, the pull
//! back after a peak. Everything is in units of the series' own spread, and
//! deviations and targets are clipped, so a spike moves the fit little and the
//! same defaults suit any scale.

use std::collections::VecDeque;

use super::models::{PointModel, median_in_place};

/// Deviations and targets beyond this many spreads are clipped to it.
const CLIP: f64 = 5.0;
/// Ridge toward zero weights (i.e. toward the plain level forecast), in the
/// units of one observation's contribution.
const RIDGE: f64 = 1.0;

/// Targets folded into a regression between two solves of its weights.
const SOLVE_EVERY: usize = 6;

/// What was known at one step: its features and how they were scaled.
#[derive(Debug, Clone)]
struct Made {
    x: Vec<f64>,
    level: f64,
    spread: f64,
}

/// One step ahead's forgotten normal equations and their solution.
#[derive(Debug, Clone)]
struct Regression {
    /// `dim × dim`, row-major: λ·A + x·xᵀ + (1 − λ)·ridge·I.
    gram: Vec<f64>,
    rhs: Vec<f64>,
    weights: Vec<f64>,
    /// Targets folded in since the weights were last solved for.
    stale: usize,
}

#[derive(Debug)]
pub struct Ar {
    lags: usize,
    level_window: usize,
    forget: f64,
    spread_window: usize,
    /// The last `max(lags, level_window)` values, newest last.
    recent: VecDeque<f64>,
    /// |value − level| of the last `spread_window` steps, newest last.
    deviations: VecDeque<f64>,
    /// The spread as last worked out, and the steps since.
    spread: (f64, usize),
    /// What was known after each of the last `horizon` observations, newest last.
    made: VecDeque<Made>,
    regressions: Vec<Regression>,
    scratch: Vec<f64>,
}

impl Ar {
    /// `forget_half_life` and `spread_window` in steps.
    pub fn new(
        lags: usize,
        level_window: usize,
        horizon: usize,
        forget_half_life: f64,
        spread_window: usize,
    ) -> Self {
        let lags = lags.max(1);
        let dim = lags + 1;
        let mut gram = vec![0.0; dim * dim];
        for i in 0..dim {
            gram[i * dim + i] = RIDGE;
        }
        let regression = Regression {
            gram,
            rhs: vec![0.0; dim],
            weights: vec![0.0; dim],
            stale: 0,
        };
        let spread_window = spread_window.max(1);
        Self {
            lags,
            level_window: level_window.max(1),
            forget: 0.5f64.powf(1.0 / forget_half_life.max(1.0)),
            spread_window,
            recent: VecDeque::with_capacity(lags.max(level_window) + 1),
            deviations: VecDeque::with_capacity(spread_window + 1),
            spread: (0.0, usize::MAX),
            made: VecDeque::with_capacity(horizon.max(1) + 1),
            regressions: vec![regression; horizon.max(1)],
            scratch: Vec::with_capacity(dim * dim + dim),
        }
    }

    fn level(&mut self) -> f64 {
        let n = self.recent.len();
        self.scratch.clear();
        self.scratch
            .extend(self.recent.range(n.saturating_sub(self.level_window)..));
        median_in_place(&mut self.scratch)
    }

    /// The typical deviation from the level: the median absolute deviation
    /// of the window (a spike does not move it); where more than half the
    /// values sit on the level (a mostly idle series), the 90th percentile.
    /// The caller keeps it above a tiny fraction of the level, so dividing by
    /// it is safe on a flat stretch.
    fn spread(&mut self) -> f64 {
        self.scratch.clear();
        self.scratch.extend(self.deviations.iter().copied());
        let mut spread = median_in_place(&mut self.scratch);
        if spread <= 0.0 {
            let k = (self.scratch.len() * 9 / 10).min(self.scratch.len() - 1);
            spread = *self.scratch.select_nth_unstable_by(k, f64::total_cmp).1;
        }
        spread
    }

    /// Folds `target` (the value `h` steps after `made`) into regression `h-1`.
    fn learn(&mut self, h: usize, target: f64) {
        let made = &self.made[self.made.len() - h];
        let y = ((target - made.level) / made.spread).clamp(-CLIP, CLIP);
        let r = &mut self.regressions[h - 1];
        let dim = made.x.len();
        let (lambda, ridge) = (self.forget, (1.0 - self.forget) * RIDGE);
        for i in 0..dim {
            for j in 0..dim {
                let g = &mut r.gram[i * dim + j];
                *g = lambda * *g + made.x[i] * made.x[j];
            }
            r.gram[i * dim + i] += ridge;
            r.rhs[i] = lambda * r.rhs[i] + made.x[i] * y;
        }
        r.stale += 1;
        if r.stale >= SOLVE_EVERY {
            r.stale = 0;
            solve_spd(&r.gram, &r.rhs, &mut r.weights, &mut self.scratch);
        }
    }
}

impl PointModel for Ar {
    fn observe(&mut self, y: f64) {
        for h in 1..=self.made.len().min(self.regressions.len()) {
            self.learn(h, y);
        }
        if self.recent.len() == self.lags.max(self.level_window) {
            self.recent.pop_front();
        }
        self.recent.push_back(y);
        let level = self.level();
        if self.deviations.len() == self.spread_window {
            self.deviations.pop_front();
        }
        self.deviations.push_back((y - level).abs());
        if self.recent.len() < self.lags {
            return;
        }
        // A day's robust spread barely moves in a few steps: worked out as
        // often as the weights are solved for.
        let spread = match self.spread {
            (s, age) if age < SOLVE_EVERY => {
                self.spread.1 += 1;
                s
            }
            _ => {
                let s = self.spread();
                self.spread = (s, 1);
                s
            }
        }
        .max(1e-9 * level.abs().max(1.0));
        let mut x: Vec<f64> = self
            .recent
            .iter()
            .rev()
            .take(self.lags)
            .map(|v| ((v - level) / spread).clamp(-CLIP, CLIP))
            .collect();
        x.push(1.0);
        if self.made.len() == self.regressions.len() {
            self.made.pop_front();
        }
        self.made.push_back(Made { x, level, spread });
    }

    fn predict(&self, out: &mut [f64]) -> bool {
        let Some(made) = self.made.back() else {
            return false;
        };
        for (i, slot) in out.iter_mut().enumerate() {
            let r = &self.regressions[i.min(self.regressions.len() - 1)];
            let dev: f64 = r.weights.iter().zip(&made.x).map(|(w, x)| w * x).sum();
            *slot = made.level + made.spread * dev;
        }
        true
    }
}

/// Solves `a · x = b` for a symmetric positive definite `a` (`n × n`,
/// row-major) by Cholesky; `work` is scratch space. The ridge keeps `a`
/// positive definite; should rounding break that, `x` is left as it was.
fn solve_spd(a: &[f64], b: &[f64], x: &mut [f64], work: &mut Vec<f64>) {
    let n = b.len();
    work.clear();
    work.resize(n * n + n, 0.0);
    let (l, z) = work.split_at_mut(n * n);
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    for i in 0..n {
        let s = b[i] - (0..i).map(|k| l[i * n + k] * z[k]).sum::<f64>();
        z[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s = z[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>();
        x[i] = s / l[i * n + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict(m: &Ar, h: usize) -> Vec<f64> {
        let mut out = vec![0.0; h];
        assert!(m.predict(&mut out));
        out
    }

    #[test]
    fn solves_a_small_system() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let mut x = [0.0; 2];
        solve_spd(&a, &[6.0, 5.0], &mut x, &mut Vec::new());
        assert!(
            (x[0] - 1.0).abs() < 1e-12 && (x[1] - 1.0).abs() < 1e-12,
            "{x:?}"
        );
    }

    #[test]
    fn learns_an_alternation_a_level_forecast_cannot() {
        // Level 17 with a job every other step: 16, 18, 16, 18, ... plus a
        // little deterministic jitter. The median forecasts 17 at every step
        // (off by 1 each time); the regressions learn the alternation.
        let mut m = Ar::new(12, 12, 4, 288.0, 288);
        let value = |t: usize| {
            17.0 + if t.is_multiple_of(2) { -1.0 } else { 1.0 } + ((t * 7) % 5) as f64 * 0.02
        };
        let n = 2_000;
        for t in 0..n {
            m.observe(value(t));
        }
        for (h, f) in predict(&m, 4).iter().enumerate() {
            let want = value(n + h);
            assert!(
                (f - want).abs() < 0.15,
                "h={} forecast {f} truth {want}",
                h + 1
            );
        }
    }

    #[test]
    fn spikes_and_flat_stretches_stay_finite() {
        let mut m = Ar::new(6, 12, 3, 100.0, 100);
        for _ in 0..50 {
            m.observe(5.0);
        }
        assert_eq!(predict(&m, 3), vec![5.0; 3], "a flat series stays flat");
        m.observe(1e12);
        for t in 0..50 {
            m.observe(5.0 + (t % 3) as f64);
        }
        let out = predict(&m, 3);
        assert!(
            out.iter().all(|v| v.is_finite() && (0.0..20.0).contains(v)),
            "{out:?}"
        );
    }

    #[test]
    fn forecasts_the_level_until_it_has_learnt() {
        let mut m = Ar::new(4, 3, 2, 50.0, 50);
        let mut out = [0.0; 2];
        assert!(!m.predict(&mut out), "nothing seen");
        for y in [3.0, 9.0, 4.0, 5.0] {
            m.observe(y);
        }
        // One set of features, no target yet: weights are zero, the
        // forecast is the median of the last three values.
        assert_eq!(predict(&m, 2), vec![5.0, 5.0]);
    }
}
