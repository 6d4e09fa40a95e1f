//! The allocation job: on each tick, every workload the controller acts for
//! gets one decision from the allocation policy, made from its latest demand
//! and allocation-horizon forecast, and logged with the inputs it saw. A
//! retried tick decides nothing twice (one decision per workload and slot).
//!
//! A decision to change the fleet is logged as `pending` before its command is
//! sent, then marked `applied` or `failed`, so an outage never loses one.
//! Providers: `cgroup` (CPU quota, one instance = one core, on this machine)
//! and `none` (logged with status `no_provider`, nothing commanded). Before
//! deciding, the cgroup in force is compared with the fleet on record and
//! repaired if it drifted.

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use headroom_core::allocate::Budget;
use headroom_core::allocate::{Bounds, ControllerState, Fleet, Inputs, Mode, PolicyConfig, decide};
use headroom_core::billing::{Customer, Decimal, RuleBook};
use headroom_core::forecast::{Horizon, Step};
use headroom_store::allocation::{StoredDecision, StoredSettings};
use headroom_store::billing::{NewNotification, PriceChange};
use serde_json::json;
use std::collections::HashMap;

use crate::billing;
use headroom_store::{Db, Tenant};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::providers::cgroup::{CgroupError, Cgroups};

/// The controller's step: the allocation horizon's.
pub const STEP_MS: i64 = 300_000;

/// Retries of a failed provider command within one tick (the next tick
/// decides again from the fleet on record).
const COMMAND_RETRIES: usize = 3;

/// CPU cores one instance stands for with the cgroup provider.
pub const CORES_PER_INSTANCE: f64 = 1.0;

/// The readiness score a workload's decision sees: the chance a billable
/// event of its type arrives within this many seconds.
pub const READINESS_WITHIN_SECS: f64 = 60.0;

#[derive(Debug, Clone)]
pub struct AllocateJob {
    pub db: Db,
    /// The cgroup provider, when configured (or why it cannot be used).
    pub cgroups: Option<Result<Cgroups, String>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickSummary {
    pub workloads: usize,
    /// Decisions logged this tick.
    pub decided: usize,
    /// Of which changed the fleet (or would have, in forecast-only mode).
    pub changed: usize,
    /// Already decided for this slot (a retried tick).
    pub repeated: usize,
}

pub async fn run(tick: Tick, ctx: Data<AllocateJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    let s = allocate_all(&ctx.db, ctx.cgroups.as_ref(), now_ms).await?;
    metrics::counter!("headroom_allocation_decisions_total").increment(s.decided as u64);
    tracing::info!(
        workloads = s.workloads,
        decided = s.decided,
        changed = s.changed,
        repeated = s.repeated,
        "allocation tick finished"
    );
    Ok(())
}

pub fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "off" => Some(Mode::Off),
        "forecast_only" => Some(Mode::ForecastOnly),
        "on" => Some(Mode::On),
        _ => None,
    }
}

/// As its API and log name (`snake_case`).
pub fn label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One tick for every controlled workload as of `now_ms`.
pub async fn allocate_all(
    db: &Db,
    cgroups: Option<&Result<Cgroups, String>>,
    now_ms: i64,
) -> Result<TickSummary, BoxDynError> {
    let mut summary = TickSummary::default();
    let mut money = TickMoney::load(db).await?;
    for (tenant, settings) in db.controlled_workloads().await? {
        summary.workloads += 1;
        match allocate_one(db, cgroups, &mut money, &tenant, &settings, now_ms).await {
            Ok(Some(changed)) => {
                summary.decided += 1;
                summary.changed += usize::from(changed);
            }
            Ok(None) => summary.repeated += 1,
            // One workload's bad data must not stop the others.
            Err(e) => tracing::error!(
                organization = tenant.id(),
                workload = settings.workload,
                error = %e,
                "allocation decision failed"
            ),
        }
    }
    Ok(summary)
}

/// What a tick knows of prices and budgets: rules and customers read once,
/// each organisation's budget worked out on first use.
struct TickMoney {
    book: RuleBook,
    customers: HashMap<String, Customer>,
    budgets: HashMap<String, Option<Budget>>,
}

impl TickMoney {
    async fn load(db: &Db) -> Result<Self, BoxDynError> {
        Ok(Self {
            book: RuleBook::new(db.price_rules().await?),
            customers: billing::customers(db)
                .await?
                .into_iter()
                .map(|c| (c.org_id.clone(), c))
                .collect(),
            budgets: HashMap::new(),
        })
    }

