//! Pricing rules: effective-dated, per organisation, tier or everyone, and how
//! the one in force for an hour is found.
//!
//! A rule is never edited: a new rule with a later `effective_from` supersedes
//! it, so the rules that priced any past hour are still there to re-rate it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::dimension::Dimension;
use super::money::Currency;
use super::period::HOUR_MS;
use crate::accounts::Tier;

/// Whom a rule prices. The most specific scope in force wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "scope", content = "of", rename_all = "snake_case")]
pub enum Scope {
    Default,
    Tier(Tier),
    Organization(String),
}

impl Scope {
    fn specificity(&self) -> u8 {
        match self {
            Scope::Default => 0,
            Scope::Tier(_) => 1,
            Scope::Organization(_) => 2,
        }
    }

    fn covers(&self, org_id: &str, tier: Tier) -> bool {
        match self {
            Scope::Default => true,
            Scope::Tier(t) => *t == tier,
            Scope::Organization(o) => o == org_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    /// Price per unit of the dimension (per unit-hour for capacity).
    Price {
        dimension: Dimension,
        unit_price: Decimal,
    },
    /// Added share of capacity charges, e.g. 0.2 for guaranteed low-latency
    /// pre-allocation.
    TierPremium { rate: Decimal },
    /// One step of a load schedule: capacity charges × `multiplier` in hours
    /// when platform load is at least `min_load` (0..=1 of platform capacity).
    DemandMultiplier {
        min_load: Decimal,
        multiplier: Decimal,
    },
    /// Share of a workload-hour's capacity charge credited back, in proportion
    /// to the time its demand exceeded the capacity in force.
    SlaCredit { rate: Decimal },
    /// Share taken off an hour's charges while the organisation's workload
    /// profiles are current.
    ProfileDiscount { rate: Decimal },
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Price { .. } => "price",
            RuleKind::TierPremium { .. } => "tier_premium",
            RuleKind::DemandMultiplier { .. } => "demand_multiplier",
            RuleKind::SlaCredit { .. } => "sla_credit",
            RuleKind::ProfileDiscount { .. } => "profile_discount",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRule {
    pub id: String,
    pub scope: Scope,
    #[serde(flatten)]
    pub kind: RuleKind,
    pub currency: Currency,
    /// Inclusive, on an hour boundary.
    pub effective_from_ms: i64,
    /// Exclusive, on an hour boundary; `None` until superseded or ended.
    pub effective_to_ms: Option<i64>,
    /// Breaks ties between rules starting at the same hour: the later wins.
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    #[error("effective_from and effective_to must fall on a whole hour (UTC)")]
    NotOnHour,
    #[error("effective_to must be after effective_from")]
    EmptyRange,
    #[error("{field} must be between {min} and {max} (got {got})")]
    OutOfRange {
        field: &'static str,
        min: Decimal,
        max: Decimal,
        got: Decimal,
    },
    #[error("{field} has more than 12 decimal places")]
    TooPrecise { field: &'static str },
}

fn check(field: &'static str, v: Decimal, min: Decimal, max: Decimal) -> Result<(), RuleError> {
    if v < min || v > max {
        return Err(RuleError::OutOfRange {
            field,
            min,
            max,
            got: v,
        });
    }
    if v.normalize().scale() > 12 {
        return Err(RuleError::TooPrecise { field });
    }
    Ok(())
}

impl PriceRule {
    /// The rule's own consistency; scope and currency against the organisation
    /// are the caller's to check.
    pub fn validate(&self) -> Result<(), RuleError> {
        let on_hour = |ms: i64| ms.rem_euclid(HOUR_MS) == 0;
        if !on_hour(self.effective_from_ms) || self.effective_to_ms.is_some_and(|t| !on_hour(t)) {
            return Err(RuleError::NotOnHour);
        }
        if self
            .effective_to_ms
            .is_some_and(|t| t <= self.effective_from_ms)
        {
            return Err(RuleError::EmptyRange);
        }
        let (zero, one, ten) = (Decimal::ZERO, Decimal::ONE, Decimal::TEN);
        match &self.kind {
            RuleKind::Price { unit_price, .. } => {
                check("unit_price", *unit_price, zero, Decimal::from(1_000_000))
            }
            RuleKind::TierPremium { rate } => check("rate", *rate, zero, ten),
            RuleKind::DemandMultiplier {
                min_load,
                multiplier,
            } => {
                check("min_load", *min_load, zero, ten)?;
                check("multiplier", *multiplier, zero, ten)
            }
            RuleKind::SlaCredit { rate } | RuleKind::ProfileDiscount { rate } => {
                check("rate", *rate, zero, one)
            }
        }
    }

    fn in_force(&self, at_ms: i64) -> bool {
        self.effective_from_ms <= at_ms && self.effective_to_ms.is_none_or(|t| at_ms < t)
    }
}

/// Whom rules are resolved for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub org_id: String,
    pub tier: Tier,
    pub currency: Currency,
}

/// All rules that may apply, resolved per hour.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    rules: Vec<PriceRule>,
}

impl RuleBook {
    pub fn new(rules: Vec<PriceRule>) -> Self {
        RuleBook { rules }
    }

    pub fn rules(&self) -> &[PriceRule] {
        &self.rules
    }

    /// Rules in force for the customer at `at_ms` that `pick` accepts, best first:
    /// most specific scope, then latest start, then latest created.
    fn ranked(
        &self,
        who: &Customer,
        at_ms: i64,
        pick: impl Fn(&RuleKind) -> bool,
    ) -> std::vec::IntoIter<&PriceRule> {
        let mut v: Vec<&PriceRule> = self
            .rules
            .iter()
            .filter(|r| {
                r.currency == who.currency
                    && r.in_force(at_ms)
                    && r.scope.covers(&who.org_id, who.tier)
                    && pick(&r.kind)
            })
            .collect();
        v.sort_by(|a, b| {
            (
                b.scope.specificity(),
                b.effective_from_ms,
                b.created_ms,
                &b.id,
            )
                .cmp(&(
                    a.scope.specificity(),
                    a.effective_from_ms,
                    a.created_ms,
                    &a.id,
                ))
        });
        v.into_iter()
    }

    /// The price of one unit of `dimension` at `at_ms`, and the rule that set it.
    pub fn unit_price(
        &self,
        who: &Customer,
        dim: &Dimension,
        at_ms: i64,
    ) -> Option<(Decimal, &PriceRule)> {
        self.ranked(
            who,
            at_ms,
            |k| matches!(k, RuleKind::Price { dimension, .. } if dimension == dim),
        )
        .next()
        .and_then(|r| match &r.kind {
            RuleKind::Price { unit_price, .. } => Some((*unit_price, r)),
            _ => None,
        })
    }

    fn rate_of(&self, who: &Customer, at_ms: i64, name: &str) -> Decimal {
        self.ranked(who, at_ms, |k| k.name() == name)
            .next()
            .map(|r| match r.kind {
                RuleKind::TierPremium { rate }
                | RuleKind::SlaCredit { rate }
                | RuleKind::ProfileDiscount { rate } => rate,
                _ => Decimal::ZERO,
            })
            .unwrap_or(Decimal::ZERO)
    }

    pub fn tier_premium(&self, who: &Customer, at_ms: i64) -> Decimal {
        self.rate_of(who, at_ms, "tier_premium")
    }

    pub fn sla_credit(&self, who: &Customer, at_ms: i64) -> Decimal {
        self.rate_of(who, at_ms, "sla_credit")
    }

    pub fn profile_discount(&self, who: &Customer, at_ms: i64) -> Decimal {
        self.rate_of(who, at_ms, "profile_discount")
    }

    /// The capacity multiplier for a platform load. The schedule in force is
    /// the steps of the best-ranked scope that share its latest start.
    pub fn demand_multiplier(&self, who: &Customer, at_ms: i64, load: Decimal) -> Decimal {
        let mut steps = self.ranked(who, at_ms, |k| {
            matches!(k, RuleKind::DemandMultiplier { .. })
        });
        let Some(first) = steps.next() else {
            return Decimal::ONE;
        };
        let schedule = std::iter::once(first).chain(steps.take_while(|r| {
            r.scope == first.scope && r.effective_from_ms == first.effective_from_ms
        }));
        schedule
            .filter_map(|r| match r.kind {
                RuleKind::DemandMultiplier {
                    min_load,
                    multiplier,
                } if min_load <= load => Some((min_load, multiplier)),
                _ => None,
            })
            .max_by_key(|(min_load, _)| *min_load)
            .map(|(_, m)| m)
            .unwrap_or(Decimal::ONE)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::billing::dimension::Resource;

    pub fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    pub fn rule(id: &str, scope: Scope, kind: RuleKind, from_h: i64) -> PriceRule {
        PriceRule {
            id: id.into(),
            scope,
            kind,
            currency: Currency::USD,
            effective_from_ms: from_h * HOUR_MS,
            effective_to_ms: None,
            created_ms: from_h,
        }
    }

    pub fn price(dim: &str, p: &str) -> RuleKind {
        RuleKind::Price {
            dimension: dim.parse().unwrap(),
            unit_price: d(p),
        }
    }

    pub fn acme() -> Customer {
        Customer {
            org_id: "acme".into(),
            tier: Tier::Premium,
            currency: Currency::USD,
        }
    }

    #[test]
    fn the_most_specific_scope_then_the_latest_start_wins() {
        let book = RuleBook::new(vec![
            rule("d", Scope::Default, price("resource:instance", "0.10"), 0),
            rule(
                "t",
                Scope::Tier(Tier::Premium),
                price("resource:instance", "0.12"),
                5,
            ),
            rule(
                "o",
                Scope::Organization("acme".into()),
                price("resource:instance", "0.08"),
                10,
            ),
            rule(
                "o2",
                Scope::Organization("acme".into()),
                price("resource:instance", "0.07"),
                20,
            ),
            rule(
                "other",
                Scope::Organization("globex".into()),
                price("resource:instance", "0.01"),
                0,
            ),
        ]);
        let dim = Dimension::Resource(Resource::Instance);
        let at = |h: i64| {
            book.unit_price(&acme(), &dim, h * HOUR_MS)
                .map(|(p, r)| (p, r.id.clone()))
        };
        assert_eq!(at(0), Some((d("0.10"), "d".into())));
        assert_eq!(at(5), Some((d("0.12"), "t".into())));
        assert_eq!(at(10), Some((d("0.08"), "o".into())));
        assert_eq!(at(25), Some((d("0.07"), "o2".into())));
        let standard = Customer {
            tier: Tier::Standard,
            ..acme()
        };
        assert_eq!(
            book.unit_price(&standard, &dim, 6 * HOUR_MS).unwrap().0,
            d("0.10")
        );
    }

    #[test]
    fn ended_rules_and_other_currencies_do_not_apply() {
        let mut ended = rule(
            "o",
            Scope::Organization("acme".into()),
            price("unit:api_call", "2"),
            0,
        );
        ended.effective_to_ms = Some(3 * HOUR_MS);
        let mut eur = rule("e", Scope::Default, price("unit:api_call", "9"), 0);
        eur.currency = "eur".parse().unwrap();
        let book = RuleBook::new(vec![
            ended,
            eur,
            rule("d", Scope::Default, price("unit:api_call", "1"), 0),
        ]);
        let dim: Dimension = "unit:api_call".parse().unwrap();
        assert_eq!(
            book.unit_price(&acme(), &dim, 2 * HOUR_MS).unwrap().0,
            d("2")
        );
        assert_eq!(
            book.unit_price(&acme(), &dim, 3 * HOUR_MS).unwrap().0,
            d("1")
        );
        assert!(
            book.unit_price(&acme(), &"unit:other".parse().unwrap(), 0)
                .is_none()
        );
    }

    #[test]
    fn demand_schedules_pick_the_highest_step_reached() {
        let step = |id: &str, from: i64, min: &str, m: &str| {
            rule(
                id,
                Scope::Default,
                RuleKind::DemandMultiplier {
                    min_load: d(min),
                    multiplier: d(m),
                },
                from,
            )
        };
        let book = RuleBook::new(vec![
            step("a", 0, "0.5", "1.1"),
            step("b", 0, "0.8", "1.3"),
            // A later schedule replaces both steps.
            step("c", 10, "0.9", "1.5"),
        ]);
        let m = |h: i64, load: &str| book.demand_multiplier(&acme(), h * HOUR_MS, d(load));
        assert_eq!(m(1, "0.2"), Decimal::ONE);
        assert_eq!(m(1, "0.6"), d("1.1"));
        assert_eq!(m(1, "0.85"), d("1.3"));
        assert_eq!(m(11, "0.85"), Decimal::ONE);
        assert_eq!(m(11, "0.95"), d("1.5"));
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = rule("x", Scope::Default, price("resource:vcpu", "-1"), 0);
        assert!(matches!(
            r.validate(),
            Err(RuleError::OutOfRange {
                field: "unit_price",
                ..
            })
        ));
        r.kind = price("resource:vcpu", "0.0000000000001");
        assert_eq!(
            r.validate(),
            Err(RuleError::TooPrecise {
                field: "unit_price"
            })
        );
        r.kind = price("resource:vcpu", "0.04");
        r.effective_from_ms += 1;
        assert_eq!(r.validate(), Err(RuleError::NotOnHour));
        r.effective_from_ms = HOUR_MS;
        r.effective_to_ms = Some(HOUR_MS);
        assert_eq!(r.validate(), Err(RuleError::EmptyRange));
        r.effective_to_ms = Some(2 * HOUR_MS);
        assert_eq!(r.validate(), Ok(()));
        r.kind = RuleKind::SlaCredit { rate: d("1.5") };
        assert!(r.validate().is_err());
    }
}
