//! Spot or on-demand: spot is taken when, priced pessimistically (the 90th
//! percentile of recent spot prices) and charged for the chance of being
//! interrupted over the time the capacity is needed, it still saves enough.
//! Money in integer micro-units per instance-hour.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotInputs<'a> {
    pub on_demand_micros: i64,
    /// Recent spot prices, any order.
    pub spot_history: &'a [i64],
    /// How long the capacity is expected to be needed (from the forecast).
    pub needed_hours: f64,
    /// Interruptions per instance-hour observed for this pool.
    pub interruption_rate: f64,
    /// Saving required to accept the risk (0.2 = 20 % cheaper).
    pub min_saving: f64,
    /// False for capacity the tier guarantees (no interruptions allowed).
    pub allow_spot: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "purchase", rename_all = "snake_case")]
pub enum Purchase {
    Spot { expected_saving: f64 },
    OnDemand { why: OnDemandWhy },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDemandWhy {
    Guaranteed,
    NoSpotPrices,
    /// Recent spot prices swing too much (p90 over 1.5 × median).
    Volatile,
    NotCheaperEnough,
}

pub fn choose(inp: &SpotInputs) -> Purchase {
    let on_demand = |why| Purchase::OnDemand { why };
    if !inp.allow_spot {
        return on_demand(OnDemandWhy::Guaranteed);
    }
    let mut prices: Vec<i64> = inp
        .spot_history
        .iter()
        .copied()
        .filter(|p| *p > 0)
        .collect();
    if prices.is_empty() || inp.on_demand_micros <= 0 {
        return on_demand(OnDemandWhy::NoSpotPrices);
    }
    prices.sort_unstable();
    let at = |q: f64| prices[((prices.len() - 1) as f64 * q).round() as usize] as f64;
    let (median, p90) = (at(0.5), at(0.9));
    if p90 > 1.5 * median {
        return on_demand(OnDemandWhy::Volatile);
    }
    let hours = inp.needed_hours.max(0.0);
    let od = inp.on_demand_micros as f64;
    // An interruption is paid for as on-demand for half the remaining time.
    let p_interrupt = 1.0 - (-inp.interruption_rate.max(0.0) * hours).exp();
    let expected_spot = p90 * hours + p_interrupt * od * hours / 2.0;
    let full = od * hours;
    if full <= 0.0 {
        return on_demand(OnDemandWhy::NotCheaperEnough);
    }
    let saving = 1.0 - expected_spot / full;
    if saving >= inp.min_saving {
        Purchase::Spot {
            expected_saving: saving,
        }
    } else {
        on_demand(OnDemandWhy::NotCheaperEnough)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(history: &[i64], hours: f64, rate: f64) -> SpotInputs<'_> {
        SpotInputs {
            on_demand_micros: 100_000,
            spot_history: history,
            needed_hours: hours,
            interruption_rate: rate,
            min_saving: 0.2,
            allow_spot: true,
        }
    }

    #[test]
    fn cheap_stable_spot_for_short_needs() {
        let p = choose(&inputs(&[30_000, 32_000, 31_000, 35_000], 2.0, 0.01));
        let Purchase::Spot { expected_saving } = p else {
            panic!("{p:?}")
        };
        assert!(expected_saving > 0.6, "{expected_saving}");
    }

    #[test]
    fn long_needs_on_an_interrupted_pool_go_on_demand() {
        let p = choose(&inputs(&[60_000; 5], 48.0, 0.2));
        assert_eq!(
            p,
            Purchase::OnDemand {
                why: OnDemandWhy::NotCheaperEnough
            }
        );
    }

    #[test]
    fn volatile_missing_or_guaranteed() {
        let p = choose(&inputs(&[10_000, 10_000, 10_000, 90_000, 95_000], 1.0, 0.0));
        assert_eq!(
            p,
            Purchase::OnDemand {
                why: OnDemandWhy::Volatile
            }
        );
        let p = choose(&inputs(&[], 1.0, 0.0));
        assert_eq!(
            p,
            Purchase::OnDemand {
                why: OnDemandWhy::NoSpotPrices
            }
        );
        let mut i = inputs(&[10_000], 1.0, 0.0);
        i.allow_spot = false;
        assert_eq!(
            choose(&i),
            Purchase::OnDemand {
                why: OnDemandWhy::Guaranteed
            }
        );
    }
}