    async fn budget(
        &mut self,
        db: &Db,
        tenant: &Tenant,
        now_ms: i64,
    ) -> Result<Option<Budget>, BoxDynError> {
        if let Some(b) = self.budgets.get(tenant.id()) {
            return Ok(*b);
        }
        let b = match self.customers.get(tenant.id()) {
            Some(who) => {
                billing::budget_for_controller(db, tenant, who, &self.book, now_ms).await?
            }
            None => None,
        };
        self.budgets.insert(tenant.id().to_owned(), b);
        Ok(b)
    }

    /// Records what a fleet change does to the workload's hourly run rate,
    /// and tells the customer about the decision.
    async fn announce(
        &self,
        db: &Db,
        tenant: &Tenant,
        d: &StoredDecision,
        status: &str,
        now_ms: i64,
    ) -> Result<(), BoxDynError> {
        let note = NewNotification {
            kind: "allocation_decision",
            title: format!(
                "{}: {} → {} instances ({status})",
                d.workload, d.before, d.after
            ),
            body: json!({
                "decision_id": d.id, "workload": d.workload, "before": d.before, "after": d.after,
                "reason": d.reason, "status": status, "mode": d.mode,
            }),
        };
        db.notify(tenant, &note, now_ms).await?;
        let Some(who) = self.customers.get(tenant.id()) else {
            return Ok(());
        };
        if status != "applied" {
            return Ok(());
        }
        let Some(per_hour) = billing::instance_hour_price(&self.book, who, now_ms) else {
            return Ok(());
        };
        let (old, new) = (
            per_hour * Decimal::from(d.before),
            per_hour * Decimal::from(d.after),
        );
        let change = PriceChange {
            id: String::new(),
            at_ms: now_ms,
            subject: format!("run_rate:{}", d.workload),
            old_price: Some(old),
            new_price: Some(new),
            currency: who.currency,
            reason: "allocation".into(),
            cause: d.id.clone(),
        };
        let note = NewNotification {
            kind: "price_change",
            title: format!(
                "{}: capacity now costs {} {}/hour (was {})",
                d.workload,
                new.round_dp(4).normalize(),
                who.currency,
                old.round_dp(4).normalize()
            ),
            body: json!({
                "subject": change.subject, "old": old, "new": new, "currency": who.currency,
                "reason": "allocation", "decision_id": d.id,
            }),
        };
        db.record_price_change(tenant, &change, Some(&note), now_ms)
            .await?;
        Ok(())
    }
}

/// Forecast steps from the one that starts after `now_ms` on, in instance
/// units, with the model version; empty when the forecast is stale.
async fn forecast_from_now(
    db: &Db,
    tenant: &Tenant,
    s: &StoredSettings,
    now_ms: i64,
) -> Result<(Vec<Step>, Option<String>), BoxDynError> {
    let stored = db.latest_forecasts(tenant, &s.workload).await?;
    let Some(f) = stored
        .into_iter()
        .find(|f| f.metric == s.metric && f.horizon == Horizon::Allocation.as_str())
    else {
        return Ok((Vec::new(), None));
    };
    let steps: Vec<Step> = serde_json::from_str(&f.steps_json)?;
    let step_ms = f.step_secs.max(1) * 1000;
    // Step h starts at origin + h × step, so the one in progress is h = elapsed
    // and a scale-up lands in h = elapsed + 1 (index elapsed): the policy's h = 1.
    let elapsed = usize::try_from((now_ms - f.origin_ms).max(0) / step_ms).unwrap_or(usize::MAX);
    let per = s.units_per_instance;
    let steps = steps
        .into_iter()
        .skip(elapsed)
        .map(|st| Step::ordered(st.p10 / per, st.p50 / per, st.p90 / per))
        .collect();
    Ok((steps, Some(f.model_version)))
}

