//! How far demand may rise above its forecast, measured per demand level.
//!
//! Scaling errors are multiplicative (a burst multiplies load) and depend on
//! the level: a quiet series at 10 units rarely moves, the same series halfway
//! into a burst is about to triple. So the ratio `(actual + 1) / (forecast + 1)`
//! is recorded in a bin of the forecast's log-level, and the upper quantile of
//! the forecast's bin (Mondrian conformal prediction) sizes the margin. The +1
//! (one instance unit) keeps idle periods from producing infinite ratios.

use std::borrow::Cow;
use std::collections::VecDeque;

/// Bin width in natural-log units: a factor of e^0.5 ≈ 1.65 per bin.
const BIN_WIDTH: f64 = 0.5;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GrowthRisk {
    /// Log-ratios kept per bin, newest last (f32: the state is persisted per
    /// workload and the precision needed is far coarser).
    bins: Vec<(i32, VecDeque<f32>)>,
    capacity: usize,
    min_samples: usize,
    /// Each bin's window in ascending order (same order as `bins`), kept as
    /// outcomes are recorded, so that a decision reads a margin without
    /// sorting hundreds of outcomes (which was most of the policy's time).
    /// Not stored: a decoded state has none and sorts on demand until its
    /// next outcome rebuilds it.
    #[serde(skip)]
    sorted: Vec<Vec<f32>>,
}

/// Two risks are the same when they hold the same outcomes (whether the
/// sorted copy has been rebuilt since decoding does not matter).
impl PartialEq for GrowthRisk {
    fn eq(&self, other: &Self) -> bool {
        self.bins == other.bins
            && self.capacity == other.capacity
            && self.min_samples == other.min_samples
    }
}

impl GrowthRisk {
    pub fn new(capacity: usize, min_samples: usize) -> Self {
        Self {
            bins: Vec::new(),
            capacity: capacity.max(1),
            min_samples: min_samples.max(1),
            sorted: Vec::new(),
        }
    }

    /// Whether `sorted` mirrors `bins` (false after decoding).
    fn in_order(&self) -> bool {
        self.sorted.len() == self.bins.len()
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
        if !self.in_order() {
            self.sorted = self.bins.iter().map(|(_, w)| sorted(w)).collect();
        }
        let r = ((actual.max(0.0) + 1.0) / (forecast.max(0.0) + 1.0)).ln() as f32;
        let b = Self::bin(forecast);
        let i = match self.bins.iter().position(|(k, _)| *k == b) {
            Some(i) => i,
            None => {
                self.bins.push((b, VecDeque::new()));
                self.sorted.push(Vec::new());
                self.bins.len() - 1
            }
        };
        let (window, order) = (&mut self.bins[i].1, &mut self.sorted[i]);
        if window.len() == self.capacity
            && let Some(old) = window.pop_front()
            && let Ok(at) = order.binary_search_by(|x| x.total_cmp(&old))
        {
            order.remove(at);
        }
        window.push_back(r);
        let at = order.partition_point(|x| x.total_cmp(&r).is_lt());
        order.insert(at, r);
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
    fn sorted_at(&self, forecast: f64) -> Option<Cow<'_, [f32]>> {
        let b = Self::bin(forecast);
        let i = self
            .bins
            .iter()
            .position(|(k, w)| *k == b && w.len() >= self.min_samples)?;
        Some(if self.in_order() {
            Cow::Borrowed(&self.sorted[i])
        } else {
            Cow::Owned(sorted(&self.bins[i].1))
        })
    }

