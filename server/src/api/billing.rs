//! Prices, price history, statements, the projected invoice and budget caps
//! for customers; pricing rules for platform administrators.

use crate::api::error::page_limit;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use headroom_core::accounts::{AuditAction, Scope as KeyScope, Tier};
use headroom_core::allocate::CapAction;
use headroom_core::billing::{
    Currency, Customer, Decimal, Dimension, Estimate, HOUR_MS, Period, PriceRule, RuleBook,
    RuleKind, Scope, Statement,
};
use headroom_jobs::billing as bill;
use headroom_store::billing::{PriceChange, StoredCap};
use headroom_store::{Tenant, new_id};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody};
use super::forecasts::instant;
use crate::auth::{Caller, PlatformAdmin};
use crate::http::AppState;

fn unprocessable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(e.to_string())
}

/// The first whole hour after `ms`: the earliest a rule change may take effect,
/// so no hour already (partly) rated is ever re-priced.
fn next_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

// ---- pricing rules (admin) ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRuleRequest {
    /// `default` (everyone), `tier` or `organization`.
    pub scope: String,
    /// The tier (`standard`, `premium`, `guaranteed`) or the organisation id.
    pub scope_ref: Option<String>,
    /// `price`, `tier_premium`, `sla_credit`, `demand_multiplier` (one step of
    /// a load schedule; needs platform load measured) or `profile_discount`.
    pub kind: String,
    /// For `price`: `resource:instance|vcpu|memory_gib|network_gb|disk_io_gb`,
    /// `unit:<usage event type>` or `microop:<MICRO_OPERATION_TYPE>`.
    pub dimension: Option<String>,
    /// For `price`: per unit (per unit-hour for capacity), a decimal string.
    #[schema(value_type = Option<String>, example = "0.042")]
    pub unit_price: Option<Decimal>,
    /// For `tier_premium` (share added to capacity), `sla_credit` (share
    /// credited) and `profile_discount` (share taken off while profiles are current).
    #[schema(value_type = Option<String>, example = "0.2")]
    pub rate: Option<Decimal>,
    /// For `demand_multiplier`: the platform load (0..=1 of capacity) from which it applies.
    #[schema(value_type = Option<String>, example = "0.8")]
    pub min_load: Option<Decimal>,
    /// For `demand_multiplier`: capacity charges are multiplied by this.
    #[schema(value_type = Option<String>, example = "1.25")]
    pub multiplier: Option<Decimal>,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// On a whole hour, not before the next one; default: the next whole hour.
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceRuleView {
    pub id: String,
    pub scope: String,
    pub scope_ref: Option<String>,
    pub kind: String,
    pub dimension: Option<String>,
    #[schema(value_type = Option<String>)]
    pub unit_price: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub rate: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub multiplier: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub min_load: Option<Decimal>,
    pub currency: String,
    pub effective_from: DateTime<Utc>,
    pub effective_to: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&PriceRule> for PriceRuleView {
    fn from(r: &PriceRule) -> Self {
        let (scope, scope_ref) = match &r.scope {
            Scope::Default => ("default", None),
            Scope::Tier(t) => ("tier", Some(t.as_str().to_owned())),
            Scope::Organization(o) => ("organization", Some(o.clone())),
        };
        let mut v = PriceRuleView {
            id: r.id.clone(),
            scope: scope.into(),
            scope_ref,
            kind: r.kind.name().into(),
            dimension: None,
            unit_price: None,
            rate: None,
            multiplier: None,
            min_load: None,
            currency: r.currency.to_string(),
            effective_from: instant(r.effective_from_ms),
            effective_to: r.effective_to_ms.map(instant),
            created_at: instant(r.created_ms),
        };
        match &r.kind {
            RuleKind::Price {
                dimension,
                unit_price,
            } => {
                v.dimension = Some(dimension.to_string());
                v.unit_price = Some(*unit_price);
            }
            RuleKind::TierPremium { rate }
            | RuleKind::SlaCredit { rate }
            | RuleKind::ProfileDiscount { rate } => v.rate = Some(*rate),
            RuleKind::DemandMultiplier {
                min_load,
                multiplier,
            } => {
                v.min_load = Some(*min_load);
                v.multiplier = Some(*multiplier);
            }
        }
        v
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceRuleCreated {
    pub rule: PriceRuleView,
    /// Organisations whose effective price this rule changes (each told).
    pub price_changes: usize,
}

fn rule_from_request(
    req: PriceRuleRequest,
    customers: &[Customer],
    load_measured: bool,
    now: i64,
) -> ApiResult<PriceRule> {
    let currency: Currency = req.currency.parse().map_err(unprocessable)?;
    let scope = match (req.scope.as_str(), req.scope_ref) {
        ("default", None) => Scope::Default,
        ("default", Some(_)) => {
            return Err(unprocessable(
                "scope_ref is not taken with scope \"default\"",
            ));
        }
        ("tier", Some(t)) => Scope::Tier(t.parse::<Tier>().map_err(unprocessable)?),
        ("organization", Some(o)) => {
            let Some(who) = customers.iter().find(|c| c.org_id == o) else {
                return Err(ApiError::not_found("organization"));
            };
            if who.currency != currency {
                return Err(unprocessable(format!(
                    "currency mismatch: the organisation is billed in {}, the rule is in {currency}",
                    who.currency
                )));
            }
            Scope::Organization(o)
        }
        ("tier" | "organization", None) => {
            return Err(unprocessable(format!(
                "scope {:?} needs scope_ref",
                req.scope
            )));
        }
        (other, _) => {
            return Err(unprocessable(format!(
                "scope {other:?} is not one of: default, tier, organization"
            )));
        }
    };
    let need = |v: Option<Decimal>, field: &str| {
        v.ok_or_else(|| unprocessable(format!("kind {:?} needs {field}", req.kind)))
    };
    let kind = match req.kind.as_str() {
        "price" => {
            let dimension: Dimension = req
                .dimension
                .as_deref()
                .ok_or_else(|| unprocessable("kind \"price\" needs dimension"))?
                .parse()
                .map_err(unprocessable)?;
            RuleKind::Price {
                dimension,
                unit_price: need(req.unit_price, "unit_price")?,
            }
        }
        "tier_premium" => RuleKind::TierPremium {
            rate: need(req.rate, "rate")?,
        },
        "sla_credit" => RuleKind::SlaCredit {
            rate: need(req.rate, "rate")?,
        },
        "demand_multiplier" if !load_measured => {
            return Err(unprocessable(
                "kind \"demand_multiplier\" needs platform load, which this server does not \
                 measure: set HEADROOM_PLATFORM_CAPACITY_INSTANCES",
            ));
        }
        "demand_multiplier" => RuleKind::DemandMultiplier {
            min_load: need(req.min_load, "min_load")?,
            multiplier: need(req.multiplier, "multiplier")?,
        },
        "profile_discount" => RuleKind::ProfileDiscount {
            rate: need(req.rate, "rate")?,
        },
        other => {
            return Err(unprocessable(format!(
                "kind {other:?} is not one of: price, tier_premium, sla_credit, \
                 demand_multiplier, profile_discount"
            )));
        }
    };
    let earliest = next_hour(now);
    let from = req
        .effective_from
        .map_or(earliest, |t| t.timestamp_millis());
    if from < earliest {
        return Err(unprocessable(format!(
            "effective_from must not be before the next whole hour ({}): rated hours keep their prices",
            instant(earliest).to_rfc3339()
        )));
    }
    let rule = PriceRule {
        id: new_id(),
        scope,
        kind,
        currency,
        effective_from_ms: from,
        effective_to_ms: req.effective_to.map(|t| t.timestamp_millis()),
        created_ms: now,
    };
    rule.validate().map_err(unprocessable)?;
    Ok(rule)
}

/// Every pricing rule, oldest first (rules are never edited, only ended).
#[utoipa::path(get, path = "/api/v1/admin/price-rules", tag = "admin",
    security(("session" = [])),
    responses((status = 200, body = Vec<PriceRuleView>), (status = 403, body = ErrorBody)))]
pub async fn list_price_rules(
    State(state): State<AppState>,
    _admin: PlatformAdmin,
) -> ApiResult<Json<Vec<PriceRuleView>>> {
    Ok(Json(
        state
            .db
            .price_rules()
            .await?
            .iter()
            .map(Into::into)
            .collect(),
    ))
}

/// Adds a pricing rule from a future whole hour on. Every organisation whose
/// effective price it changes gets a price-change record and a notification.
#[utoipa::path(post, path = "/api/v1/admin/price-rules", tag = "admin", request_body = PriceRuleRequest,
    security(("session" = [])),
    responses((status = 201, body = PriceRuleCreated), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_price_rule(
    State(state): State<AppState>,
    PlatformAdmin(admin): PlatformAdmin,
    ApiJson(req): ApiJson<PriceRuleRequest>,
) -> ApiResult<(StatusCode, Json<PriceRuleCreated>)> {
    let now = now_ms();
    let customers = bill::customers(&state.db).await?;
    let rule = rule_from_request(req, &customers, state.platform_load_measured, now)?;
    let before = RuleBook::new(state.db.price_rules().await?);
    let mut all = before.rules().to_vec();
    all.push(rule.clone());
    let after = RuleBook::new(all);
    let changes = bill::rule_changes(&before, &after, &rule, rule.effective_from_ms, &customers);
    state
        .db
        .insert_price_rule(&rule, admin.user_id.as_deref(), &changes, now)
        .await?;
    let view = PriceRuleView::from(&rule);
    state
        .db
        .audit(
            &admin.actor(),
            AuditAction::PriceRuleCreated,
            Some(&rule.id),
            serde_json::to_value(&rule).ok(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PriceRuleCreated {
            rule: view,
            price_changes: changes.len(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndRuleRequest {
    /// A whole hour, not before the next one; default: the next whole hour.
    pub effective_to: Option<DateTime<Utc>>,
}

/// Ends a rule: it keeps pricing the hours before `effective_to`.
#[utoipa::path(post, path = "/api/v1/admin/price-rules/{id}/end", tag = "admin", request_body = EndRuleRequest,
    params(("id" = String, Path, description = "Rule id")),
    security(("session" = [])),
    responses((status = 200, body = PriceRuleView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn end_price_rule(
    State(state): State<AppState>,
    PlatformAdmin(admin): PlatformAdmin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EndRuleRequest>,
) -> ApiResult<Json<PriceRuleView>> {
    let now = now_ms();
    let earliest = next_hour(now);
    let to = req.effective_to.map_or(earliest, |t| t.timestamp_millis());
    if to < earliest || to % HOUR_MS != 0 {
        return Err(unprocessable(format!(
            "effective_to must be a whole hour from {} on: rated hours keep their prices",
            instant(earliest).to_rfc3339()
        )));
    }
    let before = RuleBook::new(state.db.price_rules().await?);
    let Some(rule) = before.rules().iter().find(|r| r.id == id).cloned() else {
        return Err(ApiError::not_found("price rule"));
    };
    if rule.effective_to_ms.is_some_and(|t| t <= to) {
        return Err(ApiError::conflict(format!(
            "the rule already ends at {}",
            instant(rule.effective_to_ms.unwrap_or_default()).to_rfc3339()
        )));
    }
    if to <= rule.effective_from_ms {
        return Err(unprocessable(
            "effective_to must be after the rule's effective_from",
        ));
    }
    let after = RuleBook::new(
        before
            .rules()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if r.id == id {
                    r.effective_to_ms = Some(to);
                }
                r
            })
            .collect(),
    );
    let customers = bill::customers(&state.db).await?;
    let changes = bill::rule_changes(&before, &after, &rule, to, &customers);
    let ended = state
        .db
        .end_price_rule(&id, to, &changes, now)
        .await?
        .ok_or_else(|| ApiError::not_found("price rule"))?;
    state
        .db
        .audit(
            &admin.actor(),
            AuditAction::PriceRuleEnded,
            Some(&id),
            Some(json!({ "effective_to": to })),
        )
        .await?;
    Ok(Json((&ended).into()))
}

// ---- prices and history (customers) ----

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    pub dimension: String,
    pub unit: String,
    #[schema(value_type = String)]
    pub unit_price: Decimal,
    pub rule_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PricesView {
    pub currency: String,
    pub as_of: DateTime<Utc>,
    pub prices: Vec<PriceView>,
    /// Share added to capacity charges for the organisation's tier.
    #[schema(value_type = String)]
    pub tier_premium: Decimal,
    /// Share of a workload-hour's capacity charge credited when demand
    /// exceeded the capacity in force.
    #[schema(value_type = String)]
    pub sla_credit: Decimal,
}

async fn customer(state: &AppState, tenant: &Tenant) -> ApiResult<Customer> {
    bill::customer(&state.db, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))
}

/// The prices in force for the caller's organisation now.
#[utoipa::path(get, path = "/api/v1/prices", tag = "billing",
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = PricesView), (status = 401, body = ErrorBody)))]
pub async fn current_prices(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<PricesView>> {
    caller.require_scope(KeyScope::Read)?;
    let who = customer(&state, &caller.tenant).await?;
    let book = RuleBook::new(state.db.price_rules().await?);
    let now = now_ms();
    let mut dims: Vec<&Dimension> = book
        .rules()
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::Price { dimension, .. } => Some(dimension),
            _ => None,
        })
        .collect();
    dims.sort();
    dims.dedup();
    let prices = dims
        .into_iter()
        .filter_map(|d| {
            book.unit_price(&who, d, now).map(|(p, r)| PriceView {
                dimension: d.to_string(),
                unit: d.unit().to_owned(),
                unit_price: p,
                rule_id: r.id.clone(),
            })
        })
        .collect();
    Ok(Json(PricesView {
        currency: who.currency.to_string(),
        as_of: instant(now),
        prices,
        tier_premium: book.tier_premium(&who, now),
        sla_credit: book.sla_credit(&who, now),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Default: 90 days ago.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive; default: far future (scheduled changes included).
    pub to: Option<DateTime<Utc>>,
    /// At most this many, newest first (default 200, max 1000).
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceChangeView {
    pub id: String,
    /// When the new price takes effect.
    pub at: DateTime<Utc>,
    /// A dimension (`resource:instance`), a modifier (`tier_premium`) or a
    /// workload's capacity run rate per hour (`run_rate:<workload>`).
    pub subject: String,
    #[schema(value_type = Option<String>)]
    pub old: Option<Decimal>,
    #[schema(value_type = Option<String>)]
    pub new: Option<Decimal>,
    pub currency: String,
    /// `rule` or `allocation`.
    pub reason: String,
    /// The rule (`<id>@<ms>`) or allocation decision behind it.
    pub cause: String,
}

impl From<PriceChange> for PriceChangeView {
    fn from(c: PriceChange) -> Self {
        Self {
            id: c.id,
            at: instant(c.at_ms),
            subject: c.subject,
            old: c.old_price,
            new: c.new_price,
            currency: c.currency.to_string(),
            reason: c.reason,
            cause: c.cause,
        }
    }
}

/// How the organisation's effective prices changed: rule changes (including
/// announced future ones) and capacity run-rate changes from allocations.
#[utoipa::path(get, path = "/api/v1/prices/history", tag = "billing", params(HistoryQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<PriceChangeView>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn price_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Vec<PriceChangeView>>> {
    caller.require_scope(KeyScope::Read)?;
    let from = q
        .from
        .map_or(now_ms() - 90 * 24 * HOUR_MS, |t| t.timestamp_millis());
    let to = q.to.map_or(i64::MAX, |t| t.timestamp_millis());
    if from >= to {
        return Err(ApiError::unprocessable("from must be before to"));
    }
    let limit = page_limit(q.limit, 200, 1000)?;
    let rows = state
        .db
        .price_history(&caller.tenant, from, to, limit)
        .await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

// ---- statements and estimates ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// `YYYY-MM` (UTC); default: the current month, rated up to now.
    pub period: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementLineView {
    pub dimension: String,
    pub unit: String,
    #[schema(value_type = String)]
    pub unit_price: Decimal,
    #[schema(value_type = String)]
    pub quantity: Decimal,
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub rule_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnpricedView {
    pub dimension: String,
    #[schema(value_type = String)]
    pub quantity: Decimal,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatementView {
    pub period: String,
    pub from: DateTime<Utc>,
    /// Exclusive: the period's end, or now for the current period.
    pub to: DateTime<Utc>,
    pub currency: String,
    pub lines: Vec<StatementLineView>,
    #[schema(value_type = String)]
    pub tier_premium: Decimal,
    #[schema(value_type = String)]
    pub demand_adjustment: Decimal,
    #[schema(value_type = String)]
    pub sla_credit: Decimal,
    #[schema(value_type = String)]
    pub profile_discount: Decimal,
    /// Lines + premium + demand − credit − discount, each rounded to cents.
    #[schema(value_type = String)]
    pub total: Decimal,
    /// Usage no rule prices: shown, not charged.
    pub unpriced: Vec<UnpricedView>,
}

fn statement_view(s: Statement, to_ms: i64) -> StatementView {
    StatementView {
        period: s.period.label(),
        from: instant(s.period.start_ms),
        to: instant(to_ms),
        currency: s.currency.to_string(),
        lines: s
            .lines
            .into_iter()
            .map(|l| StatementLineView {
                dimension: l.dimension.to_string(),
                unit: l.unit,
                unit_price: l.unit_price,
                quantity: l.quantity,
                amount: l.amount,
                rule_id: l.rule_id,
            })
            .collect(),
        tier_premium: s.tier_premium,
        demand_adjustment: s.demand_adjustment,
        sla_credit: s.sla_credit,
        profile_discount: s.profile_discount,
        total: s.total,
        unpriced: s
            .unpriced
            .into_iter()
            .map(|u| UnpricedView {
                dimension: u.dimension.to_string(),
                quantity: u.quantity,
            })
            .collect(),
    }
}

/// A period's charges, rated from the stored usage, capacity in force and
/// the rules of each hour: the same inputs always give the same total.
#[utoipa::path(get, path = "/api/v1/billing/statement", tag = "billing", params(StatementQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = StatementView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> ApiResult<Json<StatementView>> {
    caller.require_scope(KeyScope::Read)?;
    let now = now_ms();
    let period = match q.period.as_deref() {
        None => Period::month_of(now),
        Some(p) => Period::parse_month(p)
            .ok_or_else(|| ApiError::bad_request(format!("period must be YYYY-MM (got {p:?})")))?,
    };
    if period.start_ms > now {
        return Err(ApiError::bad_request("that period has not started"));
    }
    let who = customer(&state, &caller.tenant).await?;
    let book = RuleBook::new(state.db.price_rules().await?);
    let s = bill::statement(&state.db, &caller.tenant, &who, &book, period, now).await?;
    Ok(Json(statement_view(s, period.end_ms.min(now))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EstimateLineView {
    /// A resource, billable unit (`unit:…`) or micro-operation type (`microop:…`).
    pub dimension: String,
    #[schema(value_type = String)]
    pub actual: Decimal,
    #[schema(value_type = String)]
    pub low: Decimal,
    #[schema(value_type = String)]
    pub expected: Decimal,
    #[schema(value_type = String)]
    pub high: Decimal,
}

/// The projected invoice for the current period with a 90 % interval.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstimateView {
    pub period: String,
    pub currency: String,
    pub as_of: DateTime<Utc>,
    /// Rated so far (whole hours up to now).
    #[schema(value_type = String)]
    pub actual: Decimal,
    #[schema(value_type = String)]
    pub low: Decimal,
    #[schema(value_type = String)]
    pub expected: Decimal,
    #[schema(value_type = String)]
    pub high: Decimal,
    pub lines: Vec<EstimateLineView>,
    /// How the rest of the period is projected.
    pub method: String,
    /// The monthly budget cap the projection is held against, when one is set
    /// (as `GET /api/v1/budget-cap` answers it).
    pub budget_cap: Option<BudgetCapView>,
}

fn estimate_view(e: Estimate, budget_cap: Option<BudgetCapView>) -> EstimateView {
    EstimateView {
        budget_cap,
        period: e.period.label(),
        currency: e.currency.to_string(),
        as_of: instant(e.as_of_ms),
        actual: e.actual,
        low: e.low,
        expected: e.expected,
        high: e.high,
        lines: e
            .lines
            .into_iter()
            .map(|l| EstimateLineView {
                dimension: l.dimension.to_string(),
                actual: l.actual,
                low: l.low,
                expected: l.expected,
                high: l.high,
            })
            .collect(),
        method: "the rest of the period: each workload the controller runs through a provider \
                 follows the fleet its \
                 hourly demand forecast calls for (p10/p50/p90 of demand ÷ units per instance × \
                 target, within its bounds) where the forecast reaches; every other series \
                 (usage type, micro-operation type, resource, other capacity) its mean per hour \
                 over the last 7 days with a 90 % band for the sum; each future hour rated with \
                 the rules it will have. Per-hour quantiles are summed, so the band is wide \
                 rather than narrow"
            .into(),
    }
}

/// The current period's projected invoice, broken down by resource, billable
/// unit and micro-operation type.
#[utoipa::path(get, path = "/api/v1/billing/estimate", tag = "billing",
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = EstimateView), (status = 401, body = ErrorBody)))]
pub async fn billing_estimate(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<EstimateView>> {
    caller.require_scope(KeyScope::Read)?;
    let who = customer(&state, &caller.tenant).await?;
    let book = RuleBook::new(state.db.price_rules().await?);
    let e = bill::projected_invoice(&state.db, &caller.tenant, &who, &book, now_ms()).await?;
    let cap = cap_view(&state, &caller.tenant).await?;
    Ok(Json(estimate_view(e, cap)))
}

// ---- budget caps ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetCapRequest {
    /// Per calendar month, a decimal string in the organisation's currency.
    #[schema(value_type = String, example = "2500.00")]
    pub amount: Decimal,
    #[schema(value_type = String, example = "usd")]
    pub currency: String,
    /// `notify` (tell at 50/80/100 %), `reduce` (scale up only as far as the
    /// cap allows) or `block` (refuse scale-ups that would pass it).
    pub action: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetCapView {
    #[schema(value_type = String)]
    pub amount: Decimal,
    pub currency: String,
    pub action: String,
    pub updated_at: DateTime<Utc>,
    /// Thresholds (percent) already announced this period.
    pub announced: Vec<u8>,
}

/// The cap as shown, `None` when none is set.
async fn cap_view(state: &AppState, tenant: &Tenant) -> ApiResult<Option<BudgetCapView>> {
    let Some(cap) = state.db.budget_cap(tenant).await? else {
        return Ok(None);
    };
    let announced = state
        .db
        .announced_thresholds(tenant, &Period::month_of(now_ms()).label())
        .await?;
    Ok(Some(BudgetCapView {
        amount: cap.amount,
        currency: cap.currency.to_string(),
        action: headroom_jobs::allocate::label(&cap.action),
        updated_at: instant(cap.updated_ms),
        announced,
    }))
}

/// The organisation's monthly budget cap.
#[utoipa::path(get, path = "/api/v1/budget-cap", tag = "billing",
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = BudgetCapView), (status = 404, body = ErrorBody)))]
pub async fn get_budget_cap(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<BudgetCapView>> {
    caller.require_scope(KeyScope::Read)?;
    cap_view(&state, &caller.tenant)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("budget cap"))
}

/// Sets the monthly budget cap (owners and admins, or keys with `admin`).
#[utoipa::path(put, path = "/api/v1/budget-cap", tag = "billing", request_body = BudgetCapRequest,
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 200, body = BudgetCapView), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_budget_cap(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BudgetCapRequest>,
) -> ApiResult<Json<BudgetCapView>> {
    caller.require_scope(KeyScope::Admin)?;
    let who = customer(&state, &caller.tenant).await?;
    let currency: Currency = req.currency.parse().map_err(unprocessable)?;
    if currency != who.currency {
        return Err(unprocessable(format!(
            "currency mismatch: the organisation is billed in {}, not {currency}",
            who.currency
        )));
    }
    if req.amount <= Decimal::ZERO || req.amount > Decimal::from(1_000_000_000_000i64) {
        return Err(unprocessable("amount must be positive (and below 10^12)"));
    }
    let action: CapAction = serde_json::from_value(json!(req.action)).map_err(|_| {
        unprocessable(format!(
            "action {:?} is not one of: notify, reduce, block",
            req.action
        ))
    })?;
    let cap = StoredCap {
        amount: req.amount,
        currency,
        action,
        updated_ms: now_ms(),
    };
    state.db.set_budget_cap(&caller.tenant, &cap).await?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::BudgetCapChanged,
            None,
            Some(json!({ "amount": cap.amount, "currency": currency, "action": req.action })),
        )
        .await?;
    cap_view(&state, &caller.tenant)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::internal("the budget cap just set is not there"))
}

/// Removes the budget cap.
#[utoipa::path(delete, path = "/api/v1/budget-cap", tag = "billing",
    security(("api_key" = ["admin"]), ("session" = [])),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_budget_cap(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    caller.require_scope(KeyScope::Admin)?;
    if !state.db.delete_budget_cap(&caller.tenant).await? {
        return Err(ApiError::not_found("budget cap"));
    }
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::BudgetCapChanged,
            None,
            Some(json!({ "removed": true })),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
