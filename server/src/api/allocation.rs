//! Allocation settings per workload, the decision log, and suggestions from
//! the customer's application.

use crate::api::error::page_limit;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use headroom_core::accounts::{AuditAction, Scope};
use headroom_core::allocate::suggestion::{SuggestionError, accept};
use headroom_core::allocate::{Bounds, ControllerState};
use headroom_core::telemetry::{validate_metric, validate_workload};
use headroom_jobs::allocate::parse_mode;
use headroom_store::allocation::{DecisionCursor, StoredDecision, StoredSettings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::api::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody};
use crate::api::forecasts::instant;
use crate::auth::Caller;
use crate::http::AppState;

/// Largest fleet a workload may be given.
const MAX_INSTANCES: u32 = 100_000;
/// Accepted suggestions per workload at most this often.
const SUGGESTION_INTERVAL_SECS: i64 = 60;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationSettingsRequest {
    /// The metric that measures the workload's demand (as sent to `/metrics`).
    pub metric: String,
    /// How much of that metric one instance serves at 100 % (e.g. 100 for
    /// "100 requests/s per instance"; 100 for CPU % of one instance).
    pub units_per_instance: f64,
    /// `off`, `forecast_only` (decisions logged, nothing executed) or `on`.
    pub mode: String,
    pub min_instances: u32,
    pub max_instances: u32,
    /// Utilisation an instance may reach at the upper quantile of demand, (0, 1].
    #[serde(default = "default_target")]
    pub target: f64,
    /// Priority of this workload's capacity (1 = normal), 0 to 100.
    #[serde(default = "one")]
    pub priority: f64,
    /// Instances running now; on creation defaults to `min_instances`.
    pub instances: Option<u32>,
    /// `none` (decisions are logged, nothing is commanded) or, where the
    /// server enables them, `cgroup` (processes on the server's machine, one
    /// instance = one CPU core of quota) and `aws` (an EC2 Auto Scaling
    /// group: desired capacity, bounds, warm pool, instance type, spot).
    #[serde(default = "none")]
    pub provider: String,
    /// With `cgroup`: the group's name (letters, digits, `-`, `_`, `.`); it
    /// lives under the organisation's own directory. With `aws`: the Auto
    /// Scaling group's name; the group must carry the tag
    /// `headroom:organization` = the organisation's id.
    pub provider_ref: Option<String>,
    /// A usage-event type whose readiness score (the chance one arrives
    /// within a minute) pre-allocates capacity: from 0.8, score × priority
    /// instances on top of what demand calls for.
    pub readiness_event: Option<String>,
    /// Memory each instance may use, MiB (with `cgroup`: a memory limit of
    /// instances × this, applied with the CPU quota).
    pub memory_mib_per_instance: Option<u32>,
    /// With `cgroup`: egress bandwidth each instance may use, Mbit/s (the
    /// group's traffic on the server's configured device is shaped to
    /// instances × this with `tc`; needs `HEADROOM_CGROUP_NET_DEVICE`).
    pub network_mbit_per_instance: Option<u32>,
    /// With `aws`: the instance type the group should launch (e.g.
    /// `m7g.large`); a change makes a new launch template version.
    pub instance_type: Option<String>,
    /// With `aws`: buy spot capacity when the spot price history makes it at
    /// least 20 % cheaper, interruptions priced in (needs `instance_type` and
    /// `on_demand_usd_per_hour`). AWS keeps no warm pool beside spot.
    #[serde(default)]
    pub allow_spot: bool,
    /// With `aws` and `allow_spot`: the on-demand price of one instance-hour
    /// of `instance_type`, US dollars.
    pub on_demand_usd_per_hour: Option<f64>,
}

