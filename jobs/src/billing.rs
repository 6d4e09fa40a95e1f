//! Billing's data path: stored usage, capacity in force and rules turned into
//! a period's statement, the projected invoice, budget-threshold notices and
//! the controller's budget. The arithmetic is `headroom_core::billing`'s; this
//! module only gathers its inputs.

use std::collections::BTreeMap;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use headroom_core::allocate::Budget;
use headroom_core::billing::estimate::{Series, fleet_from_forecast};
use headroom_core::billing::{
    BudgetCap, Customer, Decimal, Dimension, Estimate, HOUR_MS, Period, PriceRule, Projection,
    RatingInput, Resource, RuleBook, RuleKind, Statement, controller_budget, crossed_thresholds,
    estimate, hour_floor, rate,
};
use headroom_core::forecast::{Horizon, Step};
use headroom_store::billing::{NewNotification, PriceChange, StoredCap};
use headroom_store::{Db, StoreError, Tenant};
use serde_json::json;

/// Hours of history a projection learns the hourly level and spread from.
const HISTORY_HOURS: i64 = 7 * 24;
/// A 90 % interval (normal quantile).
const Z90: f64 = 1.645;

/// One vCPU per instance, as the providers allocate it.
pub fn vcpus_per_instance() -> Decimal {
    Decimal::try_from(crate::providers::cgroup::CORES_PER_INSTANCE).unwrap_or(Decimal::ONE)
}

pub async fn customer(db: &Db, tenant: &Tenant) -> Result<Option<Customer>, StoreError> {
    Ok(db.organization(tenant).await?.map(|o| Customer {
        org_id: o.id,
        tier: o.tier,
        currency: o.currency,
    }))
}

/// Everything stored for `[from_ms, to_ms)`, as the rating engine reads it.
pub async fn rating_input(
    db: &Db,
    tenant: &Tenant,
    customer: &Customer,
    period: Period,
    from_ms: i64,
    to_ms: i64,
) -> Result<RatingInput, StoreError> {
    let mut usage = db.usage_by_hour(tenant, from_ms, to_ms).await?;
    usage.extend(db.micro_operations_by_hour(tenant, from_ms, to_ms).await?);
    Ok(RatingInput {
        customer: customer.clone(),
        period,
        usage,
        capacity: db.capacity_by_hour(tenant, from_ms, to_ms).await?,
        vcpus_per_instance: vcpus_per_instance(),
        // As recorded when each hour closed (see `record_closed_hours`).
        platform_load: db.platform_load(from_ms, to_ms).await?,
        profile_current: db.profile_current_hours(tenant, from_ms, to_ms).await?,
    })
}

/// A period rated from what is stored; the current period up to now.
pub async fn statement(
    db: &Db,
    tenant: &Tenant,
    customer: &Customer,
    book: &RuleBook,
    period: Period,
    now_ms: i64,
) -> Result<Statement, StoreError> {
    let to = period.end_ms.min(now_ms);
    let input = rating_input(db, tenant, customer, period, period.start_ms, to).await?;
    Ok(rate(book, &input))
}

/// The current period's projected invoice: rated up to now, the rest projected
/// from each series' last week of whole hours.
pub async fn projected_invoice(
    db: &Db,
    tenant: &Tenant,
    customer: &Customer,
    book: &RuleBook,
    now_ms: i64,
) -> Result<Estimate, StoreError> {
    let period = Period::month_of(now_ms);
    let now_hour = hour_floor(now_ms);
    let history_from = now_hour - HISTORY_HOURS * HOUR_MS;
    let so_far = rating_input(db, tenant, customer, period, period.start_ms, now_ms).await?;
    let recent = rating_input(db, tenant, customer, period, history_from, now_hour).await?;
    let remaining = (period.end_ms - now_hour) / HOUR_MS;
    let hours: Vec<i64> = (history_from..now_hour).step_by(HOUR_MS as usize).collect();
    let history = |by_hour: &BTreeMap<i64, f64>| -> Vec<f64> {
        hours
            .iter()
            .map(|h| by_hour.get(h).copied().unwrap_or(0.0))
            .collect()
    };
    let mut usage: BTreeMap<Dimension, BTreeMap<i64, f64>> = BTreeMap::new();
    for u in &recent.usage {
        *usage
            .entry(u.dimension.clone())
            .or_default()
            .entry(u.hour_ms)
            .or_default() += f64::try_from(u.quantity).unwrap_or(0.0);
    }
    let mut capacity: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for c in &recent.capacity {
        *capacity
            .entry(c.workload.clone())
            .or_default()
            .entry(c.hour_ms)
            .or_default() += f64::try_from(c.instance_ms).unwrap_or(0.0) / HOUR_MS as f64;
    }
    let mut series: Vec<Series> = usage
        .into_iter()
        .map(|(dimension, by_hour)| Series::Usage {
            dimension,
            per_hour: Projection::from_history(&history(&by_hour), remaining, Z90),
        })
        .collect();
    // Workloads the controller runs follow their demand forecast where it reaches.
    let mut planned: BTreeMap<String, BTreeMap<i64, Projection>> = BTreeMap::new();
    for settings in db.allocation_settings_all(tenant).await? {
        // Only fleets a provider will really run are charged.
        if settings.mode != "on" || settings.provider == "none" {
            continue;
        }
        let forecasts = db.latest_forecasts(tenant, &settings.workload).await?;
        let Some(f) = forecasts
            .iter()
            .find(|f| f.metric == settings.metric && f.horizon == Horizon::Planning.as_str())
        else {
            continue;
        };
        let steps: Vec<Step> = f.steps.steps().collect();
        let bounds = (
            u32::try_from(settings.min_instances).unwrap_or(0),
            u32::try_from(settings.max_instances).unwrap_or(u32::MAX),
        );
        planned.insert(
            settings.workload.clone(),
            fleet_from_forecast(
                &steps,
                f.origin_ms,
                f.step_secs * 1000,
                settings.units_per_instance,
                settings.target,
                bounds,
            ),
        );
        capacity.entry(settings.workload).or_default();
    }
    series.extend(
        capacity
            .into_iter()
            .map(|(workload, by_hour)| Series::Capacity {
                instances: Projection::from_history(&history(&by_hour), remaining, Z90),
                by_hour: planned.remove(&workload).unwrap_or_default(),
                workload,
            }),
    );
    Ok(estimate(book, &so_far, now_ms, &series))
}

