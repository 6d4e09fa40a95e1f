//! Pricing and rating: what a customer owes for a period, exactly.
//!
//! Money is `rust_decimal::Decimal` throughout, never floats. Prices resolve per
//! hour (rules take effect on hour boundaries), so a period is rated as the sum
//! of its hours and re-rating the same stored inputs gives the same total.

pub mod caps;
pub mod dimension;
pub mod estimate;
pub mod money;
pub mod period;
pub mod rating;
pub mod rules;

pub use caps::{BudgetCap, THRESHOLDS, controller_budget, crossed_thresholds};
pub use dimension::{Dimension, DimensionError, Resource};
pub use estimate::{Estimate, EstimateLine, Projection, Series, estimate};
pub use money::{Currency, CurrencyError, round_money};
pub use period::{HOUR_MS, Period, hour_floor};
pub use rating::{CapacityHour, RatingInput, Statement, StatementLine, Unpriced, UsageHour, rate};
pub use rules::{Customer, PriceRule, RuleBook, RuleError, RuleKind, Scope};

/// Downstream crates name decimals through here, so all agree on one version.
pub use rust_decimal::Decimal;
