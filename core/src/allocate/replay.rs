//! Replaying a demand series against a scaling policy: which capacity would
//! have been in force at every row. Scale-ups decided at row `t` arrive at row
//! `t + delay` (instances take time to boot); scale-downs apply at once. A
//! policy is asked once per row, after that row's demand is known, and sees
//! nothing later.

use std::collections::VecDeque;

/// A policy under replay: given the demand just observed (`None` for a gap)
/// and the fleet, the number of instances it wants.
pub trait ScalePolicy {
    fn decide(&mut self, demand: Option<f64>, fleet: Fleet) -> u32;
}

/// The fleet at a decision: instances serving now, and instances commanded
/// (serving plus still booting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    pub in_force: u32,
    pub commanded: u32,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("the series has no non-zero value to scale by")]
    NoScale,
    #[error("--median-units must be a positive number, got {0}")]
    BadUnits(f64),
}

/// Scales a series so that the median of its non-zero values is `units`
/// instance units. Gaps stay gaps.
pub fn scale_demand(values: &[Option<f64>], units: f64) -> Result<Vec<Option<f64>>, ReplayError> {
    if !(units.is_finite() && units > 0.0) {
        return Err(ReplayError::BadUnits(units));
    }
    let mut nonzero: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite() && *v != 0.0)
        .collect();
    if nonzero.is_empty() {
        return Err(ReplayError::NoScale);
    }
    nonzero.sort_by(f64::total_cmp);
    let n = nonzero.len();
    let median = if n % 2 == 1 {
        nonzero[n / 2]
    } else {
        (nonzero[n / 2 - 1] + nonzero[n / 2]) / 2.0
    };
    if median <= 0.0 {
        return Err(ReplayError::NoScale);
    }
    Ok(values
        .iter()
        .map(|v| v.filter(|x| x.is_finite()).map(|x| x * units / median))
        .collect())
}

/// Capacity in force at every row of `demand` under `policy`, starting from
/// `initial` instances.
pub fn simulate(
    demand: &[Option<f64>],
    delay: usize,
    initial: u32,
    policy: &mut dyn ScalePolicy,
) -> Vec<u32> {
    let mut in_force = initial;
    // (arrival row, instances) of scale-ups still booting, oldest first.
    let mut booting: VecDeque<(usize, u32)> = VecDeque::new();
    let mut out = Vec::with_capacity(demand.len());
    for (t, d) in demand.iter().enumerate() {
        while booting.front().is_some_and(|(row, _)| *row <= t) {
            in_force += booting.pop_front().map_or(0, |(_, n)| n);
        }
        let commanded = in_force + booting.iter().map(|(_, n)| n).sum::<u32>();
        let wanted = policy.decide(
            *d,
            Fleet {
                in_force,
                commanded,
            },
        );
        if wanted > commanded {
            let add = wanted - commanded;
            if delay == 0 {
                in_force += add;
            } else {
                booting.push_back((t + delay, add));
            }
        } else if wanted < commanded {
            // Instances not yet booted are cancelled first, newest first.
            let mut cut = commanded - wanted;
            while cut > 0 {
                match booting.back_mut() {
                    Some((_, n)) if *n > cut => {
                        *n -= cut;
                        cut = 0;
                    }
                    Some((_, n)) => {
                        cut -= *n;
                        booting.pop_back();
                    }
                    None => {
                        in_force -= cut;
                        cut = 0;
                    }
                }
            }
        }
        out.push(in_force);
    }
    out
}

/// What a replay cost and how often demand went unserved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplaySummary {
    pub rows: usize,
    /// Rows where demand exceeded the capacity in force.
    pub under_rows: usize,
    /// Demand above capacity, summed over rows (instance-rows unserved).
    pub unserved: f64,
    /// Capacity summed over rows (instance-rows paid for).
    pub cost: u64,
}

pub fn summarise(demand: &[Option<f64>], capacity: &[u32]) -> ReplaySummary {
    let mut s = ReplaySummary {
        rows: demand.len(),
        under_rows: 0,
        unserved: 0.0,
        cost: 0,
    };
    for (d, c) in demand.iter().zip(capacity) {
        s.cost += u64::from(*c);
        if let Some(d) = d
            && *d > f64::from(*c)
        {
            s.under_rows += 1;
            s.unserved += d - f64::from(*c);
        }
    }
    s
}

