//! The Kubernetes Horizontal Pod Autoscaler's algorithm, the reactive baseline
//! users run today: `desired = ceil(current × utilisation / target)`, nothing
//! done while the ratio is within the tolerance of 1, and a scale-down only to
//! the highest recommendation of the stabilisation window.

use std::collections::VecDeque;

use super::replay::{Fleet, ScalePolicy, instances_for};

#[derive(Debug, Clone, PartialEq)]
pub struct HpaConfig {
    /// Target utilisation per instance (0 < target ≤ 1 for headroom).
    pub target: f64,
    /// Kubernetes' default 0.1.
    pub tolerance: f64,
    /// Earlier decisions inside the scale-down stabilisation window (Kubernetes
    /// defaults to 300 s: one earlier 5-minute row).
    pub stabilisation_rows: usize,
    pub min: u32,
    pub max: u32,
}

impl HpaConfig {
    pub fn new(target: f64, stabilisation_secs: u64, step_secs: u64) -> Self {
        Self {
            target,
            tolerance: 0.1,
            stabilisation_rows: stabilisation_secs.div_ceil(step_secs.max(1)) as usize,
            min: 1,
            max: u32::MAX,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hpa {
    cfg: HpaConfig,
    recent: VecDeque<u32>,
}

impl Hpa {
    pub fn new(cfg: HpaConfig) -> Self {
        Self {
            cfg,
            recent: VecDeque::new(),
        }
    }

    /// The recommendation before stabilisation.
    fn raw(&self, demand: f64, fleet: Fleet) -> u32 {
        let current = fleet.in_force;
        if current == 0 {
            // Nothing serving: size for the demand directly.
            return instances_for(demand / self.cfg.target);
        }
        let ratio = demand / f64::from(current) / self.cfg.target;
        if (ratio - 1.0).abs() <= self.cfg.tolerance {
            return fleet.commanded;
        }
        instances_for(f64::from(current) * ratio)
    }
}

impl ScalePolicy for Hpa {
    fn decide(&mut self, demand: Option<f64>, fleet: Fleet) -> u32 {
        // No metric, no change (the HPA skips a cycle it cannot measure).
        let Some(demand) = demand else {
            return fleet.commanded;
        };
        let desired = self.raw(demand, fleet).clamp(self.cfg.min, self.cfg.max);
        self.recent.push_back(desired);
        while self.recent.len() > self.cfg.stabilisation_rows + 1 {
            self.recent.pop_front();
        }
        if desired >= fleet.commanded {
            return desired;
        }
        let held = self.recent.iter().copied().max().unwrap_or(desired);
        held.min(fleet.commanded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocate::replay::simulate;

    fn fleet(n: u32) -> Fleet {
        Fleet {
            in_force: n,
            commanded: n,
        }
    }

    #[test]
    fn scales_to_demand_over_target() {
        let mut h = Hpa::new(HpaConfig::new(0.5, 0, 300));
        assert_eq!(h.decide(Some(6.0), fleet(4)), 12);
    }

    #[test]
    fn holds_inside_the_tolerance() {
        let mut h = Hpa::new(HpaConfig::new(0.5, 0, 300));
        // utilisation 2.1/4 = 0.525: ratio 1.05, within 0.1.
        assert_eq!(h.decide(Some(2.1), fleet(4)), 4);
        assert_eq!(h.decide(Some(2.5), fleet(4)), 5);
    }

    #[test]
    fn scale_down_waits_for_the_stabilisation_window() {
        let mut h = Hpa::new(HpaConfig::new(1.0, 600, 300));
        let demand: Vec<_> = [10.0, 2.0, 2.0, 2.0].map(Some).to_vec();
        // Window of two earlier rows: the 10 is remembered for two more rows.
        assert_eq!(simulate(&demand, 1, 10, &mut h), vec![10, 10, 10, 2]);
    }

    #[test]
    fn a_gap_changes_nothing() {
        let mut h = Hpa::new(HpaConfig::new(0.7, 300, 300));
        assert_eq!(h.decide(None, fleet(3)), 3);
    }
}