fn cap_of(s: &StoredCap) -> BudgetCap {
    BudgetCap {
        amount: s.amount,
        currency: s.currency,
        action: s.action,
    }
}

/// Announces budget thresholds the projected spend has reached this period
/// (each once); returns the ones announced now.
pub async fn check_budget(
    db: &Db,
    tenant: &Tenant,
    customer: &Customer,
    book: &RuleBook,
    now_ms: i64,
) -> Result<Vec<u8>, StoreError> {
    let Some(stored) = db.budget_cap(tenant).await? else {
        return Ok(Vec::new());
    };
    let cap = cap_of(&stored);
    let est = projected_invoice(db, tenant, customer, book, now_ms).await?;
    let period = est.period.label();
    let done = db.announced_thresholds(tenant, &period).await?;
    let mut announced = Vec::new();
    for t in crossed_thresholds(&cap, est.expected, &done) {
        let note = NewNotification {
            kind: "budget_threshold",
            title: format!("Projected spend has reached {t} % of the budget cap"),
            body: json!({
                "period": period, "threshold": t, "cap": cap.amount, "currency": cap.currency,
                "projected": est.expected, "projected_low": est.low, "projected_high": est.high,
                "actual": est.actual, "action": cap.action,
            }),
        };
        if db
            .announce_threshold(tenant, &period, t, &note, now_ms)
            .await?
        {
            announced.push(t);
        }
    }
    Ok(announced)
}

/// The price of one instance-hour (instance and its vCPUs, with the tier
/// premium) at `at_ms`; `None` when no rule prices capacity.
pub fn instance_hour_price(book: &RuleBook, who: &Customer, at_ms: i64) -> Option<Decimal> {
    let inst = book.unit_price(who, &Dimension::Resource(Resource::Instance), at_ms);
    let vcpu = book.unit_price(who, &Dimension::Resource(Resource::Vcpu), at_ms);
    if inst.is_none() && vcpu.is_none() {
        return None;
    }
    let base = inst.map_or(Decimal::ZERO, |p| p.0)
        + vcpu.map_or(Decimal::ZERO, |p| p.0) * vcpus_per_instance();
    Some(base * (Decimal::ONE + book.tier_premium(who, at_ms)))
}

