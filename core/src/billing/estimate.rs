//! The projected invoice: the period so far, rated exactly, plus the rest of
//! the period projected from each series' recent hours, rated with the rules
//! that will be in force, as a low / expected / high interval.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::{Deserialize, Serialize};

use super::dimension::Dimension;
use super::money::Currency;
use super::period::{HOUR_MS, Period, hour_floor};
use super::rating::{CapacityHour, RatingInput, Statement, UsageHour, rate};
use super::rules::RuleBook;

/// One series' quantity per future hour, three ways.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub low: f64,
    pub mid: f64,
    pub high: f64,
}

impl Projection {
    /// From a series' recent hourly quantities: the mean per hour, with a band
    /// that makes the *sum* over `hours` future hours a `z`-sigma interval if
    /// hours were independent (they are not quite; the band is a floor).
    pub fn from_history(history: &[f64], hours: i64, z: f64) -> Projection {
        let n = history.len() as f64;
        if history.is_empty() || hours <= 0 {
            return Projection {
                low: 0.0,
                mid: 0.0,
                high: 0.0,
            };
        }
        let mean = history.iter().sum::<f64>() / n;
        let var = history.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let half = z * var.sqrt() / (hours as f64).sqrt();
        Projection {
            low: (mean - half).max(0.0),
            mid: mean,
            high: mean + half,
        }
    }
}

/// The fleet a controlled workload will need per hour, from an hourly
/// forecast of its demand: each quantile ÷ (units per instance × target
/// utilisation), rounded up to whole instances and kept within the bounds.
/// Step `i` starts at `origin_ms + (i + 1) × step_ms`.
pub fn fleet_from_forecast(
    steps: &[crate::forecast::Step],
    origin_ms: i64,
    step_ms: i64,
    units_per_instance: f64,
    target: f64,
    bounds: (u32, u32),
) -> BTreeMap<i64, Projection> {
    let per = units_per_instance * target;
    if step_ms != HOUR_MS || per <= 0.0 || !per.is_finite() {
        return BTreeMap::new();
    }
    let fleet = |demand: f64| {
        (demand.max(0.0) / per)
            .ceil()
            .clamp(f64::from(bounds.0), f64::from(bounds.1))
    };
    steps
        .iter()
        .enumerate()
        .map(|(i, st)| {
            (
                origin_ms + (i as i64 + 1) * step_ms,
                Projection {
                    low: fleet(st.p10),
                    mid: fleet(st.p50),
                    high: fleet(st.p90),
                },
            )
        })
        .collect()
}