/// Returns whether the fleet changed, or `None` when this slot was decided.
async fn allocate_one(
    db: &Db,
    cgroups: Option<&Result<Cgroups, String>>,
    money: &mut TickMoney,
    tenant: &Tenant,
    s: &StoredSettings,
    now_ms: i64,
) -> Result<Option<bool>, BoxDynError> {
    let mode = parse_mode(&s.mode).ok_or_else(|| format!("unknown mode {:?}", s.mode))?;
    let bounds = Bounds::new(
        u32::try_from(s.min_instances)?,
        u32::try_from(s.max_instances)?,
    )?;
    let cfg = PolicyConfig {
        target: s.target,
        ..PolicyConfig::default()
    };
    // Finish what an interrupted tick started before deciding anew; the
    // settings are read again since that may change the fleet on record.
    let reread;
    let s = if let Some(id) = redrive_pending(db, cgroups, tenant, s).await? {
        tracing::warn!(
            organization = tenant.id(),
            workload = s.workload,
            decision = id,
            "finished a decision left pending"
        );
        reread = db
            .allocation_settings(tenant, &s.workload)
            .await?
            .ok_or("the workload's settings disappeared")?;
        &reread
    } else {
        s
    };
    let repaired = reconcile(cgroups, tenant, s);
    if let Some(note) = &repaired {
        tracing::warn!(organization = tenant.id(), workload = s.workload, "{note}");
    }
    let mut state = match &s.state_json {
        Some(j) => serde_json::from_str(j)?,
        None => ControllerState::new(&cfg),
    };
    let observed = db
        .recent_mean(tenant, &s.workload, &s.metric, now_ms - STEP_MS, now_ms)
        .await?
        .map(|v| v / s.units_per_instance);
    let (forecast, version) = forecast_from_now(db, tenant, s, now_ms).await?;
    let commanded = u32::try_from(s.commanded)?;
    let budget = money.budget(db, tenant, now_ms).await?;
    let readiness = match &s.readiness_event {
        Some(t) => Some(
            crate::readiness::score(db, tenant, t, now_ms, READINESS_WITHIN_SECS)
                .await?
                .0,
        ),
        None => None,
    };
    let decision = decide(
        &cfg,
        &mut state,
        &Inputs {
            observed,
            forecast: &forecast,
            readiness,
            priority: s.priority,
            // Without provider feedback the commanded fleet is taken as serving.
            fleet: Fleet {
                in_force: commanded,
                commanded,
            },
            bounds,
            budget,
            mode,
        },
    );
    let changed = decision.after != decision.before;
    let (status, mut detail) = match (decision.execute, s.provider.as_str()) {
        (false, _) => ("logged", None),
        (true, "none") => (
            "no_provider",
            Some("no provider is configured for this workload: nothing was commanded".to_owned()),
        ),
        (true, _) => ("pending", None),
    };
    if let Some(note) = &repaired {
        detail = Some(note.clone());
    }
    let row = StoredDecision {
        id: headroom_store::new_id(),
        workload: s.workload.clone(),
        source: "controller".into(),
        slot: now_ms.div_euclid(STEP_MS),
        decided_ms: now_ms,
        mode: s.mode.clone(),
        before: i32::try_from(decision.before)?,
        after: i32::try_from(decision.after)?,
        warm: i32::try_from(decision.warm)?,
        reason: label(&decision.reason),
        limits_json: serde_json::to_string(&decision.limits)?,
        observed: observed.map(|v| v * s.units_per_instance),
        sized_for: decision.sized_for.map(|v| v * s.units_per_instance),
        forecast_version: version,
        status: status.into(),
        command_id: headroom_store::new_id(),
        detail,
    };
    let state_json = serde_json::to_string(&state)?;
    // Logged first (fleet unchanged): a retried tick finds it and sends nothing.
    let inserted = db
        .record_decision(tenant, &row, Some(&state_json), s.commanded, None)
        .await?;
    if !inserted {
        return Ok(None);
    }
    let status = if status == "pending" {
        finish(db, cgroups, tenant, s, &row).await?
    } else {
        status
    };
    // Fleets that really changed, or a command that failed. Logged decisions
    // (forecast-only, no provider) leave the fleet as it is, so they would
    // repeat every tick; they stay in the decision log.
    if (changed && status == "applied") || status == "failed" {
        // The decision stands whatever becomes of its announcement.
        if let Err(e) = money.announce(db, tenant, &row, status, now_ms).await {
            tracing::warn!(organization = tenant.id(), workload = s.workload, error = %e, "decision not announced");
        }
    }
    Ok(Some(changed))
}

/// Sends a logged decision's command (retried with backoff) and records how
/// it ended.
async fn finish(
    db: &Db,
    cgroups: Option<&Result<Cgroups, String>>,
    tenant: &Tenant,
    s: &StoredSettings,
    d: &StoredDecision,
) -> Result<&'static str, BoxDynError> {
    let instances = u32::try_from(d.after)?;
    let attempts = AtomicU32::new(0);
    let sent = (|| async {
        attempts.fetch_add(1, Ordering::Relaxed);
        execute(cgroups, tenant, s, instances)
    })
    .retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(COMMAND_RETRIES)
            .with_jitter(),
    )
    // A provider that is missing or misconfigured will not heal in seconds.
    .when(|e: &CommandError| e.transient)
    .await;
    let tries = attempts.load(Ordering::Relaxed);
    let (status, detail, commanded) = match sent {
        Ok(()) => ("applied", None, d.after),
        Err(e) => (
            "failed",
            Some(format!(
                "{} ({tries} attempt{})",
                e.message,
                if tries == 1 { "" } else { "s" }
            )),
            s.commanded,
        ),
    };
    db.finish_decision(
        tenant,
        &s.workload,
        &d.id,
        status,
        detail.as_deref(),
        commanded,
    )
    .await?;
    Ok(status)
}