    /// The demand to size for that minimises expected cost: instances paid
    /// for (`sized / target`) plus `miss_cost` instance-steps times the chance
    /// demand exceeds it, over this level's outcomes. Where the level's tail
    /// is wide (a burst that may go ×10), covering it costs more than the miss
    /// and the tail is left uncovered; where it is narrow, it is covered.
    pub fn economic(&self, forecast: f64, miss_cost: f64, target: f64) -> Option<f64> {
        let sorted = self.sorted_at(forecast)?;
        let base = forecast.max(0.0) + 1.0;
        // Outcome `i` (ascending) as demand, and what sizing for it costs.
        let n = sorted.len();
        let at = |i: usize| {
            let demand = (base * f64::from(sorted[i]).exp() - 1.0).max(0.0);
            let above = (n - 1 - i) as f64 / n as f64;
            (
                demand / target + miss_cost * above,
                demand,
                miss_cost * above,
            )
        };
        if !(base.is_finite() && miss_cost >= 0.0 && target > 0.0) {
            // The first of the cheapest, every outcome weighed.
            let mut best: Option<(f64, f64)> = None;
            for i in 0..n {
                let (cost, demand, _) = at(i);
                if best.is_none_or(|(c, _)| cost < c) {
                    best = Some((cost, demand));
                }
            }
            return best.map(|(_, d)| d);
        }
        // The same choice from the top down: a lower outcome costs at least
        // its miss term (its demand is not negative), which only grows going
        // down, so once that alone exceeds the best cost none below can
        // win. The best is usually near the top, so few outcomes are weighed
        // instead of every one (`<=`: the lowest of equal costs, as above).
        let mut best: Option<(f64, f64)> = None;
        for i in (0..n).rev() {
            let (cost, demand, missing) = at(i);
            if best.is_some_and(|(c, _)| missing > c) {
                break;
            }
            if best.is_none_or(|(c, _)| cost <= c) {
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

fn sorted(window: &VecDeque<f32>) -> Vec<f32> {
    let mut out: Vec<f32> = window.iter().copied().collect();
    out.sort_by(f32::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The kept order gives what sorting the window gives, through
        /// evictions, equal outcomes and a round trip through storage.
        #[test]
        fn kept_order_matches_a_fresh_sort(
            outcomes in prop::collection::vec((0.0f64..50.0, 0.0f64..200.0), 0..300),
            capacity in 1usize..40,
            split in 0usize..300,
        ) {
            let mut kept = GrowthRisk::new(capacity, 1);
            for (i, (f, a)) in outcomes.iter().enumerate() {
                if i == split {
                    // As a stored state comes back: no kept order.
                    let json = serde_json::to_string(&kept).unwrap();
                    kept = serde_json::from_str(&json).unwrap();
                    prop_assert!(kept.sorted.is_empty());
                }
                kept.record(*f, (*a).round());
            }
            let json = serde_json::to_string(&kept).unwrap();
            let decoded: GrowthRisk = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&decoded, &kept);
            for (f, _) in &outcomes {
                let fresh = kept.bins.iter().find(|(k, _)| *k == GrowthRisk::bin(*f))
                    .map(|(_, w)| sorted(w));
                let got = kept.sorted_at(*f).map(|c| c.into_owned());
                prop_assert_eq!(got, fresh);
                // The margins read from the kept order and from a sort agree.
                prop_assert_eq!(kept.economic(*f, 5.0, 0.7), decoded.economic(*f, 5.0, 0.7));
                prop_assert_eq!(kept.upper(*f, 0.9), decoded.upper(*f, 0.9));
            }
        }

        /// Weighing outcomes from the top down and stopping early chooses
        /// what weighing every one chooses.
        #[test]
        fn economic_matches_weighing_every_outcome(
            outcomes in prop::collection::vec((0.0f64..50.0, 0.0f64..200.0), 1..300),
            capacity in 1usize..300,
            miss_cost in prop_oneof![Just(0.0), 0.0f64..2000.0],
            target in 0.05f64..1.0,
        ) {
            let mut kept = GrowthRisk::new(capacity, 1);
            for (f, a) in &outcomes {
                kept.record(*f, (*a).round());
            }
            for (f, _) in &outcomes {
                let every = kept.sorted_at(*f).and_then(|sorted| {
                    let n = sorted.len() as f64;
                    let base = f.max(0.0) + 1.0;
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
                });
                prop_assert_eq!(kept.economic(*f, miss_cost, target), every);
            }
        }
    }

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
