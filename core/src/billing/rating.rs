//! Rating: a period's stored usage and capacity in force, priced hour by hour
//! with the rules in force in each hour.
//!
//! Quantities are summed exactly per line (capacity in instance-milliseconds),
//! amounts are rounded once per line and once per adjustment, and the total is
//! the sum of what is shown, so re-rating the same inputs gives the same cents.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::dimension::{Dimension, Resource};
use super::money::{Currency, round_money};
use super::period::{HOUR_MS, Period, hour_floor};
use super::rules::{Customer, RuleBook};

/// Metered consumption of one dimension in one hour (not capacity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageHour {
    pub hour_ms: i64,
    pub dimension: Dimension,
    /// In the dimension's unit: units, operations, GB, GiB-hours.
    pub quantity: Decimal,
}

/// Capacity one workload had in force during one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityHour {
    pub hour_ms: i64,
    pub workload: String,
    /// Instances × milliseconds in force within the hour.
    pub instance_ms: Decimal,
    /// Milliseconds of the hour in which demand exceeded the capacity in force.
    pub missed_ms: i64,
}

#[derive(Debug, Clone)]
pub struct RatingInput {
    pub customer: Customer,
    /// Hours outside it are ignored.
    pub period: Period,
    pub usage: Vec<UsageHour>,
    pub capacity: Vec<CapacityHour>,
    pub vcpus_per_instance: Decimal,
    /// Platform load (0..=1) per hour start; hours without one have no multiplier.
    pub platform_load: BTreeMap<i64, Decimal>,
    /// Hours in which the organisation's workload profiles were current.
    pub profile_current: BTreeSet<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub dimension: Dimension,
    pub unit: String,
    pub unit_price: Decimal,
    /// In the dimension's unit, rounded to 6 places for display.
    pub quantity: Decimal,
    /// Rounded to the currency's minor unit.
    pub amount: Decimal,
    pub rule_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpriced {
    pub dimension: Dimension,
    pub quantity: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub currency: Currency,
    pub period: Period,
    pub lines: Vec<StatementLine>,
    pub tier_premium: Decimal,
    /// Positive when platform load raised prices.
    pub demand_adjustment: Decimal,
    /// Subtracted.
    pub sla_credit: Decimal,
    /// Subtracted.
    pub profile_discount: Decimal,
    pub total: Decimal,
    /// Usage no rule prices: shown, not charged.
    pub unpriced: Vec<Unpriced>,
}

impl Statement {
    /// Charges per dimension (lines at different prices summed).
    pub fn by_dimension(&self) -> BTreeMap<Dimension, Decimal> {
        let mut out = BTreeMap::new();
        for l in &self.lines {
            *out.entry(l.dimension.clone()).or_insert(Decimal::ZERO) += l.amount;
        }
        out
    }
}

/// Base-unit quantity per line: capacity in instance-ms (or vCPU-ms), the rest
/// in their own unit.
#[derive(Default)]
struct Acc {
    base: Decimal,
    divisor: Decimal,
}

/// Instance-milliseconds per hour in `[from_ms, to_ms)` of a fleet that
/// changed at the given `(at_ms, instances)` steps (sorted; a step before
/// `from_ms` is the fleet in force at the start). Hours with none are left out.
pub fn instance_ms_by_hour(steps: &[(i64, i64)], from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
    let mut out: BTreeMap<i64, i64> = BTreeMap::new();
    for (i, &(at, n)) in steps.iter().enumerate() {
        let start = at.max(from_ms);
        let end = steps.get(i + 1).map_or(to_ms, |s| s.0).min(to_ms);
        if n <= 0 || start >= end {
            continue;
        }
        let mut t = start;
        while t < end {
            let h = hour_floor(t);
            let upto = (h + HOUR_MS).min(end);
            *out.entry(h).or_default() += n * (upto - t);
            t = upto;
        }
    }
    out.into_iter().collect()
}

pub fn rate(book: &RuleBook, input: &RatingInput) -> Statement {
    let who = &input.customer;
    let hour = Decimal::from(HOUR_MS);
    let in_period = |h: i64| input.period.contains(h);
    // (dimension, price, rule) → quantity in base units.
    let mut lines: BTreeMap<(Dimension, Decimal, String), Acc> = BTreeMap::new();
    let mut unpriced: BTreeMap<Dimension, Decimal> = BTreeMap::new();
    // Unrounded charges per hour, split for the adjustments.
    let mut capacity_by_hour: BTreeMap<i64, Decimal> = BTreeMap::new();
    let mut all_by_hour: BTreeMap<i64, Decimal> = BTreeMap::new();
    let mut sla = Decimal::ZERO;

    let mut add = |dim: Dimension, h: i64, base: Decimal, divisor: Decimal| -> Option<Decimal> {
        match book.unit_price(who, &dim, h) {
            Some((price, r)) => {
                let acc = lines.entry((dim, price, r.id.clone())).or_default();
                acc.base += base;
                acc.divisor = divisor;
                let amount = base * price / divisor;
                *all_by_hour.entry(h).or_default() += amount;
                Some(amount)
            }
            None => {
                *unpriced.entry(dim).or_default() += base / divisor;
                None
            }
        }
    };

    for c in input.capacity.iter().filter(|c| in_period(c.hour_ms)) {
        let h = hour_floor(c.hour_ms);
        let inst = add(
            Dimension::Resource(Resource::Instance),
            h,
            c.instance_ms,
            hour,
        );
        let vcpu = add(
            Dimension::Resource(Resource::Vcpu),
            h,
            c.instance_ms * input.vcpus_per_instance,
            hour,
        );
        let amount = inst.unwrap_or_default() + vcpu.unwrap_or_default();
        *capacity_by_hour.entry(h).or_default() += amount;
        if c.missed_ms > 0 {
            let share = Decimal::from(c.missed_ms.min(HOUR_MS)) / hour;
            sla += book.sla_credit(who, h) * amount * share;
        }
    }
    for u in input.usage.iter().filter(|u| in_period(u.hour_ms)) {
        add(
            u.dimension.clone(),
            hour_floor(u.hour_ms),
            u.quantity,
            Decimal::ONE,
        );
    }

    let mut premium = Decimal::ZERO;
    let mut demand = Decimal::ZERO;
    for (&h, &cap) in &capacity_by_hour {
        premium += book.tier_premium(who, h) * cap;
        if let Some(&load) = input.platform_load.get(&h) {
            demand += (book.demand_multiplier(who, h, load) - Decimal::ONE) * cap;
        }
    }
    let mut discount = Decimal::ZERO;
    for &h in input.profile_current.iter().filter(|&&h| in_period(h)) {
        let rate = book.profile_discount(who, h);
        if rate.is_zero() {
            continue;
        }
        let cap = capacity_by_hour.get(&h).copied().unwrap_or_default();
        let before = all_by_hour.get(&h).copied().unwrap_or_default()
            + cap
                * (book.tier_premium(who, h)
                    + input
                        .platform_load
                        .get(&h)
                        .map(|&l| book.demand_multiplier(who, h, l) - Decimal::ONE)
                        .unwrap_or_default());
        discount += rate * before;
    }

    let cur = input.customer.currency;
    let lines: Vec<StatementLine> = lines
        .into_iter()
        .map(|((dimension, unit_price, rule_id), acc)| StatementLine {
            unit: dimension.unit().to_owned(),
            quantity: (acc.base / acc.divisor).round_dp(6),
            amount: round_money(acc.base * unit_price / acc.divisor, cur),
            dimension,
            unit_price,
            rule_id,
        })
        .collect();
    let (premium, demand, sla, discount) = (
        round_money(premium, cur),
        round_money(demand, cur),
        round_money(sla, cur),
        round_money(discount, cur),
    );
    let total = lines.iter().map(|l| l.amount).sum::<Decimal>() + premium + demand - sla - discount;
    Statement {
        currency: cur,
        period: input.period,
        lines,
        tier_premium: premium,
        demand_adjustment: demand,
        sla_credit: sla,
        profile_discount: discount,
        total,
        unpriced: unpriced
            .into_iter()
            .map(|(dimension, quantity)| Unpriced {
                dimension,
                quantity: quantity.round_dp(6),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::rules::tests::{acme, d, price, rule};
    use crate::billing::rules::{RuleKind, Scope};
    use proptest::prelude::*;

    fn input(capacity: Vec<CapacityHour>, usage: Vec<UsageHour>) -> RatingInput {
        RatingInput {
            customer: acme(),
            period: Period {
                start_ms: 0,
                end_ms: 24 * HOUR_MS,
            },
            usage,
            capacity,
            vcpus_per_instance: Decimal::ONE,
            platform_load: BTreeMap::new(),
            profile_current: BTreeSet::new(),
        }
    }

    fn cap(h: i64, instances: i64, missed_ms: i64) -> CapacityHour {
        CapacityHour {
            hour_ms: h * HOUR_MS,
            workload: "api".into(),
            instance_ms: Decimal::from(instances * HOUR_MS),
            missed_ms,
        }
    }

    fn usage(h: i64, dim: &str, q: &str) -> UsageHour {
        UsageHour {
            hour_ms: h * HOUR_MS,
            dimension: dim.parse().unwrap(),
            quantity: d(q),
        }
    }

    #[test]
    fn a_price_change_mid_period_gives_two_lines_and_exact_cents() {
        let book = RuleBook::new(vec![
            rule("a", Scope::Default, price("resource:instance", "0.10"), 0),
            rule("b", Scope::Default, price("resource:instance", "0.125"), 2),
            rule("c", Scope::Default, price("unit:api_call", "0.0001"), 0),
        ]);
        let s = rate(
            &book,
            &input(
                vec![cap(0, 3, 0), cap(1, 3, 0), cap(2, 4, 0)],
                vec![
                    usage(0, "unit:api_call", "12345"),
                    usage(30, "unit:api_call", "1"),
                ],
            ),
        );
        let amounts: Vec<(String, Decimal, Decimal)> = s
            .lines
            .iter()
            .map(|l| (l.dimension.to_string(), l.quantity, l.amount))
            .collect();
        assert_eq!(
            amounts,
            vec![
                ("resource:instance".into(), d("6"), d("0.60")),
                ("resource:instance".into(), d("4"), d("0.50")),
                ("unit:api_call".into(), d("12345"), d("1.23")),
            ]
        );
        // vCPU has no price: shown, not charged; the hour-30 call is outside the period.
        assert_eq!(s.unpriced.len(), 1);
        assert_eq!(s.unpriced[0].quantity, d("10"));
        assert_eq!(s.total, d("2.33"));
    }

    #[test]
    fn premium_demand_sla_and_discount_adjust_capacity() {
        let book = RuleBook::new(vec![
            rule("p", Scope::Default, price("resource:instance", "1"), 0),
            rule(
                "t",
                Scope::Default,
                RuleKind::TierPremium { rate: d("0.2") },
                0,
            ),
            rule(
                "m",
                Scope::Default,
                RuleKind::DemandMultiplier {
                    min_load: d("0.8"),
                    multiplier: d("1.5"),
                },
                0,
            ),
            rule(
                "s",
                Scope::Default,
                RuleKind::SlaCredit { rate: d("0.5") },
                0,
            ),
            rule(
                "g",
                Scope::Default,
                RuleKind::ProfileDiscount { rate: d("0.1") },
                0,
            ),
        ]);
        let mut i = input(vec![cap(0, 10, 0), cap(1, 10, HOUR_MS / 2)], vec![]);
        i.platform_load.insert(0, d("0.9"));
        i.platform_load.insert(HOUR_MS, d("0.5"));
        i.profile_current.insert(HOUR_MS);
        let s = rate(&book, &i);
        assert_eq!(s.lines[0].amount, d("20.00"));
        assert_eq!(s.tier_premium, d("4.00"));
        assert_eq!(s.demand_adjustment, d("5.00"));
        // Hour 1: half the hour missed, half of 10 credited at 50 %.
        assert_eq!(s.sla_credit, d("2.50"));
        // Hour 1: 10 + 2 premium, no demand surcharge, 10 % off.
        assert_eq!(s.profile_discount, d("1.20"));
        assert_eq!(s.total, d("25.30"));
    }

    #[test]
    fn fleets_are_split_at_hour_boundaries() {
        let steps = [(-HOUR_MS, 2), (HOUR_MS / 2, 4), (2 * HOUR_MS, 0)];
        assert_eq!(
            instance_ms_by_hour(&steps, 0, 3 * HOUR_MS),
            vec![
                (0, 2 * HOUR_MS / 2 + 4 * HOUR_MS / 2),
                (HOUR_MS, 4 * HOUR_MS)
            ]
        );
        // Open-ended: the last fleet lasts until `to_ms`.
        assert_eq!(
            instance_ms_by_hour(&[(0, 1)], 0, HOUR_MS + 10),
            vec![(0, HOUR_MS), (HOUR_MS, 10)]
        );
        assert!(instance_ms_by_hour(&[], 0, HOUR_MS).is_empty());
    }

    proptest! {
        /// Re-rating gives the same statement whatever order the rows come in,
        /// and splitting a period in two never changes the sum by more than
        /// the per-line rounding.
        #[test]
        fn rating_is_reproducible(
            rows in proptest::collection::vec((0i64..48, 0i64..20, 0u32..100_000), 0..60),
            p in 1u32..10_000,
        ) {
            let book = RuleBook::new(vec![
                rule("a", Scope::Default, price("resource:instance", &format!("0.{p:04}")), 0),
                rule("b", Scope::Default, price("unit:api_call", "0.0003"), 24),
            ]);
            let capacity: Vec<CapacityHour> = rows.iter().map(|&(h, n, _)| cap(h, n, 0)).collect();
            let used: Vec<UsageHour> = rows.iter().map(|&(h, _, q)| usage(h, "unit:api_call", &q.to_string())).collect();
            let mut i = input(capacity, used);
            i.period = Period { start_ms: 0, end_ms: 48 * HOUR_MS };
            let a = rate(&book, &i);
            i.capacity.reverse();
            i.usage.reverse();
            let b = rate(&book, &i);
            prop_assert_eq!(&a, &b);
            let mut first = i.clone();
            first.period.end_ms = 24 * HOUR_MS;
            let mut second = i.clone();
            second.period.start_ms = 24 * HOUR_MS;
            let split = rate(&book, &first).total + rate(&book, &second).total;
            prop_assert!((split - a.total).abs() <= d("0.02"));
        }
    }
}
