//! Budget caps as billing sees them: which notification thresholds projected
//! spend has crossed, and the controller's view of the money left.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::money::Currency;
use crate::allocate::{Budget, CapAction};

/// Percentages of the cap at which the customer is told.
pub const THRESHOLDS: [u8; 3] = [50, 80, 100];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetCap {
    pub amount: Decimal,
    pub currency: Currency,
    pub action: CapAction,
}

/// Thresholds `projected` has reached that were not yet notified, lowest first.
pub fn crossed_thresholds(cap: &BudgetCap, projected: Decimal, notified: &[u8]) -> Vec<u8> {
    if cap.amount <= Decimal::ZERO {
        return Vec::new();
    }
    THRESHOLDS
        .into_iter()
        .filter(|t| !notified.contains(t))
        .filter(|&t| projected * Decimal::from(100) >= cap.amount * Decimal::from(t))
        .collect()
}

fn micros(x: Decimal) -> i64 {
    (x * Decimal::from(1_000_000))
        .round()
        .to_i64()
        .unwrap_or(i64::MAX)
}

/// The controller's budget: the cap, the spend projected with the fleet as it
/// is, and what one more instance costs until the period ends.
pub fn controller_budget(cap: &BudgetCap, projected: Decimal, instance_rest: Decimal) -> Budget {
    Budget {
        cap_micros: micros(cap.amount),
        projected_micros: micros(projected),
        instance_rest_micros: micros(instance_rest),
        action: cap.action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cap(action: CapAction) -> BudgetCap {
        BudgetCap {
            amount: Decimal::from(1000),
            currency: Currency::USD,
            action,
        }
    }

    #[test]
    fn each_threshold_is_crossed_once() {
        let c = cap(CapAction::Notify);
        assert_eq!(
            crossed_thresholds(&c, Decimal::from(499), &[]),
            Vec::<u8>::new()
        );
        assert_eq!(crossed_thresholds(&c, Decimal::from(500), &[]), vec![50]);
        assert_eq!(crossed_thresholds(&c, Decimal::from(900), &[50]), vec![80]);
        assert_eq!(
            crossed_thresholds(&c, Decimal::from(2000), &[]),
            vec![50, 80, 100]
        );
        assert_eq!(
            crossed_thresholds(&c, Decimal::from(2000), &[50, 80, 100]),
            Vec::<u8>::new()
        );
    }

    proptest! {
        /// Over random demand, prices and caps, with spend metered one tick
        /// late (the controller sees what was rated up to the tick before),
        /// a "block" cap is passed by at most one tick of spend.
        #[test]
        fn a_block_cap_is_passed_by_at_most_one_tick(
            wants in proptest::collection::vec(0u32..40, 1..200),
            cap_units in 0i64..5_000,
            price in 1i64..50,
        ) {
            let cap = BudgetCap { amount: Decimal::from(cap_units), currency: Currency::USD, action: CapAction::Block };
            let price = Decimal::from(price);
            let ticks = wants.len();
            let mut fleet = 0u32;
            let mut per_tick: Vec<Decimal> = Vec::new();
            for (i, &want) in wants.iter().enumerate() {
                let rated: Decimal = per_tick[..i.saturating_sub(1)].iter().sum();
                let rest = price * Decimal::from((ticks - i) as i64);
                let projected = rated + Decimal::from(fleet) * rest;
                let (allowed, _) = controller_budget(&cap, projected, rest).apply(fleet, want);
                prop_assert!(allowed <= want.max(fleet));
                fleet = allowed;
                per_tick.push(Decimal::from(fleet) * price);
            }
            let spent: Decimal = per_tick.iter().sum();
            let one_tick = per_tick.iter().copied().max().unwrap_or_default();
            prop_assert!(spent <= cap.amount + one_tick, "spent {} cap {} tick {}", spent, cap.amount, one_tick);
        }
    }
}
