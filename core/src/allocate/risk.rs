//! How far demand may rise above its forecast, measured per demand level.
//!
//! Scaling errors are multiplicative (a burst multiplies load) and depend on
//! the level: a quiet series at 10 units rarely moves, the same series halfway
//! into a burst is about to triple. So the ratio `(actual + 1) / (forecast + 1)`
//! is recorded in a bin of the forecast's log-level, and the upper quantile of
//! the forecast's bin (Mondrian conformal prediction) sizes the margin. The +1
//! (one instance unit) keeps idle periods from producing infinite ratios.

use std::collections::VecDeque;

/// Bin width in natural-log units: a factor of e^0.5 ≈ 1.65 per bin.
const BIN_WIDTH: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrowthRisk {
    /// Log-ratios kept per bin, newest last (f32: the state is persisted per
    /// workload and the precision needed is far coarser).
    bins: Vec<(i32, VecDeque<f32>)>,
    capacity: usize,
    min_samples: usize,
}

impl GrowthRisk {
    pub fn new(capacity: usize, min_samples: usize) -> Self {
        Self {
            bins: Vec::new(),
            capacity: capacity.max(1),
            min_samples: min_samples.max(1),
        }
    }

    fn bin(level: f64) -> i32 {
        ((level.max(0.0) + 1.0).ln() / BIN_WIDTH).floor() as i32
    }

    /// Records what happened to a forecast: `forecast` made earlier, `actual`
    /// now observed.
    pub fn record(&mut self, forecast: f64, actual: f64) {
        if !(forecast.is_finite() && actual.is_finite()) {
            return;
        }
        let r = ((actual.max(0.0) + 1.0) / (forecast.max(0.0) + 1.0)).ln() as f32;
        let b = Self::bin(forecast);
        let window = match self.bins.iter_mut().find(|(k, _)| *k == b) {
            Some((_, w)) => w,
            None => {
                self.bins.push((b, VecDeque::new()));
                &mut self.bins.last_mut().expect("just pushed").1
            }
        };
        if window.len() == self.capacity {
            window.pop_front();
        }
        window.push_back(r);
    }

    /// The `level` quantile of demand given a forecast of `forecast`; `None`
    /// until enough outcomes are known at that level. No pooled fallback: the
    /// outcomes of other levels (a burst's ×900 onset) say nothing useful
    /// about this one, and the caller's reactive rule serves meanwhile.
    pub fn upper(&self, forecast: f64, level: f64) -> Option<f64> {
        let sorted = self.sorted_at(forecast)?;
        let idx = ((sorted.len() - 1) as f64 * level.clamp(0.0, 1.0)).round() as usize;
        Some((forecast.max(0.0) + 1.0) * f64::from(sorted[idx]).exp() - 1.0)
    }

    /// The log-ratios recorded at `forecast`'s level, sorted; `None` until
    /// there are enough.
    fn sorted_at(&self, forecast: f64) -> Option<Vec<f32>> {
        let b = Self::bin(forecast);
        let window = self
            .bins
            .iter()
            .find(|(k, _)| *k == b)
            .map(|(_, w)| w)
            .filter(|w| w.len() >= self.min_samples)?;
        let mut sorted: Vec<f32> = window.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        Some(sorted)
    }

    /// The demand to size for that minimises expected cost: instances paid
    /// for (`sized / target`) plus `miss_cost` instance-steps times the chance
    /// demand exceeds it, over this level's outcomes. Where the level's tail
    /// is wide (a burst that may go ×10), covering it costs more than the miss
    /// and the tail is left uncovered; where it is narrow, it is covered.
    pub fn economic(&self, forecast: f64, miss_cost: f64, target: f64) -> Option<f64> {
        let sorted = self.sorted_at(forecast)?;
        let n = sorted.len() as f64;
        let base = forecast.max(0.0) + 1.0;
        let mut best: Option<(f64, f64)> = None;
        for (i, r) in sorted.iter().enumerate() {
            let demand = (base * f64::from(*r).exp() - 1.0).max(0.0);
            let above = (sorted.len() - 1 - i) as f64 / n;
            let cost = demand / target + miss_cost * above;
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, demand));
            }
        }
        best.map(|(_, d)| d)
    }

    /// Whether the forecast's level has enough outcomes for a margin.
    pub fn calibrated_at(&self, forecast: f64) -> bool {
        let b = Self::bin(forecast);
        self.bins
            .iter()
            .any(|(k, w)| *k == b && w.len() >= self.min_samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_margin_before_enough_outcomes() {
        let mut r = GrowthRisk::new(64, 5);
        for _ in 0..4 {
            r.record(10.0, 12.0);
        }
        assert_eq!(r.upper(10.0, 0.9), None);
        r.record(10.0, 12.0);
        let u = r.upper(10.0, 0.9).unwrap();
        assert!((u - 12.0).abs() < 1e-4, "{u}");
    }

    #[test]
    fn margins_are_per_level() {
        let mut r = GrowthRisk::new(64, 5);
        // Quiet at 10: actual = forecast. Mid-burst at 3000: triples.
        for _ in 0..20 {
            r.record(10.0, 10.0);
            r.record(3000.0, 9000.0);
        }
        assert!((r.upper(10.0, 0.95).unwrap() - 10.0).abs() < 1e-3);
        let burst = r.upper(3000.0, 0.95).unwrap();
        assert!((burst - 9000.0).abs() < 5.0, "{burst}");
        assert!(r.calibrated_at(3000.0) && !r.calibrated_at(300.0));
        assert_eq!(r.upper(300.0, 0.95), None);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut r = GrowthRisk::new(10, 5);
        for _ in 0..10 {
            r.record(10.0, 30.0);
        }
        for _ in 0..10 {
            r.record(10.0, 10.0);
        }
        assert!((r.upper(10.0, 1.0).unwrap() - 10.0).abs() < 1e-3);
    }
}
