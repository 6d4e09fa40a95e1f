//! Sliding-window conformal intervals: the empirical quantiles of a model's most
//! recent signed errors at one horizon step, updated with every observation.
//!
//! Kept as a FIFO plus a sorted copy so a quantile is O(1) and an update is one
//! binary search and a short memmove, cheap enough to run for every candidate
//! model at every step.
//!
//! On top, adaptive conformal inference (Gibbs & Candès, 2021): each tail's
//! quantile level moves after every observation by `rate × (target − missed)`,
//! so when the recent past stops resembling the window (volatility changes) the
//! realised coverage is pulled back to the target instead of drifting.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct ErrorWindow {
    capacity: usize,
    fifo: VecDeque<f64>,
    sorted: Vec<f64>,
    /// Target share of errors below the lower (and above the upper) bound.
    tail: f64,
    /// Adapted quantile levels of the lower and upper bound.
    lower_level: f64,
    upper_level: f64,
    rate: f64,
}

impl ErrorWindow {
    /// A window of `capacity` errors whose bounds aim to leave `tail` of the
    /// errors below the lower bound and `tail` above the upper one; `rate` is the
    /// adaptive step (0 turns adaptation off).
    pub fn new(capacity: usize, tail: f64, rate: f64) -> Self {
        let capacity = capacity.max(1);
        let tail = tail.clamp(0.0, 0.5);
        Self {
            capacity,
            fifo: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
            tail,
            lower_level: tail,
            upper_level: 1.0 - tail,
            rate: rate.max(0.0),
        }
    }

    /// The lower and upper error bounds, `None` when empty.
    pub fn bounds(&self) -> Option<(f64, f64)> {
        Some((
            self.quantile(self.lower_level)?,
            self.quantile(self.upper_level)?,
        ))
    }

    pub fn len(&self) -> usize {
        self.fifo.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty()
    }

    pub fn push(&mut self, error: f64) {
        if !error.is_finite() {
            return;
        }
        if self.rate > 0.0
            && let Some((lo, hi)) = self.bounds()
        {
            let below = f64::from(u8::from(error < lo));
            let above = f64::from(u8::from(error > hi));
            // A miss pushes that bound outwards; a hit lets it creep inwards.
            self.lower_level = (self.lower_level + self.rate * (self.tail - below)).clamp(0.0, 0.5);
            self.upper_level = (self.upper_level - self.rate * (self.tail - above)).clamp(0.5, 1.0);
        }
        // Plain `<` is a total order here: non-finite errors never get in.
        let to = self.sorted.partition_point(|v| *v < error);
        if self.fifo.len() == self.capacity
            && let Some(old) = self.fifo.pop_front()
        {
            // The oldest error leaves and the new one enters in one shift of
            // the values between their places (this runs for every candidate
            // and step at every observation, so the memmove is the cost).
            let from = self.sorted.partition_point(|v| *v < old);
            if from < to {
                self.sorted.copy_within(from + 1..to, from);
                self.sorted[to - 1] = error;
            } else {
                self.sorted.copy_within(to..from, to + 1);
                self.sorted[to] = error;
            }
        } else {
            self.sorted.insert(to, error);
        }
        self.fifo.push_back(error);
    }

    /// The empirical `q` quantile (linear interpolation), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        quantile_sorted(&self.sorted, q)
    }
}

/// Linear-interpolated quantile of ascending-sorted values.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = (pos as usize).min(n - 1); // pos >= 0, so `as` truncates like floor
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_most_recent_errors() {
        let mut w = ErrorWindow::new(3, 0.1, 0.0);
        for e in [10.0, -5.0, 1.0, 2.0, 3.0] {
            w.push(e);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(w.quantile(0.0), Some(1.0));
        assert_eq!(w.quantile(0.5), Some(2.0));
        assert_eq!(w.quantile(1.0), Some(3.0));
    }

    #[test]
    fn the_sorted_copy_is_always_the_window_sorted() {
        let mut w = ErrorWindow::new(17, 0.1, 0.01);
        // Repeats and ties included.
        for i in 0..500u64 {
            let e = ((i * 7919 + i * i * 31) % 23) as f64 - 11.0;
            w.push(e);
            let mut expected: Vec<f64> = w.fifo.iter().copied().collect();
            expected.sort_by(f64::total_cmp);
            assert_eq!(w.sorted, expected, "after {i}");
        }
    }

    #[test]
    fn ignores_non_finite_errors() {
        let mut w = ErrorWindow::new(3, 0.1, 0.0);
        w.push(f64::NAN);
        w.push(f64::INFINITY);
        assert!(w.is_empty());
        assert_eq!(w.quantile(0.5), None);
    }

    #[test]
    fn adapts_when_the_errors_widen() {
        // Calibrated on small errors, then the errors double: a fixed window would
        // under-cover until it refilled; the adaptive bounds react at once.
        let mut adaptive = ErrorWindow::new(400, 0.1, 0.02);
        let mut fixed = ErrorWindow::new(400, 0.1, 0.0);
        let pattern = |i: usize| ((i * 37) % 101) as f64 / 100.0 - 0.5;
        for i in 0..400 {
            adaptive.push(pattern(i));
            fixed.push(pattern(i));
        }
        let (mut hit_a, mut hit_f) = (0, 0);
        for i in 0..200 {
            let e = 2.0 * pattern(i + 7);
            let (lo, hi) = adaptive.bounds().unwrap();
            hit_a += usize::from(lo <= e && e <= hi);
            let (lo, hi) = fixed.bounds().unwrap();
            hit_f += usize::from(lo <= e && e <= hi);
            adaptive.push(e);
            fixed.push(e);
        }
        assert!(hit_a > hit_f, "adaptive {hit_a} vs fixed {hit_f}");
    }

    #[test]
    fn interpolates_between_ranks() {
        assert_eq!(quantile_sorted(&[0.0, 10.0], 0.25), Some(2.5));
        assert_eq!(quantile_sorted(&[], 0.5), None);
    }
}