/// The controller's budget for an organisation with a cap: the projected
/// spend and the cost of one more instance until the period ends.
pub async fn budget_for_controller(
    db: &Db,
    tenant: &Tenant,
    customer: &Customer,
    book: &RuleBook,
    now_ms: i64,
) -> Result<Option<Budget>, StoreError> {
    match db.budget_cap(tenant).await? {
        Some(stored) => budget_under_cap(db, tenant, customer, book, &stored, now_ms)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// [`budget_for_controller`] for an organisation whose cap is `stored`.
pub async fn budget_under_cap(
    db: &Db,
    tenant: &Tenant,
    customer: &Customer,
    book: &RuleBook,
    stored: &StoredCap,
    now_ms: i64,
) -> Result<Budget, StoreError> {
    let est = projected_invoice(db, tenant, customer, book, now_ms).await?;
    let rest_hours = Decimal::from(est.period.end_ms - now_ms) / Decimal::from(HOUR_MS);
    let per_hour = instance_hour_price(book, customer, now_ms).unwrap_or(Decimal::ZERO);
    Ok(controller_budget(
        &cap_of(stored),
        est.expected,
        per_hour * rest_hours,
    ))
}

/// The value a rule's kind resolves to for a customer at an hour: a unit
/// price, a rate, or (for demand schedules) the multiplier at full load.
fn resolved(book: &RuleBook, who: &Customer, kind: &RuleKind, at_ms: i64) -> Option<Decimal> {
    match kind {
        RuleKind::Price { dimension, .. } => book.unit_price(who, dimension, at_ms).map(|p| p.0),
        RuleKind::TierPremium { .. } => Some(book.tier_premium(who, at_ms)),
        RuleKind::SlaCredit { .. } => Some(book.sla_credit(who, at_ms)),
        RuleKind::ProfileDiscount { .. } => Some(book.profile_discount(who, at_ms)),
        RuleKind::DemandMultiplier { .. } => Some(book.demand_multiplier(who, at_ms, Decimal::ONE)),
    }
}

fn subject(kind: &RuleKind) -> String {
    match kind {
        RuleKind::Price { dimension, .. } => dimension.to_string(),
        other => other.name().to_owned(),
    }
}

/// The price changes a rule change (`before` → `after` rule books) makes for
/// each customer at `at_ms`, with the notifications that announce them.
pub fn rule_changes(
    before: &RuleBook,
    after: &RuleBook,
    rule: &PriceRule,
    at_ms: i64,
    customers: &[Customer],
) -> Vec<(Tenant, PriceChange, NewNotification)> {
    let mut out = Vec::new();
    for who in customers {
        let (old, new) = (
            resolved(before, who, &rule.kind, at_ms),
            resolved(after, who, &rule.kind, at_ms),
        );
        if old == new {
            continue;
        }
        let subject = subject(&rule.kind);
        let change = PriceChange {
            id: String::new(),
            at_ms,
            subject: subject.clone(),
            old_price: old,
            new_price: new,
            currency: who.currency,
            reason: "rule".into(),
            cause: format!("{}@{at_ms}", rule.id),
        };
        let fmt = |v: Option<Decimal>| v.map_or("none".to_owned(), |d| d.normalize().to_string());
        let note = NewNotification {
            kind: "price_change",
            title: format!("{subject}: {} → {} {}", fmt(old), fmt(new), who.currency),
            body: json!({
                "subject": subject, "old": old, "new": new, "currency": who.currency,
                "effective_at": at_ms, "reason": "rule", "rule_id": rule.id,
            }),
        };
        out.push((Tenant::new(who.org_id.clone()), change, note));
    }
    out
}

/// Every customer, as rules are resolved for them.
pub async fn customers(db: &Db) -> Result<Vec<Customer>, StoreError> {
    Ok(db
        .all_organizations()
        .await?
        .into_iter()
        .map(|o| Customer {
            org_id: o.id,
            tier: o.tier,
            currency: o.currency,
        })
        .collect())
}

/// Workload profiles updated within this long count as current.
pub const PROFILE_MAX_AGE_MS: i64 = 30 * 24 * HOUR_MS;
/// A worker that was down catches up at most this many closed hours.
const CATCH_UP_HOURS: i64 = 48;

/// Records, for each hour closed since the last run, the platform's load
/// (when its capacity is configured) and whether each organisation's workload
/// profiles are current, so that rating finds the same inputs every time.
/// Hours caught up after an outage get the profile state of now.
pub async fn record_closed_hours(
    db: &Db,
    now_ms: i64,
    capacity_instances: Option<u64>,
) -> Result<(), StoreError> {
    let closed = hour_floor(now_ms);
    let earliest = closed - CATCH_UP_HOURS * HOUR_MS;
    let first = |last: Option<i64>| last.map_or(closed - HOUR_MS, |h| (h + HOUR_MS).max(earliest));
    if let Some(cap) = capacity_instances.filter(|&c| c > 0) {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let mut h = first(db.last_platform_load_hour().await?);
        while h < closed {
            let ms = db.platform_instance_ms(h).await?;
            let load =
                (Decimal::from(ms) / (Decimal::from(cap) * Decimal::from(HOUR_MS))).round_dp(6);
            db.record_platform_load(h, ms, cap, load, now_ms).await?;
            h += HOUR_MS;
        }
    }
    for who in customers(db).await? {
        let tenant = Tenant::new(who.org_id.clone());
        let current = db
            .profiles_current(&tenant, now_ms - PROFILE_MAX_AGE_MS)
            .await?;
        let mut h = first(db.last_profile_hour(&tenant).await?);
        while h < closed {
            db.record_profile_hour(&tenant, h, current).await?;
            h += HOUR_MS;
        }
    }
    Ok(())
}

#[derive(Clone)]
pub struct BillingJob {
    pub db: Db,
    /// Instances the platform can run; `None`: load is not measured.
    pub platform_capacity_instances: Option<u64>,
}

/// The scheduled billing tick: closed hours recorded, then budget
/// thresholds for every organisation with a cap.
pub async fn run(tick: Tick, ctx: Data<BillingJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    record_closed_hours(&ctx.db, now_ms, ctx.platform_capacity_instances).await?;
    let book = RuleBook::new(ctx.db.price_rules().await?);
    for who in customers(&ctx.db).await? {
        let tenant = Tenant::new(who.org_id.clone());
        match check_budget(&ctx.db, &tenant, &who, &book, now_ms).await {
            Ok(t) if !t.is_empty() => {
                tracing::info!(organization = who.org_id, thresholds = ?t, "budget thresholds announced")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(organization = who.org_id, error = %e, "budget check failed"),
        }
    }
    Ok(())
}