/// A decision left `pending` by a worker that stopped between logging it and
/// finishing it is carried out now, unless a later decision superseded it.
async fn redrive_pending(
    db: &Db,
    cgroups: Option<&Result<Cgroups, String>>,
    tenant: &Tenant,
    s: &StoredSettings,
) -> Result<Option<String>, BoxDynError> {
    let latest = db
        .allocation_decisions(tenant, Some(&s.workload), 1)
        .await?;
    let Some(d) = latest.into_iter().next() else {
        return Ok(None);
    };
    if d.status != "pending" {
        return Ok(None);
    }
    finish(db, cgroups, tenant, s, &d).await?;
    Ok(Some(d.id))
}

fn cgroup_provider(cgroups: Option<&Result<Cgroups, String>>) -> Result<&Cgroups, String> {
    match cgroups {
        Some(Ok(cg)) => Ok(cg),
        Some(Err(e)) => Err(format!("the cgroup provider is unavailable: {e}")),
        None => Err("the cgroup provider is not enabled on this server".to_owned()),
    }
}

/// Why a provider command failed, and whether trying again may help.
#[derive(Debug)]
struct CommandError {
    message: String,
    transient: bool,
}

/// Sends the command for `instances` to the workload's provider.
fn execute(
    cgroups: Option<&Result<Cgroups, String>>,
    tenant: &Tenant,
    s: &StoredSettings,
    instances: u32,
) -> Result<(), CommandError> {
    let permanent = |message| CommandError {
        message,
        transient: false,
    };
    match s.provider.as_str() {
        "cgroup" => {
            let cg = cgroup_provider(cgroups).map_err(permanent)?;
            let group = s.provider_ref.as_deref().unwrap_or_default();
            let failed = |e: CgroupError| CommandError {
                transient: matches!(e, CgroupError::Io { .. }),
                message: e.to_string(),
            };
            let instances = instances.max(1);
            cg.set_cpu(
                tenant.id(),
                group,
                f64::from(instances) * CORES_PER_INSTANCE,
            )
            .map_err(failed)?;
            if let Some(bytes) = memory_bytes(s, instances) {
                cg.set_memory(tenant.id(), group, bytes).map_err(failed)?;
            }
            Ok(())
        }
        other => Err(permanent(format!(
            "provider {other:?} is not available in this build"
        ))),
    }
}

/// Compares what the provider has in force with the fleet on record and
/// re-applies the record when they differ; says what it repaired.
/// The memory limit for a fleet, when the workload sets one per instance.
fn memory_bytes(s: &StoredSettings, instances: u32) -> Option<u64> {
    let mib = u64::try_from(s.memory_mib_per_instance?).ok()?;
    mib.checked_mul(1 << 20)?.checked_mul(u64::from(instances))
}

fn reconcile(
    cgroups: Option<&Result<Cgroups, String>>,
    tenant: &Tenant,
    s: &StoredSettings,
) -> Option<String> {
    if s.provider != "cgroup" || s.mode != "on" {
        return None;
    }
    let cg = cgroup_provider(cgroups).ok()?;
    let group = s.provider_ref.as_deref().unwrap_or_default();
    let want = f64::from(s.commanded.max(1)) * CORES_PER_INSTANCE;
    let (found, memory) = match cg.in_force(tenant.id(), group) {
        Ok(f) => (f.cpu_cores, f.memory_bytes),
        Err(e) => return Some(format!("could not read the group in force: {e}")),
    };
    let want_memory = memory_bytes(s, u32::try_from(s.commanded.max(1)).unwrap_or(1));
    if want_memory.is_some() && memory != want_memory {
        let bytes = want_memory.unwrap_or_default();
        return Some(match cg.set_memory(tenant.id(), group, bytes) {
            Ok(()) => format!(
                "repaired drift: memory limit {memory:?} in force, {bytes} bytes re-applied"
            ),
            Err(e) => {
                format!("memory drift ({memory:?} in force, {bytes} on record) not repaired: {e}")
            }
        });
    }
    if found.is_some_and(|c| (c - want).abs() < 1e-6) {
        return None;
    }
    let found = found.map_or("no limit".to_owned(), |c| format!("{c} cores"));
    Some(match cg.set_cpu(tenant.id(), group, want) {
        Ok(()) => format!("repaired drift: {found} in force, {want} cores on record re-applied"),
        Err(e) => format!("drift ({found} in force, {want} on record) not repaired: {e}"),
    })
}