/// Never scales down: sized for the highest demand seen so far at the target
/// utilisation, the way a fleet provisioned for its peak is run.
#[derive(Debug, Clone)]
pub struct PeakStatic {
    pub target: f64,
}

impl ScalePolicy for PeakStatic {
    fn decide(&mut self, demand: Option<f64>, fleet: Fleet) -> u32 {
        let need = demand.map_or(0, |d| instances_for(d / self.target));
        need.max(fleet.commanded).max(1)
    }
}

/// Whole instances needed for `units` of load (at 100 % utilisation).
pub fn instances_for(units: f64) -> u32 {
    if !units.is_finite() || units <= 0.0 {
        return 0;
    }
    // Guards float noise (0.7 / 0.7 * 3 = 3.0000000000000004, and margins
    // kept as f32): a millionth of an instance is not another instance.
    let r = units.round();
    if (units - r).abs() < 1e-6 * units.max(1.0) {
        return r.min(f64::from(u32::MAX)) as u32;
    }
    units.ceil().min(f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Script(Vec<u32>, usize);
    impl ScalePolicy for Script {
        fn decide(&mut self, _: Option<f64>, _: Fleet) -> u32 {
            self.1 += 1;
            self.0[self.1 - 1]
        }
    }

    #[test]
    fn scale_ups_arrive_after_the_delay_and_scale_downs_at_once() {
        let demand = vec![Some(1.0); 6];
        let mut p = Script(vec![1, 4, 4, 2, 6, 6], 0);
        assert_eq!(simulate(&demand, 2, 1, &mut p), vec![1, 1, 1, 2, 2, 2]);
        // Row 1 asks for 4 (arrives row 3); row 3 cuts to 2 immediately; row 4
        // asks for 6 (arrives row 6, past the end).
        let mut p = Script(vec![1, 4, 4, 2, 6, 6], 0);
        assert_eq!(simulate(&demand, 0, 1, &mut p), vec![1, 4, 4, 2, 6, 6]);
    }

    #[test]
    fn cancelling_a_booting_scale_up_does_not_touch_serving_instances() {
        let demand = vec![Some(1.0); 4];
        // 2 serving; ask 5 (3 booting, due row 3); at row 1 ask 3: 2 of the
        // booting are cancelled, 2 still serve, 1 arrives at row 3.
        let mut p = Script(vec![5, 3, 3, 3], 0);
        assert_eq!(simulate(&demand, 3, 2, &mut p), vec![2, 2, 2, 3]);
    }

    #[test]
    fn demand_is_scaled_to_the_median_of_non_zero_values() {
        let v = vec![Some(0.0), Some(2.0), None, Some(4.0), Some(6.0)];
        let s = scale_demand(&v, 10.0).unwrap();
        assert_eq!(s, vec![Some(0.0), Some(5.0), None, Some(10.0), Some(15.0)]);
        assert_eq!(scale_demand(&[Some(0.0)], 10.0), Err(ReplayError::NoScale));
        assert_eq!(scale_demand(&v, 0.0), Err(ReplayError::BadUnits(0.0)));
    }

    #[test]
    fn summary_counts_rows_where_demand_exceeds_capacity() {
        let d = vec![Some(1.0), Some(3.5), None, Some(2.0)];
        let s = summarise(&d, &[2, 3, 1, 2]);
        assert_eq!((s.under_rows, s.cost), (1, 8));
        assert!((s.unserved - 0.5).abs() < 1e-12);
    }

    #[test]
    fn peak_static_never_scales_down() {
        let d = vec![Some(1.0), Some(7.0), Some(1.0), Some(1.0)];
        let cap = simulate(&d, 1, 1, &mut PeakStatic { target: 1.0 });
        assert_eq!(cap, vec![1, 1, 7, 7]);
    }

    #[test]
    fn instances_round_up_but_ignore_float_noise() {
        assert_eq!(instances_for(3.0000000000000004), 3);
        assert_eq!(instances_for(3.01), 4);
        assert_eq!(instances_for(-1.0), 0);
        assert_eq!(instances_for(f64::NAN), 0);
    }
}
