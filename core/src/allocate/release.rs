//! Whether scaling down has been safe for a workload. Hysteresis holds
//! capacity after demand falls in case the fall does not last; where the
//! scale-downs the policy wanted have, as measured, held, it is relaxed, so
//! a workload whose forecasts call its falls right does not pay for capacity
//! it was right to release.
//!
//! A wanted scale-down is judged by the rows it would have served alone: a
//! cut applies at once, and capacity commanded again arrives only after the
//! provisioning delay, so it would have failed if demand came above it within
//! that many rows. Demand does not depend on the fleet, so the outcome is the
//! same whether the capacity was released or held.

use std::collections::VecDeque;

/// Outcomes remembered (the newest, one bit each).
const WINDOW: u32 = u64::BITS;
/// Wanted scale-downs awaiting demand at most (gaps in the demand leave them
/// unresolved; the oldest go first).
const PENDING_MAX: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseRecord {
    /// Wanted scale-downs awaiting demand: (capacity released to, rows left).
    pending: VecDeque<(u32, u8)>,
    /// Outcomes, newest in bit 0: 1 where demand came above the capacity.
    outcomes: u64,
    /// Outcomes recorded, at most [`WINDOW`].
    recorded: u8,
}

impl ReleaseRecord {
    /// Demand measured at a new row: scores the wanted scale-downs it falls
    /// within.
    pub fn observe(&mut self, demand: f64) {
        if !demand.is_finite() {
            return;
        }
        let (outcomes, recorded) = (&mut self.outcomes, &mut self.recorded);
        let mut record = |failed: bool| {
            *outcomes = (*outcomes << 1) | u64::from(failed);
            *recorded = (u32::from(*recorded) + 1).min(WINDOW) as u8;
        };
        // Runs per workload every tick: outcomes are recorded in place.
        self.pending.retain_mut(|(capacity, left)| {
            if demand > f64::from(*capacity) {
                record(true);
                return false;
            }
            *left = left.saturating_sub(1);
            if *left == 0 {
                record(false);
            }
            *left > 0
        });
    }

    /// A scale-down to `capacity` was wanted; it would have served the next
    /// `rows` rows alone.
    pub fn wanted(&mut self, capacity: u32, rows: usize) {
        if self.pending.len() == PENDING_MAX {
            self.pending.pop_front();
        }
        let rows = u8::try_from(rows.max(1)).unwrap_or(u8::MAX);
        self.pending.push_back((capacity, rows));
    }

    /// (outcomes recorded, of which failed).
    pub fn measured(&self) -> (u32, u32) {
        let n = u32::from(self.recorded);
        let mask = if n >= WINDOW {
            u64::MAX
        } else {
            (1u64 << n) - 1
        };
        (n, (self.outcomes & mask).count_ones())
    }

    /// At least `min_samples` outcomes, and at most `miss_rate` of them failed.
    pub fn proven(&self, min_samples: usize, miss_rate: f64) -> bool {
        let (n, failed) = self.measured();
        n as usize >= min_samples.max(1) && f64::from(failed) <= miss_rate * f64::from(n)
    }

    /// Drops the scale-downs awaiting demand (a state that missed ticks would
    /// score them against later rows); the outcomes stay.
    pub fn forget_pending(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_down_fails_when_demand_comes_above_it_within_its_rows() {
        let mut r = ReleaseRecord::default();
        r.wanted(10, 2);
        r.observe(9.0);
        assert_eq!(r.measured(), (0, 0), "one row of two still to come");
        r.observe(10.5);
        assert_eq!(r.measured(), (1, 1));
        r.wanted(10, 2);
        r.observe(10.0);
        r.observe(3.0);
        assert_eq!(r.measured(), (2, 1), "held for both rows");
        r.observe(50.0);
        assert_eq!(r.measured(), (2, 1), "rows after its own do not count");
    }

    #[test]
    fn proven_needs_enough_outcomes_with_few_failures() {
        let mut r = ReleaseRecord::default();
        for _ in 0..19 {
            r.wanted(10, 1);
            r.observe(5.0);
        }
        assert!(!r.proven(20, 0.05), "19 outcomes");
        r.wanted(10, 1);
        r.observe(5.0);
        assert!(r.proven(20, 0.05));
        r.wanted(10, 1);
        r.observe(11.0);
        assert!(r.proven(20, 0.05), "1 of 21 failed");
        r.wanted(10, 1);
        r.observe(11.0);
        assert!(!r.proven(20, 0.05), "2 of 22 failed");
    }

    #[test]
    fn only_the_newest_outcomes_count() {
        let mut r = ReleaseRecord::default();
        for _ in 0..10 {
            r.wanted(10, 1);
            r.observe(11.0);
        }
        for _ in 0..WINDOW {
            r.wanted(10, 1);
            r.observe(1.0);
        }
        assert_eq!(r.measured(), (WINDOW, 0));
        assert!(r.proven(20, 0.0));
    }

    #[test]
    fn gaps_neither_score_nor_grow_it_without_bound() {
        let mut r = ReleaseRecord::default();
        for _ in 0..100 {
            r.wanted(10, 1);
            r.observe(f64::NAN);
        }
        assert_eq!(r.pending.len(), PENDING_MAX);
        assert_eq!(r.measured(), (0, 0));
        r.forget_pending();
        r.observe(50.0);
        assert_eq!(r.measured(), (0, 0));
    }
}