/// What is projected for the rest of the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Series {
    /// Instances in force for a workload: `by_hour` where a forecast reaches,
    /// `instances` for the other hours.
    Capacity {
        workload: String,
        instances: Projection,
        by_hour: BTreeMap<i64, Projection>,
    },
    Usage {
        dimension: Dimension,
        per_hour: Projection,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstimateLine {
    pub dimension: Dimension,
    pub actual: Decimal,
    pub low: Decimal,
    pub expected: Decimal,
    pub high: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub currency: Currency,
    pub period: Period,
    pub as_of_ms: i64,
    pub actual: Decimal,
    pub low: Decimal,
    pub expected: Decimal,
    pub high: Decimal,
    pub lines: Vec<EstimateLine>,
}

fn dec(x: f64) -> Decimal {
    Decimal::from_f64(x).unwrap_or_default().round_dp(9)
}

/// The rest of the period, `[now_ms, period end)`, as a rating input, each
/// series at the quantity `pick` takes from its projection (the hour in
/// progress only for its remaining share). Platform load and profile
/// currency stay as last seen; no missed capacity is assumed.
fn future(
    base: &RatingInput,
    now_ms: i64,
    series: &[Series],
    pick: fn(&Projection) -> f64,
) -> RatingInput {
    let from_hour = hour_floor(now_ms);
    let hours: Vec<i64> = (from_hour..base.period.end_ms)
        .step_by(HOUR_MS as usize)
        .collect();
    let share = |h: i64| {
        if h == from_hour {
            Decimal::from(h + HOUR_MS - now_ms) / Decimal::from(HOUR_MS)
        } else {
            Decimal::ONE
        }
    };
    let load = base.platform_load.values().next_back().copied();
    let profile = base
        .profile_current
        .iter()
        .next_back()
        .is_some_and(|&h| h + HOUR_MS >= from_hour);
    let mut capacity = Vec::new();
    let mut usage = Vec::new();
    for s in series {
        for &h in &hours {
            match s {
                Series::Capacity {
                    workload,
                    instances,
                    by_hour,
                } => capacity.push(CapacityHour {
                    hour_ms: h,
                    workload: workload.clone(),
                    instance_ms: dec(pick(by_hour.get(&h).unwrap_or(instances)))
                        * Decimal::from(HOUR_MS)
                        * share(h),
                    missed_ms: 0,
                }),
                Series::Usage {
                    dimension,
                    per_hour,
                } => usage.push(UsageHour {
                    hour_ms: h,
                    dimension: dimension.clone(),
                    quantity: dec(pick(per_hour)) * share(h),
                }),
            }
        }
    }
    RatingInput {
        customer: base.customer.clone(),
        period: Period {
            start_ms: from_hour.max(base.period.start_ms),
            end_ms: base.period.end_ms,
        },
        usage,
        capacity,
        vcpus_per_instance: base.vcpus_per_instance,
        platform_load: load
            .map(|l| hours.iter().map(|&h| (h, l)).collect())
            .unwrap_or_default(),
        profile_current: if profile {
            hours.iter().copied().collect()
        } else {
            BTreeSet::new()
        },
    }
}

fn line(lines: &mut BTreeMap<Dimension, EstimateLine>, d: Dimension) -> &mut EstimateLine {
    lines.entry(d.clone()).or_insert_with(|| EstimateLine {
        dimension: d,
        actual: Decimal::ZERO,
        low: Decimal::ZERO,
        expected: Decimal::ZERO,
        high: Decimal::ZERO,
    })
}

/// `so_far` holds what is stored up to `now_ms`; the rest of the period is projected.
pub fn estimate(book: &RuleBook, so_far: &RatingInput, now_ms: i64, series: &[Series]) -> Estimate {
    let actual = rate(book, so_far);
    let [low, mid, high]: [Statement; 3] = [
        |p: &Projection| p.low,
        |p: &Projection| p.mid,
        |p: &Projection| p.high,
    ]
    .map(|pick| rate(book, &future(so_far, now_ms, series, pick)));
    let mut lines: BTreeMap<Dimension, EstimateLine> = BTreeMap::new();
    // The actual part belongs to all three scenarios.
    for (d, a) in actual.by_dimension() {
        let l = line(&mut lines, d);
        l.actual += a;
        l.low += a;
        l.expected += a;
        l.high += a;
    }
    for (d, a) in low.by_dimension() {
        line(&mut lines, d).low += a;
    }
    for (d, a) in mid.by_dimension() {
        line(&mut lines, d).expected += a;
    }
    for (d, a) in high.by_dimension() {
        line(&mut lines, d).high += a;
    }
    Estimate {
        currency: so_far.customer.currency,
        period: so_far.period,
        as_of_ms: now_ms,
        actual: actual.total,
        low: actual.total + low.total,
        expected: actual.total + mid.total,
        high: actual.total + high.total,
        lines: lines.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::rules::Scope;
    use crate::billing::rules::tests::{acme, d, price, rule};

    #[test]
    fn forecasts_become_whole_fleets_within_bounds() {
        use crate::forecast::Step;
        let steps = [
            Step::ordered(50.0, 150.0, 700.0),
            Step::ordered(0.0, 0.0, 0.0),
        ];
        let f = fleet_from_forecast(&steps, 0, HOUR_MS, 100.0, 0.5, (1, 10));
        // 150 / (100 × 0.5) = 3; 700 / 50 = 14 → capped at 10; nothing → at least 1.
        assert_eq!(
            f[&HOUR_MS],
            Projection {
                low: 1.0,
                mid: 3.0,
                high: 10.0
            }
        );
        assert_eq!(
            f[&(2 * HOUR_MS)],
            Projection {
                low: 1.0,
                mid: 1.0,
                high: 1.0
            }
        );
        assert!(fleet_from_forecast(&steps, 0, 300_000, 100.0, 0.5, (1, 10)).is_empty());
    }

    #[test]
    fn history_gives_a_band_that_narrows_with_more_hours() {
        let h = [10.0, 12.0, 8.0, 10.0];
        let short = Projection::from_history(&h, 1, 1.645);
        let long = Projection::from_history(&h, 100, 1.645);
        assert_eq!(short.mid, 10.0);
        assert!(short.low < long.low && long.high < short.high);
        assert_eq!(Projection::from_history(&[], 5, 1.645).high, 0.0);
        assert!(Projection::from_history(&[0.0, 100.0], 1, 3.0).low >= 0.0);
    }

    #[test]
    fn the_estimate_adds_the_projected_rest_at_future_prices() {
        let book = RuleBook::new(vec![
            rule("a", Scope::Default, price("resource:instance", "1"), 0),
            // A price rise already scheduled for hour 20 is used for hours 20..24.
            rule("b", Scope::Default, price("resource:instance", "2"), 20),
            rule("c", Scope::Default, price("unit:api_call", "0.01"), 0),
        ]);
        let so_far = RatingInput {
            customer: acme(),
            period: Period {
                start_ms: 0,
                end_ms: 24 * HOUR_MS,
            },
            usage: vec![UsageHour {
                hour_ms: 0,
                dimension: "unit:api_call".parse().unwrap(),
                quantity: d("100"),
            }],
            capacity: (0..10)
                .map(|h| CapacityHour {
                    hour_ms: h * HOUR_MS,
                    workload: "w".into(),
                    instance_ms: d("7200000"),
                    missed_ms: 0,
                })
                .collect(),
            vcpus_per_instance: Decimal::ONE,
            platform_load: BTreeMap::new(),
            profile_current: BTreeSet::new(),
        };
        let series = [
            Series::Capacity {
                workload: "w".into(),
                instances: Projection {
                    low: 1.0,
                    mid: 2.0,
                    high: 3.0,
                },
                by_hour: BTreeMap::new(),
            },
            Series::Usage {
                dimension: "unit:api_call".parse().unwrap(),
                per_hour: Projection {
                    low: 0.0,
                    mid: 10.0,
                    high: 20.0,
                },
            },
        ];
        let e = estimate(&book, &so_far, 10 * HOUR_MS, &series);
        // 10 h × 2 instances at 1 + 100 calls at 0.01.
        assert_eq!(e.actual, d("21.00"));
        // Hours 10..20 at 1, 20..24 at 2: mid = 2×10×1 + 2×4×2 = 36; calls 14 h × 10 × 0.01 = 1.40.
        assert_eq!(e.expected, d("21.00") + d("36") + d("1.40"));
        assert_eq!(e.low, d("21.00") + d("18"));
        assert_eq!(e.high, d("21.00") + d("54") + d("2.80"));
        let inst = &e.lines[0];
        assert_eq!((inst.actual, inst.expected), (d("20.00"), d("56.00")));
    }
}
