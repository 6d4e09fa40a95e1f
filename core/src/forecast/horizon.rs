//! The horizons the product forecasts at, and turning stored rollup buckets
//! into the regular series the engine consumes.

use serde::{Deserialize, Serialize};

use super::engine::{EngineConfig, Family};
use crate::telemetry::{Bucket, Resolution, regroup};

/// Version of the statistical engine recorded with every stored forecast, so a
/// forecast can be traced to the code and settings that made it. Bump it when
/// candidates or their settings change.
pub const STATISTICAL_VERSION: &str = "statistical-2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Horizon {
    /// The next hour in 5-minute steps: what the allocation controller acts on.
    Allocation,
    /// The next 7 days in hourly steps: capacity and invoice projections.
    Planning,
}

impl Horizon {
    pub const ALL: [Horizon; 2] = [Horizon::Allocation, Horizon::Planning];

    pub fn as_str(self) -> &'static str {
        match self {
            Horizon::Allocation => "allocation",
            Horizon::Planning => "planning",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == raw)
    }

    pub fn step_secs(self) -> u64 {
        match self {
            Horizon::Allocation => 300,
            Horizon::Planning => 3600,
        }
    }

    pub fn steps(self) -> usize {
        match self {
            Horizon::Allocation => 12,
            Horizon::Planning => 168,
        }
    }

    /// History fed to the engine: enough for daily (allocation) and weekly
    /// (planning) seasons to be seen twice.
    pub fn history_ms(self) -> i64 {
        let day = 86_400_000;
        match self {
            Horizon::Allocation => 3 * day,
            Horizon::Planning => 15 * day,
        }
    }

    /// The stored rollup resolution this horizon is built from.
    pub fn source(self) -> Resolution {
        match self {
            Horizon::Allocation => Resolution::Minute,
            Horizon::Planning => Resolution::Hour,
        }
    }

    pub fn engine(self) -> EngineConfig {
        let mut cfg = EngineConfig::for_step(self.steps(), self.step_secs(), Family::Auto);
        if self == Horizon::Planning {
            // Hourly data: a day is 24 steps, so a shorter calibration window
            // still spans two weeks of errors.
            cfg.calibration_window = 336;
            cfg.score_half_life = 168.0;
        }
        cfg
    }
}

/// A regular series on a step grid: `values[i]` is the mean of the bucket
/// starting at `start_ms + i × step_ms`, `None` where nothing was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub start_ms: i64,
    pub step_ms: i64,
    pub values: Vec<Option<f64>>,
}

impl Grid {
    /// Start of the last bucket: the forecast origin.
    pub fn last_start_ms(&self) -> Option<i64> {
        (!self.values.is_empty())
            .then(|| self.start_ms + (self.values.len() as i64 - 1) * self.step_ms)
    }
}

/// Regroups stored buckets onto a grid aligned to `step_ms` (epoch-aligned),
/// keeping only whole steps that ended by `now_ms`: a step still filling would
/// read as a drop in demand.
pub fn grid_from_buckets(buckets: &[Bucket], step_ms: i64, now_ms: i64) -> Grid {
    let step_ms = step_ms.max(1);
    let grouped = regroup(buckets, 0, step_ms);
    let complete: Vec<&Bucket> = grouped
        .iter()
        .filter(|b| b.start_ms + step_ms <= now_ms && b.count > 0)
        .collect();
    let (Some(first), Some(last)) = (complete.first(), complete.last()) else {
        return Grid {
            start_ms: 0,
            step_ms,
            values: Vec::new(),
        };
    };
    let len = ((last.start_ms - first.start_ms) / step_ms + 1) as usize;
    let mut values = vec![None; len];
    for b in &complete {
        values[((b.start_ms - first.start_ms) / step_ms) as usize] = Some(b.mean());
    }
    Grid {
        start_ms: first.start_ms,
        step_ms,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start_ms: i64, value: f64) -> Bucket {
        Bucket::single(start_ms, start_ms, value)
    }

    #[test]
    fn regroups_minutes_into_five_minute_steps_with_gaps() {
        let m = 60_000;
        let buckets = vec![
            bucket(0, 1.0),
            bucket(m, 3.0),
            // 5..10 minutes: nothing
            bucket(10 * m, 7.0),
            bucket(15 * m, 9.0), // still filling at now = 17 minutes
        ];
        let g = grid_from_buckets(&buckets, 5 * m, 17 * m);
        assert_eq!(g.start_ms, 0);
        assert_eq!(g.values, vec![Some(2.0), None, Some(7.0)]);
        assert_eq!(g.last_start_ms(), Some(10 * m));
        assert!(grid_from_buckets(&[], 5 * m, 17 * m).values.is_empty());
    }

    #[test]
    fn horizons_round_trip_their_names() {
        for h in Horizon::ALL {
            assert_eq!(Horizon::parse(h.as_str()), Some(h));
            assert_eq!(h.engine().horizon, h.steps());
        }
        assert_eq!(Horizon::parse("weekly"), None);
    }
}