fn default_target() -> f64 {
    0.7
}
fn one() -> f64 {
    1.0
}
fn none() -> String {
    "none".to_owned()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionOut {
    pub id: String,
    pub workload: String,
    /// `controller` (a scheduled tick) or `suggestion`.
    pub source: String,
    pub decided_at: DateTime<Utc>,
    pub mode: String,
    pub before: i32,
    pub after: i32,
    /// Warm (stopped, ready) instances wanted beside `after`.
    pub warm: i32,
    pub reason: String,
    /// Limits that cut the decision short (bounds, budget, clamped suggestion).
    #[schema(value_type = Vec<Object>)]
    pub limits: serde_json::Value,
    /// Demand measured over the last step, in the workload's metric.
    pub observed: Option<f64>,
    /// Demand the capacity was sized for (the upper quantile), same unit.
    pub sized_for: Option<f64>,
    pub forecast_version: Option<String>,
    /// `logged`, `no_provider`, `pending`, `applied` or `failed`.
    pub status: String,
    pub command_id: String,
    pub detail: Option<String>,
    /// Whether demand exceeded the fleet in force (`before`) at this tick:
    /// billing counts such ticks against the SLA. Null for suggestions and
    /// for decisions logged before this was recorded.
    pub missed: Option<bool>,
}

impl From<StoredDecision> for DecisionOut {
    fn from(d: StoredDecision) -> Self {
        Self {
            id: d.id,
            workload: d.workload,
            source: d.source,
            decided_at: instant(d.decided_ms),
            mode: d.mode,
            before: d.before,
            after: d.after,
            warm: d.warm,
            reason: d.reason,
            limits: serde_json::from_str(&d.limits_json).unwrap_or_default(),
            observed: d.observed,
            sized_for: d.sized_for,
            forecast_version: d.forecast_version,
            status: d.status,
            command_id: d.command_id,
            detail: d.detail,
            missed: d.missed,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationOut {
    pub workload: String,
    pub metric: String,
    pub units_per_instance: f64,
    pub mode: String,
    pub min_instances: i32,
    pub max_instances: i32,
    pub target: f64,
    pub priority: f64,
    pub provider: String,
    pub provider_ref: Option<String>,
    pub readiness_event: Option<String>,
    pub memory_mib_per_instance: Option<i64>,
    pub network_mbit_per_instance: Option<i32>,
    pub instance_type: Option<String>,
    pub allow_spot: bool,
    pub on_demand_usd_per_hour: Option<f64>,
    /// Instances commanded, as last known.
    pub instances: i32,
    /// Warm (stopped, ready) instances commanded beside them.
    pub warm: i32,
    /// Controller ticks scored against measured demand, and those that found
    /// demand above the capacity in force.
    pub ticks_scored: u64,
    pub ticks_under_provisioned: u64,
    pub updated_at: DateTime<Utc>,
    pub last_decision: Option<DecisionOut>,
}

fn settings_out(s: StoredSettings, last: Option<StoredDecision>) -> AllocationOut {
    let state = ControllerState::restore(
        s.controller.state.as_deref(),
        s.controller.state_json.as_deref(),
    )
    .ok()
    .flatten();
    AllocationOut {
        workload: s.workload,
        metric: s.metric,
        units_per_instance: s.units_per_instance,
        mode: s.mode,
        min_instances: s.min_instances,
        max_instances: s.max_instances,
        target: s.target,
        priority: s.priority,
        provider: s.provider,
        provider_ref: s.provider_ref,
        readiness_event: s.readiness_event,
        memory_mib_per_instance: s.memory_mib_per_instance,
        network_mbit_per_instance: s.network_mbit_per_instance,
        instance_type: s.instance_type,
        allow_spot: s.allow_spot,
        on_demand_usd_per_hour: s.on_demand_micros_per_hour.map(|m| m as f64 / 1e6),
        instances: s.commanded,
        warm: s.warm_commanded,
        ticks_scored: state.as_ref().map_or(0, |s| s.scored),
        ticks_under_provisioned: state.as_ref().map_or(0, |s| s.misses),
        updated_at: instant(s.updated_ms),
        last_decision: last.map(Into::into),
    }
}

fn unprocessable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(e.to_string())
}

/// An Auto Scaling group name as AWS accepts it: 1–255 characters, no
/// control characters.
fn check_group_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(unprocessable(
            "provider_ref: the Auto Scaling group's name, 1 to 255 characters",
        ));
    }
    Ok(())
}

/// The AWS-only settings make sense together and only with `aws`; returns
/// the on-demand price in micro-dollars.
fn check_aws_fields(req: &AllocationSettingsRequest) -> Result<Option<i64>, ApiError> {
    let aws = req.provider == "aws";
    if !aws
        && (req.instance_type.is_some() || req.allow_spot || req.on_demand_usd_per_hour.is_some())
    {
        return Err(unprocessable(
            "instance_type, allow_spot and on_demand_usd_per_hour apply to provider \"aws\" only",
        ));
    }
    if aws && req.memory_mib_per_instance.is_some() {
        return Err(unprocessable(
            "memory_mib_per_instance applies to provider \"cgroup\" only (with \"aws\" the instance type sets it)",
        ));
    }
    if aws && req.network_mbit_per_instance.is_some() {
        return Err(unprocessable(
            "network_mbit_per_instance applies to provider \"cgroup\" only (with \"aws\" the instance type sets it)",
        ));
    }
    if let Some(t) = &req.instance_type {
        // AWS's names: family, generation and size, e.g. m7g.large, u-6tb1.metal.
        let ok = (3..=40).contains(&t.len())
            && t.contains('.')
            && t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
        if !ok {
            return Err(unprocessable(format!(
                "instance_type {t:?} is not an EC2 instance type such as \"m7g.large\""
            )));
        }
    }
    let price = match req.on_demand_usd_per_hour {
        None => None,
        Some(p) if p.is_finite() && p > 0.0 && p <= 1_000.0 => Some((p * 1e6).round() as i64),
        Some(_) => {
            return Err(unprocessable(
                "on_demand_usd_per_hour must be a price above 0 and at most 1000",
            ));
        }
    };
    if req.allow_spot && (req.instance_type.is_none() || price.is_none()) {
        return Err(unprocessable(
            "allow_spot needs instance_type and on_demand_usd_per_hour (what spot prices are weighed against)",
        ));
    }
    Ok(price)
}

/// Creates or changes how the controller treats a workload.
#[utoipa::path(put, path = "/api/v1/workloads/{workload}/allocation", tag = "allocation",
    params(("workload" = String, Path, description = "Workload name as sent with its metrics")),
    request_body = AllocationSettingsRequest,
    security(("api_key" = ["write"]), ("session" = [])),
    responses((status = 200, body = AllocationOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_allocation(
    State(state): State<AppState>,
    caller: Caller,
    Path(workload): Path<String>,
    ApiJson(req): ApiJson<AllocationSettingsRequest>,
) -> ApiResult<Json<AllocationOut>> {
    caller.require_scope(Scope::Write)?;
    validate_workload(&workload).map_err(unprocessable)?;
    validate_metric(&req.metric).map_err(unprocessable)?;
    if parse_mode(&req.mode).is_none() {
        return Err(unprocessable(format!(
            "mode {:?} is not one of: off, forecast_only, on",
            req.mode
        )));
    }
    let bounds = Bounds::new(req.min_instances, req.max_instances).map_err(unprocessable)?;
    if bounds.max > MAX_INSTANCES {
        return Err(unprocessable(format!(
            "max_instances may be at most {MAX_INSTANCES}"
        )));
    }
    if !(req.units_per_instance.is_finite() && req.units_per_instance > 0.0) {
        return Err(unprocessable(
            "units_per_instance must be a positive number",
        ));
    }
    if !(req.target.is_finite() && req.target > 0.0 && req.target <= 1.0) {
        return Err(unprocessable("target must be in (0, 1]"));
    }
    if !(req.priority.is_finite() && (0.0..=100.0).contains(&req.priority)) {
        return Err(unprocessable("priority must be between 0 and 100"));
    }
    match req.provider.as_str() {
        "none" => {}
        "cgroup" if state.cgroup_provider => {
            let name = req.provider_ref.as_deref().unwrap_or_default();
            headroom_jobs::providers::cgroup::check_name(name)
                .map_err(|e| unprocessable(format!("provider_ref: {e}")))?;
        }
        "aws" if state.aws_provider => {
            let name = req.provider_ref.as_deref().unwrap_or_default();
            check_group_name(name)?;
        }
        "cgroup" | "aws" => {
            return Err(unprocessable(format!(
                "provider {:?} is not enabled on this server ({})",
                req.provider,
                if req.provider == "aws" {
                    "HEADROOM_AWS_PROVIDER"
                } else {
                    "HEADROOM_CGROUP_MOUNT"
                }
            )));
        }
        other => {
            return Err(unprocessable(format!(
                "provider {other:?} is not available: \"none\" or, where enabled, \"cgroup\" or \"aws\""
            )));
        }
    }
    let on_demand_micros_per_hour = check_aws_fields(&req)?;
    if let Some(t) = &req.readiness_event {
        headroom_core::telemetry::validate_name("readiness_event", t, 100)
            .map_err(unprocessable)?;
    }
    if req
        .memory_mib_per_instance
        .is_some_and(|m| !(16..=4_194_304).contains(&m))
    {
        return Err(unprocessable(
            "memory_mib_per_instance must be between 16 and 4194304 (4 TiB)",
        ));
    }
    if req
        .network_mbit_per_instance
        .is_some_and(|m| !(1..=400_000).contains(&m))
    {
        return Err(unprocessable(
            "network_mbit_per_instance must be between 1 and 400000 (400 Gbit/s)",
        ));
    }
    if let Some(n) = req.instances
        && n > MAX_INSTANCES
    {
        return Err(unprocessable(format!(
            "instances may be at most {MAX_INSTANCES}"
        )));
    }
    let existing = state
        .db
        .allocation_settings(&caller.tenant, &workload)
        .await?;
    let commanded = match (req.instances, &existing) {
        (Some(n), _) => Some(n as i32),
        (None, None) => Some(bounds.min as i32),
        (None, Some(_)) => None,
    };
    let stored = StoredSettings {
        workload: workload.clone(),
        metric: req.metric,
        units_per_instance: req.units_per_instance,
        mode: req.mode,
        min_instances: bounds.min as i32,
        max_instances: bounds.max as i32,
        target: req.target,
        priority: req.priority,
        provider: req.provider,
        provider_ref: req.provider_ref,
        commanded: commanded.unwrap_or_default(),
        controller: Default::default(),
        last_suggestion_ms: None,
        updated_ms: Utc::now().timestamp_millis(),
        readiness_event: req.readiness_event,
        memory_mib_per_instance: req.memory_mib_per_instance.map(i64::from),
        instance_type: req.instance_type,
        allow_spot: req.allow_spot,
        on_demand_micros_per_hour,
        warm_commanded: existing.as_ref().map_or(0, |e| e.warm_commanded),
        network_mbit_per_instance: req.network_mbit_per_instance.map(|m| m as i32),
    };
    state
        .db
        .upsert_allocation_settings(&caller.tenant, &stored, commanded)
        .await?;
    let details = json!({
        "metric": stored.metric, "mode": stored.mode, "min_instances": stored.min_instances,
        "max_instances": stored.max_instances, "target": stored.target,
        "priority": stored.priority, "instances": commanded,
    });
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::AllocationSettingsChanged,
            Some(&workload),
            Some(details),
        )
        .await?;
    get_one(&state, &caller, &workload).await.map(Json)
}

async fn get_one(state: &AppState, caller: &Caller, workload: &str) -> ApiResult<AllocationOut> {
    let settings = state
        .db
        .allocation_settings(&caller.tenant, workload)
        .await?
        .ok_or_else(|| ApiError::not_found("workload allocation"))?;
    let last = state.db.last_decision(&caller.tenant, &settings).await?;
    Ok(settings_out(settings, last))
}

/// A workload's allocation settings, fleet, measured outcomes and last decision.
#[utoipa::path(get, path = "/api/v1/workloads/{workload}/allocation", tag = "allocation",
    params(("workload" = String, Path, description = "Workload name")),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = AllocationOut), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_allocation(
    State(state): State<AppState>,
    caller: Caller,
    Path(workload): Path<String>,
) -> ApiResult<Json<AllocationOut>> {
    caller.require_scope(Scope::Read)?;
    get_one(&state, &caller, &workload).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AllocationListQuery {
    /// Only workloads named after this one (the last of the previous page).
    pub after: Option<String>,
    /// At most this many, by name (default 50, at most 200).
    pub limit: Option<u64>,
}

/// The organisation's workloads under allocation settings, by name, each
/// with its fleet, measured outcomes and last decision.
#[utoipa::path(get, path = "/api/v1/allocations", tag = "allocation",
    params(AllocationListQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<AllocationOut>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_allocations(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AllocationListQuery>,
) -> ApiResult<Json<Vec<AllocationOut>>> {
    caller.require_scope(Scope::Read)?;
    let limit = page_limit(q.limit, 50, 200)?;
    let settings = state
        .db
        .allocation_settings_page(&caller.tenant, q.after.as_deref(), Some(limit))
        .await?;
    let mut out = Vec::with_capacity(settings.len());
    for s in settings {
        let last = state.db.last_decision(&caller.tenant, &s).await?;
        out.push(settings_out(s, last));
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DecisionQuery {
    /// Only this workload.
    pub workload: Option<String>,
    /// Only decisions made at or after this time: RFC 3339 or unix seconds.
    pub since: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u64>,
    /// The next page: only decisions older than the last one of the previous
    /// page; give its `decided_at` here and its `id` as `before_id` (without
    /// `before_id`, decisions made before this time).
    pub before: Option<String>,
    pub before_id: Option<String>,
}

/// The decision log, newest first: every decision with what it saw and why.
#[utoipa::path(get, path = "/api/v1/allocation-decisions", tag = "allocation",
    params(DecisionQuery),
    security(("api_key" = ["read"]), ("session" = [])),
    responses((status = 200, body = Vec<DecisionOut>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_decisions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DecisionQuery>,
) -> ApiResult<Json<Vec<DecisionOut>>> {
    caller.require_scope(Scope::Read)?;
    let limit = page_limit(q.limit, 100, 1000)?;
    let since = match &q.since {
        Some(raw) => Some(crate::api::ingest::instant("since", raw)?),
        None => None,
    };
    let before = match (&q.before, q.before_id.clone()) {
        (Some(raw), id) => Some(DecisionCursor {
            decided_ms: crate::api::ingest::instant("before", raw)?,
            id,
        }),
        (None, Some(_)) => {
            return Err(unprocessable(
                "before_id needs before (the decided_at of that decision)",
            ));
        }
        (None, None) => None,
    };
    let rows = state
        .db
        .allocation_decisions_page(
            &caller.tenant,
            q.workload.as_deref(),
            since,
            before.as_ref(),
            limit,
        )
        .await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestionRequest {
    /// Instances the application would like.
    pub instances: u32,
    /// Why, in a few words (kept in the decision log), at most 200 characters.
    #[serde(default)]
    pub reason: String,
}

/// The application suggests a fleet size: taken within the workload's bounds,
/// at most doubling or halving, once a minute; logged and audited. With a
/// provider and mode `on` it is `pending` until the controller's next tick
/// carries it out (the controller then keeps deciding from its forecasts).
#[utoipa::path(post, path = "/api/v1/workloads/{workload}/suggestions", tag = "allocation",
    params(("workload" = String, Path, description = "Workload name")),
    request_body = SuggestionRequest,
    security(("api_key" = ["write"]), ("session" = [])),
    responses((status = 200, body = DecisionOut), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn suggest(
    State(state): State<AppState>,
    caller: Caller,
    Path(workload): Path<String>,
    ApiJson(req): ApiJson<SuggestionRequest>,
) -> ApiResult<Json<DecisionOut>> {
    caller.require_scope(Scope::Write)?;
    if req.reason.chars().count() > 200 {
        return Err(unprocessable("reason may be at most 200 characters"));
    }
    let settings = state
        .db
        .allocation_settings(&caller.tenant, &workload)
        .await?
        .ok_or_else(|| ApiError::not_found("workload allocation"))?;
    if settings.mode == "off" {
        return Err(ApiError::conflict(format!(
            "allocation is off for workload {workload:?}: suggestions are not taken"
        )));
    }
    let bounds = Bounds::new(
        settings.min_instances.max(0) as u32,
        settings.max_instances.max(0) as u32,
    )
    .map_err(ApiError::internal)?;
    let before = settings.commanded.max(0) as u32;
    let now = Utc::now();
    let accepted = accept(
        bounds,
        before,
        req.instances,
        settings.last_suggestion_ms.map(|ms| ms / 1000),
        now.timestamp(),
        SUGGESTION_INTERVAL_SECS,
    )
    .map_err(|e| match e {
        SuggestionError::TooSoon { retry_after, .. } => {
            ApiError::rate_limited(std::time::Duration::from_secs(retry_after.max(1) as u64))
        }
    })?;
    let execute = settings.mode == "on" && accepted.after != before;
    // The provider is driven by the worker: it carries out a pending
    // decision at its next tick, before deciding anew.
    let (status, detail) = match (execute, settings.provider.as_str()) {
        (false, _) => ("logged", None),
        (true, "none") => (
            "no_provider",
            Some(headroom_store::allocation::NO_PROVIDER_DETAIL.to_owned()),
        ),
        (true, _) => (
            "pending",
            Some("carried out at the controller's next tick".to_owned()),
        ),
    };
    let now_ms = now.timestamp_millis();
    let row = StoredDecision {
        id: headroom_store::new_id(),
        workload: workload.clone(),
        source: "suggestion".into(),
        slot: now_ms,
        decided_ms: now_ms,
        mode: settings.mode.clone(),
        before: before as i32,
        after: accepted.after as i32,
        // The warm pool stays as the controller last set it.
        warm: settings.warm_commanded,
        reason: "suggested".into(),
        limits_json: if accepted.clamped {
            r#"["clamped"]"#.into()
        } else {
            "[]".into()
        },
        observed: None,
        sized_for: None,
        forecast_version: None,
        status: status.into(),
        command_id: headroom_store::new_id(),
        detail: Some(match detail {
            Some(d) if !req.reason.is_empty() => format!("{}; {d}", req.reason),
            Some(d) => d,
            None => req.reason.clone(),
        })
        .filter(|d| !d.is_empty()),
        // Not a controller tick: nothing to count against the SLA.
        missed: None,
    };
    state
        .db
        .record_decision(&caller.tenant, &row, settings.commanded, Some(now_ms))
        .await?;
    state
        .db
        .audit(
            &caller.actor(),
            AuditAction::AllocationSuggested,
            Some(&workload),
            Some(
                json!({ "instances": req.instances, "accepted": accepted.after,
                "clamped": accepted.clamped, "reason": req.reason }),
            ),
        )
        .await?;
    Ok(Json(row.into()))
}
