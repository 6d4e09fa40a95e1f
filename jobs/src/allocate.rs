//! The allocation job: on each tick, every workload the controller acts for
//! gets one decision from the allocation policy, made from its latest demand
//! and allocation-horizon forecast, and logged with the inputs it saw. A
//! retried tick decides nothing twice (one decision per workload and slot).
//!
//! A decision to change the fleet is logged as `pending` before its command is
//! sent, then marked `applied` or `failed`, so an outage never loses one.
//! Providers (see [`crate::providers`]): `cgroup` (CPU quota, one instance =
//! one core, on this machine), `aws` (an Auto Scaling group) and `none`
//! (logged with status `no_provider`, nothing commanded). Before deciding,
//! what the provider has in force is compared with the record and repaired if
//! it drifted.
//!
//! Controller states stay in the worker between ticks and are stored every
//! few ticks ([`crate::kept_states`]); so do the settings of every controlled
//! workload, read again only where they were written since
//! ([`crate::kept_settings`]).

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use headroom_core::allocate::Budget;
use headroom_core::allocate::{Bounds, ControllerState, Fleet, Inputs, Mode, PolicyConfig, decide};
use headroom_core::billing::{Customer, Decimal, RuleBook};
use headroom_core::forecast::{Horizon, Step};
use headroom_store::allocation::{
    DecisionWrite, StoredDecision, StoredSettings, StoredState, TickInputs, TickWorkload,
};
use headroom_store::billing::{NewNotification, PriceChange, StoredCap};
use headroom_store::forecasts::StoredForecast;
use serde_json::json;
use std::collections::HashMap;

use crate::billing;
use crate::forecast::last_closed_step;
use crate::handover::Handover;
use crate::kept_settings::KeptSettings;
use crate::kept_states::{InOrder, Kept, KeptStates, StateKey, States, checkpoint_due, split_at};
use crate::on_cores;
use headroom_store::{Db, StoreError, Tenant};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::providers::aws::Query;
use crate::providers::{Desired, InForce, ProviderError, Providers};
use headroom_core::allocate::spot::{self, Purchase, SpotInputs};

/// The controller's step: the allocation horizon's.
pub const STEP_MS: i64 = 300_000;
// The store finds a decision's group from its time by the same step.
const _: () = assert!(STEP_MS == headroom_store::billing::TICK_MS);

/// Retries of a failed provider command within one tick (the next tick
/// decides again from the fleet on record).
const COMMAND_RETRIES: usize = 3;

/// Spot prices of this many hours back are weighed.
const SPOT_HISTORY_HOURS: u32 = 7 * 24;
/// Interruptions per spot instance-hour assumed: about one a month per
/// instance, more pessimistic than the worst band AWS's advisor publishes.
const SPOT_INTERRUPTIONS_PER_HOUR: f64 = 0.001;
/// Spot must be at least this much cheaper, all risk counted.
const SPOT_MIN_SAVING: f64 = 0.2;

/// The readiness score a workload's decision sees: the chance a billable
/// event of its type arrives within this many seconds.
pub const READINESS_WITHIN_SECS: f64 = 60.0;

#[derive(Debug, Clone)]
pub struct AllocateJob {
    pub db: Db,
    pub providers: Providers,
    pub memory: std::sync::Arc<TickMemory>,
}

/// What a worker keeps between its ticks ([`allocate_all_kept`]).
#[derive(Debug, Default)]
pub struct TickMemory {
    /// Controller states.
    pub states: KeptStates,
    /// Every controlled workload's settings.
    pub settings: KeptSettings,
    /// What the forecast job of this process hands over.
    pub handover: std::sync::Arc<Handover>,
}

impl TickMemory {
    /// Keeping up to `states` controller states, and taking what `handover`
    /// is handed.
    pub fn new(states: usize, handover: std::sync::Arc<Handover>) -> Self {
        Self {
            states: KeptStates::new(states),
            settings: KeptSettings::new(),
            handover,
        }
    }
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
    /// Controller states read from the database (not kept by the worker).
    pub states_read: usize,
    /// Controller states stored with their decision (checkpoints).
    pub states_stored: usize,
    /// Workloads decided from the demand and forecast the forecast job of
    /// this process handed over (the others' were read).
    pub handed: usize,
    /// Workloads whose settings were read (all of them on a worker's first
    /// tick; after that, those written since the tick before).
    pub settings_read: usize,
    /// Slots of states another worker stored since the tick before, read
    /// with the settings.
    pub states_noted: usize,
}

pub async fn run(tick: Tick, ctx: Data<AllocateJob>) -> Result<(), BoxDynError> {
    let now_ms = i64::try_from(tick.get_timestamp())?.saturating_mul(1000);
    let s = allocate_all_kept(&ctx.db, &ctx.providers, &ctx.memory, now_ms).await?;
    metrics::counter!("headroom_allocation_decisions_total").increment(s.decided as u64);
    // How the kept states serve: reads mean restarts or another replica
    // deciding; stores should stay near a twelfth of the workloads.
    metrics::counter!("headroom_allocation_states_read_total").increment(s.states_read as u64);
    metrics::counter!("headroom_allocation_states_stored_total").increment(s.states_stored as u64);
    metrics::gauge!("headroom_allocation_states_kept").set(ctx.memory.states.len() as f64);
    metrics::counter!("headroom_allocation_settings_read_total").increment(s.settings_read as u64);
    metrics::counter!("headroom_allocation_inputs_handed_total").increment(s.handed as u64);
    tracing::info!(
        workloads = s.workloads,
        decided = s.decided,
        changed = s.changed,
        repeated = s.repeated,
        states_read = s.states_read,
        states_stored = s.states_stored,
        handed = s.handed,
        settings_read = s.settings_read,
        states_noted = s.states_noted,
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

/// One tick for every controlled workload as of `now_ms`, keeping nothing
/// between calls: each workload's settings and state are read, and its
/// state stored with its decision (as a worker with no room to keep states
/// does).
pub async fn allocate_all(
    db: &Db,
    providers: &Providers,
    now_ms: i64,
) -> Result<TickSummary, BoxDynError> {
    allocate_all_kept(db, providers, &TickMemory::default(), now_ms).await
}

/// One tick for every controlled workload as of `now_ms`, with the settings
/// and states `memory` kept from earlier ticks (keeping this tick's there),
/// and the inputs its handover holds for this tick's step.
///
/// Each workload is decided from its demand over the last closed step (the
/// step its newest forecast was made from) and that forecast. The settings
/// written since the last tick, and the inputs not handed over, are read for
/// all workloads at once ([`Db::tick_settings_since`], [`Db::tick_inputs`]),
/// every decision is logged in bulk before any command is sent
/// ([`Db::record_decisions`]), then the commands go out.
pub async fn allocate_all_kept(
    db: &Db,
    providers: &Providers,
    memory: &TickMemory,
    now_ms: i64,
) -> Result<TickSummary, BoxDynError> {
    let states = &memory.states;
    let mut summary = TickSummary::default();
    let slot = now_ms.div_euclid(STEP_MS);
    let kept = states.take();
    let started = std::time::Instant::now();
    // Each read timed on its own (they run at once).
    let ((money, prices_ms), (settings, settings_ms)) = futures::future::join(
        async {
            let at = std::time::Instant::now();
            (TickMoney::load(db).await, at.elapsed().as_millis())
        },
        async {
            let at = std::time::Instant::now();
            (
                memory.settings.take_current(db).await,
                at.elapsed().as_millis(),
            )
        },
    )
    .await;
    let (money, (settings, settings_read, states_noted)) = (money?, settings?);
    summary.settings_read = settings_read;
    summary.states_noted = states_noted;
    let money_ms = started.elapsed().as_millis();
    // The step whose demand is measured: its start is the origin of the
    // newest forecast that can exist.
    let step = last_closed_step(Horizon::Allocation, now_ms);
    let mut handed = memory.handover.take_all();
    let TickInputs {
        mut workloads,
        mut pending,
    } = db
        .tick_inputs(
            settings.settings(),
            (step, step + STEP_MS),
            Horizon::Allocation.as_str(),
            |tenant, s| {
                let h = handed.take((tenant.id(), &s.workload, &s.metric), step)?;
                summary.handed += 1;
                Some((h.demand, h.forecast))
            },
        )
        .await?;
    memory.settings.put(settings);
    // What was not taken, and the maps emptied by taking (one per workload):
    // freed on the other core.
    tokio::task::spawn_blocking(move || drop(handed));
    summary.workloads = workloads.len();
    let read_ms = started.elapsed().as_millis();
    let in_force = aws_in_force(providers, &workloads).await;
    let provider_ms = started.elapsed().as_millis() - read_ms;
    let ctx = TickContext {
        db,
        providers,
        now_ms,
    };
    let gathered = gather(&ctx, &money, &mut pending, in_force, &mut workloads).await;
    let gathered_ms = started.elapsed().as_millis();
    let capacity = states.capacity();
    let (mut planned, mut unread, mut undecided) = tokio::task::spawn_blocking(move || {
        prepare_and_conclude(workloads, kept, &gathered, capacity, now_ms)
    })
    .await?;
    // States this worker does not keep (every state, after a restart): read
    // in bulk, then decided.
    if !unread.is_empty() {
        summary.states_read = read_stored_states(db, &mut unread).await?;
        let (more, failed) =
            tokio::task::spawn_blocking(move || conclude_all(unread, now_ms)).await?;
        planned.extend(more);
        // Two runs in the workloads' order, merged.
        planned.sort_by_key(|p| p.order);
        undecided.extend(failed);
    }
    for u in undecided {
        tracing::error!(
            organization = u.tenant.id(),
            workload = u.workload,
            error = %u.error,
            "allocation decision failed"
        );
    }
    // Logged with the fleet unchanged (carrying a decision out changes it):
    // a retried tick finds the decision and sends nothing.
    let writes: Vec<DecisionWrite<'_>> = planned
        .iter()
        .map(|p| DecisionWrite {
            tenant: &p.tenant,
            decision: &p.row,
            state: p.checkpoint.as_deref(),
        })
        .collect();
    let planned_ms = started.elapsed().as_millis();
    let writer = Some(memory.settings.writer());
    let inserted = db.record_decisions_as(&writes, writer).await?;
    drop(writes);
    // The kept settings read no slot of a state this worker stored.
    memory.settings.note_stored(
        planned
            .iter()
            .zip(&inserted)
            .filter(|(p, new)| **new && p.checkpoint.is_some())
            .map(|(p, _)| (p.tenant.id(), p.row.workload.as_str(), p.row.slot)),
    );
    let logged_ms = started.elapsed().as_millis();
    let mut kept: States = Vec::with_capacity(planned.len().min(capacity));
    for (p, new) in planned.iter_mut().zip(inserted) {
        if new && p.checkpoint.is_some() {
            summary.states_stored += 1;
        }
        if !new {
            // A state whose decision was already logged has learnt this
            // slot twice: the stored one serves next time.
            summary.repeated += 1;
            // A repair this retried tick made is a command too: it goes on
            // the slot's decision.
            if let Some(note) = &p.repaired {
                let note = format!("retried tick: {note}");
                if let Err(e) = db
                    .append_decision_note(
                        &p.tenant,
                        &p.row.workload,
                        &p.row.source,
                        p.row.slot,
                        &note,
                    )
                    .await
                {
                    tracing::warn!(organization = p.tenant.id(), workload = p.row.workload, error = %e, "repair not noted on the decision");
                }
            }
            continue;
        }
        summary.decided += 1;
        summary.changed += usize::from(p.changed);
        if let Err(e) = carry_out(db, providers, &money, p, now_ms).await {
            tracing::error!(
                organization = p.tenant.id(),
                workload = p.settings.workload,
                error = %e,
                "allocation decision not carried out"
            );
        }
        if let Some(state) = p.state.take().filter(|_| p.keep) {
            // Nothing reads the decision's names after this: taken, not
            // copied. Pushed in the order decided, which is key order.
            let workload = std::mem::take(&mut p.row.workload);
            let org = std::mem::replace(&mut p.tenant, Tenant::new(String::new())).into_id();
            kept.push(((org, workload), Kept { state, slot }));
        }
    }
    // Freeing 100,000 decisions takes one core tens of milliseconds: the
    // other core does it while the tick finishes.
    tokio::task::spawn_blocking(move || drop(planned));
    // Where a tick's time goes, for whoever sizes the worker.
    tracing::debug!(
        workloads = summary.workloads,
        settings_and_prices_ms = money_ms,
        settings_ms,
        prices_ms,
        read_ms = read_ms - money_ms,
        settings_read = summary.settings_read,
        provider_read_ms = provider_ms,
        gather_ms = gathered_ms - read_ms - provider_ms,
        decide_ms = planned_ms - gathered_ms,
        log_ms = logged_ms - planned_ms,
        command_ms = started.elapsed().as_millis() - logged_ms,
        states_read = summary.states_read,
        states_stored = summary.states_stored,
        "allocation tick phases"
    );
    states.put(kept);
    Ok(summary)
}

/// Where a workload's state comes from this tick.
enum StateSource {
    /// Kept by this worker since the decision of that slot.
    Kept(ControllerState, i64),
    /// As stored, once read ([`read_stored_states`]).
    Stored(StoredState),
    /// Not known yet: to be read.
    Unread,
}

/// The kept state when it is at least as new as the stored one (whose slot
/// the tick read with the settings), else the stored one: to be read, unless
/// the settings were read whole. (None stored with a slot: a new workload,
/// settings deleted and made again, or a state an earlier version stored.)
fn choose_state(mine: Option<Kept>, s: &mut StoredSettings) -> StateSource {
    let stored = &mut s.controller;
    match (mine, stored.slot) {
        (Some(k), Some(at)) if k.slot >= at => StateSource::Kept(k.state, k.slot),
        // Settings read again whole (after finishing a pending decision).
        _ if stored.is_present() => StateSource::Stored(StoredState {
            state: stored.state.take(),
            state_json: stored.state_json.take(),
            slot: stored.slot,
        }),
        _ => StateSource::Unread,
    }
}

/// Reads the stored states the tick needs, in bulk; how many.
async fn read_stored_states(db: &Db, prepared: &mut [Box<Prepared>]) -> Result<usize, BoxDynError> {
    let keys: Vec<(&str, &str)> = prepared
        .iter()
        .filter(|p| matches!(p.state, StateSource::Unread))
        .map(|p| (p.tenant.id(), p.settings.workload.as_str()))
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    let mut stored = db.controller_states(&keys).await?;
    let n = keys.len();
    for p in prepared.iter_mut() {
        if matches!(p.state, StateSource::Unread) {
            let key: StateKey = (p.tenant.id().to_owned(), p.settings.workload.clone());
            // Gone since the settings were read: starts afresh.
            p.state = StateSource::Stored(stored.remove(&key).unwrap_or_default());
        }
    }
    Ok(n)
}

/// What a tick knows of prices and budget caps: rules, customers and caps
/// read once.
struct TickMoney {
    book: RuleBook,
    customers: HashMap<String, Customer>,
    /// By organisation id.
    caps: HashMap<String, StoredCap>,
}

impl TickMoney {
    async fn load(db: &Db) -> Result<Self, BoxDynError> {
        let (rules, customers, caps) =
            futures::try_join!(db.price_rules(), billing::customers(db), db.budget_caps())?;
        Ok(Self {
            book: RuleBook::new(rules),
            customers: customers
                .into_iter()
                .map(|c| (c.org_id.clone(), c))
                .collect(),
            caps,
        })
    }

    /// The organisation's budget as the controller weighs it (`None`: no
    /// customer, or no cap); the database is asked only under a cap.
    async fn budget(
        &self,
        db: &Db,
        tenant: &Tenant,
        now_ms: i64,
    ) -> Result<Option<Budget>, BoxDynError> {
        let (Some(who), Some(cap)) = (self.customers.get(tenant.id()), self.caps.get(tenant.id()))
        else {
            return Ok(None);
        };
        Ok(Some(
            billing::budget_under_cap(db, tenant, who, &self.book, cap, now_ms).await?,
        ))
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
                "reason": d.reason, "status": status, "mode": d.mode, "detail": d.detail,
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

/// Forecast steps from the one in progress at `now_ms` on, in instance units
/// (`per` units an instance), with the model version; empty without a
/// forecast.
fn forecast_from_now(
    stored: Option<&StoredForecast>,
    per: f64,
    now_ms: i64,
) -> (Vec<Step>, Option<String>) {
    let Some(f) = stored else {
        return (Vec::new(), None);
    };
    let step_ms = f.step_secs.max(1) * 1000;
    // Step h starts at origin + h × step (the origin starts the last step the
    // forecast saw), so the one in progress is h = elapsed, index elapsed - 1:
    // the policy's h = 1, as in the replay, where what is decided after row t
    // serves row t + 1. Capacity decided now serves the rest of this step, and
    // the next tick scores this step's forecast against this step's demand
    // (the one it measures, closed by then).
    let elapsed = usize::try_from((now_ms - f.origin_ms).max(0) / step_ms).unwrap_or(usize::MAX);
    let steps = f
        .steps
        .steps()
        .skip(elapsed.saturating_sub(1))
        .map(|st| Step::ordered(st.p10 / per, st.p50 / per, st.p90 / per))
        .collect();
    (steps, Some(f.model_version.clone()))
}

/// A workload's decision for this tick, made but not yet logged.
struct Planned {
    /// The workload's place in the tick's order.
    order: usize,
    tenant: Tenant,
    settings: StoredSettings,
    row: StoredDecision,
    /// The controller state it leaves (taken when kept).
    state: Option<ControllerState>,
    /// That state encoded, when it is stored with the decision.
    checkpoint: Option<Vec<u8>>,
    /// Whether the worker keeps the state.
    keep: bool,
    /// The forecast from now on, in instances (how long new capacity is needed).
    forecast: Vec<Step>,
    target: f64,
    before: u32,
    changed: bool,
    /// What reconciliation repaired (or failed to) before deciding.
    repaired: Option<String>,
}

/// What the AWS provider has in force for the tick's AWS workloads that are
/// `on`, read in batches (a hundred groups a call) before anyone decides; by
/// (organisation id, workload). Empty without the provider: each workload's
/// own read then says why.
async fn aws_in_force(
    providers: &Providers,
    workloads: &[TickWorkload],
) -> HashMap<(String, String), Result<InForce, ProviderError>> {
    let Ok(aws) = providers.aws() else {
        return HashMap::new();
    };
    let (keys, queries): (Vec<_>, Vec<_>) = workloads
        .iter()
        .map(|w| (&w.tenant, &w.settings))
        .filter(|(_, s)| s.provider == "aws" && s.mode == "on")
        .map(|(t, s)| {
            (
                (t.id().to_owned(), s.workload.clone()),
                Query {
                    tenant: t.id(),
                    name: s.provider_ref.as_deref().unwrap_or_default(),
                    instance_type: s.instance_type.is_some(),
                },
            )
        })
        .unzip();
    if queries.is_empty() {
        return HashMap::new();
    }
    keys.into_iter()
        .zip(aws.in_force_many(&queries).await)
        .collect()
}

/// What the tick's I/O before deciding shares ([`gather`]).
struct TickContext<'a> {
    db: &'a Db,
    providers: &'a Providers,
    now_ms: i64,
}

/// A workload's inputs, ready for the pure decision ([`conclude`]).
struct Prepared {
    /// The workload's place in the tick's order.
    order: usize,
    tenant: Tenant,
    settings: StoredSettings,
    mode: Mode,
    bounds: Bounds,
    cfg: PolicyConfig,
    repaired: Option<String>,
    observed: Option<f64>,
    /// Unreadable: recorded as a failed decision when it is decided (what
    /// was left pending is still carried out first).
    forecast: Result<Option<StoredForecast>, StoreError>,
    budget: Option<Budget>,
    readiness: Option<f64>,
    state: StateSource,
    /// Whether the worker keeps the state after this tick.
    keep: bool,
}

/// What deciding needs from the database or a provider, worked out before
/// the workloads are prepared and decided on every core ([`gather`]). Errors
/// are kept as text: each workload they concern fails with it.
#[derive(Debug, Default)]
struct Gathered {
    /// Each organisation's budget.
    budgets: HashMap<String, Result<Option<Budget>, String>>,
    /// Readiness scores, by organisation, then event type.
    readiness: HashMap<String, HashMap<String, Result<f64, String>>>,
    /// By the workload's place in the tick's order, for the workloads a
    /// provider or a decision left pending needed I/O for: what was repaired
    /// (see [`reconcile`]), or why finishing or repairing failed.
    before: HashMap<usize, Result<Option<String>, String>>,
}

/// Works out, one at a time, what needs I/O before deciding: each
/// organisation's budget and readiness scores (once each), and for the few
/// workloads that need it, the decision an interrupted tick left pending
/// (carried out, the settings read again into `workloads`) and what drifted
/// at the provider (repaired). `in_force` is what the provider had in force
/// when the tick began, where it was read in a batch.
async fn gather(
    ctx: &TickContext<'_>,
    money: &TickMoney,
    pending: &mut HashMap<(String, String), StoredDecision>,
    mut in_force: HashMap<(String, String), Result<InForce, ProviderError>>,
    workloads: &mut [TickWorkload],
) -> Gathered {
    let (db, now_ms) = (ctx.db, ctx.now_ms);
    let mut g = Gathered::default();
    let mut last_org: Option<String> = None;
    for (order, w) in workloads.iter_mut().enumerate() {
        // Few are pending (what an interrupted tick left), and most ticks
        // have nothing in force to compare (no AWS workload).
        let key = || (w.tenant.id().to_owned(), w.settings.workload.clone());
        let left = (!pending.is_empty())
            .then(|| pending.remove(&key()))
            .flatten();
        if left.is_some() || reconciled(&w.settings) {
            let found = (!in_force.is_empty())
                .then(|| in_force.remove(&key()))
                .flatten();
            let done = before_deciding(ctx, left, found, w).await;
            g.before.insert(order, done.map_err(|e| e.to_string()));
        }
        // Workloads come by organisation: one lookup per run of them.
        if last_org.as_deref() != Some(w.tenant.id()) {
            if !g.budgets.contains_key(w.tenant.id()) {
                let b = money.budget(db, &w.tenant, now_ms).await;
                g.budgets
                    .insert(w.tenant.id().to_owned(), b.map_err(|e| e.to_string()));
            }
            last_org = Some(w.tenant.id().to_owned());
        }
        if let Some(event) = &w.settings.readiness_event {
            let known = g
                .readiness
                .get(w.tenant.id())
                .is_some_and(|scores| scores.contains_key(event));
            if !known {
                let p =
                    crate::readiness::score(db, &w.tenant, event, now_ms, READINESS_WITHIN_SECS)
                        .await
                        .map(|(p, _)| p)
                        .map_err(|e| e.to_string());
                g.readiness
                    .entry(w.tenant.id().to_owned())
                    .or_default()
                    .insert(event.clone(), p);
            }
        }
    }
    g
}

/// Whether reconciliation may need the provider ([`reconcile`]).
fn reconciled(s: &StoredSettings) -> bool {
    s.provider != "none" && s.mode == "on"
}

/// Carries out what an interrupted tick `left` pending for `w` (then reads
/// its settings again: that may change the fleet on record) and repairs
/// what drifted at its provider; says what it repaired. `found` is what the
/// provider had in force when the tick began, when it was read in a batch.
async fn before_deciding(
    ctx: &TickContext<'_>,
    left: Option<StoredDecision>,
    found: Option<Result<InForce, ProviderError>>,
    w: &mut TickWorkload,
) -> Result<Option<String>, BoxDynError> {
    let (db, providers) = (ctx.db, ctx.providers);
    let mut found = found;
    if let Some(d) = left {
        // Carrying it out changes what is in force: read again below.
        found = None;
        // The forecast it was sized from is gone: one step is assumed.
        let hours = STEP_MS as f64 / 3_600_000.0;
        finish(db, providers, &w.tenant, &w.settings, &d, hours).await?;
        tracing::warn!(
            organization = w.tenant.id(),
            workload = w.settings.workload,
            decision = d.id,
            "finished a decision left pending"
        );
        w.settings = db
            .allocation_settings(&w.tenant, &w.settings.workload)
            .await?
            .ok_or("the workload's settings disappeared")?;
    }
    let repaired = reconcile(providers, &w.tenant, &w.settings, found).await;
    if let Some(note) = &repaired {
        tracing::warn!(
            organization = w.tenant.id(),
            workload = w.settings.workload,
            "{note}"
        );
    }
    Ok(repaired)
}

/// One workload's inputs, from the tick's read and what was gathered for
/// it (no I/O). `order` is its place in the tick's order.
fn prepare(order: usize, w: TickWorkload, g: &Gathered) -> Result<Box<Prepared>, Undecided> {
    let TickWorkload {
        tenant,
        settings: s,
        mean,
        forecast,
    } = w;
    let known = |e: &String| -> BoxDynError { e.clone().into() };
    let checked = (|| -> Result<_, BoxDynError> {
        let repaired = match (!g.before.is_empty())
            .then(|| g.before.get(&order))
            .flatten()
        {
            None => None,
            Some(done) => done.as_ref().map_err(known)?.clone(),
        };
        let mode = parse_mode(&s.mode).ok_or_else(|| format!("unknown mode {:?}", s.mode))?;
        let bounds = Bounds::new(
            u32::try_from(s.min_instances)?,
            u32::try_from(s.max_instances)?,
        )?;
        // A budget not worked out is an error, never taken as no cap.
        let budget = *g
            .budgets
            .get(tenant.id())
            .ok_or("the organisation's budget was not worked out")?
            .as_ref()
            .map_err(known)?;
        let readiness = match &s.readiness_event {
            None => None,
            Some(event) => Some(
                *g.readiness
                    .get(tenant.id())
                    .and_then(|scores| scores.get(event))
                    .ok_or("the readiness score was not worked out")?
                    .as_ref()
                    .map_err(known)?,
            ),
        };
        Ok((repaired, mode, bounds, budget, readiness))
    })();
    let (repaired, mode, bounds, budget, readiness) = match checked {
        Ok(found) => found,
        Err(error) => {
            return Err(Undecided {
                tenant,
                workload: s.workload,
                error,
            });
        }
    };
    let cfg = PolicyConfig {
        target: s.target,
        ..PolicyConfig::default()
    };
    let observed = mean.map(|v| v / s.units_per_instance);
    // Boxed: a workload's inputs and decision are moved several times on
    // their way through a tick, 100,000 of them.
    Ok(Box::new(Prepared {
        order,
        tenant,
        settings: s,
        mode,
        bounds,
        cfg,
        repaired,
        observed,
        forecast,
        budget,
        readiness,
        state: StateSource::Unread,
        keep: false,
    }))
}

/// What the tick's threads made of the workloads: the decisions, in the
/// tick's order; the workloads whose state is not kept (to be read, then
/// decided), in that order too; and the workloads that cannot be decided.
type Concluded = (Vec<Box<Planned>>, Vec<Box<Prepared>>, Vec<Undecided>);

/// Prepares and decides every workload whose state is kept, spread over the
/// cores: each thread takes a run of the workloads (in the tick's order,
/// which is the kept states' key order) and the kept states of that run,
/// and decides each workload as soon as it is prepared. The first
/// `capacity` workloads' states are kept after the tick.
fn prepare_and_conclude(
    workloads: Vec<TickWorkload>,
    kept: States,
    g: &Gathered,
    capacity: usize,
    now_ms: i64,
) -> Concluded {
    let runs = on_cores::runs(workloads);
    let kept = {
        let firsts: Vec<(&str, &str)> = runs
            .iter()
            .map(|(_, run)| (run[0].tenant.id(), run[0].settings.workload.as_str()))
            .collect();
        split_at(kept, &firsts)
    };
    let inputs: Vec<_> = runs.into_iter().zip(kept).collect();
    let done = on_cores::each_in_a_thread(inputs, |((start, run), kept)| {
        let mut kept = InOrder::new(kept);
        let mut out: Concluded = (Vec::with_capacity(run.len()), Vec::new(), Vec::new());
        for (i, w) in run.into_iter().enumerate() {
            let order = start + i;
            let mine = kept.take(w.tenant.id(), &w.settings.workload);
            let mut p = match prepare(order, w, g) {
                Ok(p) => p,
                Err(u) => {
                    out.2.push(u);
                    continue;
                }
            };
            p.keep = order < capacity;
            p.state = choose_state(mine, &mut p.settings);
            if matches!(p.state, StateSource::Unread) {
                out.1.push(p);
                continue;
            }
            match conclude(p, now_ms) {
                Ok(p) => out.0.push(p),
                Err(u) => out.2.push(u),
            }
        }
        out
    });
    let mut all: Concluded = (
        Vec::with_capacity(done.iter().map(|d| d.0.len()).sum()),
        Vec::new(),
        Vec::new(),
    );
    for (mut planned, mut unread, mut undecided) in done {
        all.0.append(&mut planned);
        all.1.append(&mut unread);
        all.2.append(&mut undecided);
    }
    all
}

/// A workload [`conclude`] could not decide, and why.
struct Undecided {
    tenant: Tenant,
    workload: String,
    error: BoxDynError,
}

/// [`conclude`] for every prepared workload, spread over the cores: the
/// decisions in the order prepared, and the workloads that could not be
/// decided.
#[expect(
    clippy::vec_box,
    reason = "boxed on purpose: moving 100,000 unboxed decisions between vectors showed in profiles"
)]
fn conclude_all(prepared: Vec<Box<Prepared>>, now_ms: i64) -> (Vec<Box<Planned>>, Vec<Undecided>) {
    let done = on_cores::each_in_a_thread(on_cores::runs(prepared), |(_, part)| {
        let mut planned = Vec::with_capacity(part.len());
        let mut undecided = Vec::new();
        for p in part {
            match conclude(p, now_ms) {
                Ok(p) => planned.push(p),
                Err(u) => undecided.push(u),
            }
        }
        (planned, undecided)
    });
    let mut planned = Vec::with_capacity(done.iter().map(|(p, _)| p.len()).sum());
    let mut undecided = Vec::new();
    for (mut p, mut u) in done {
        planned.append(&mut p);
        undecided.append(&mut u);
    }
    (planned, undecided)
}

/// The decision for one prepared workload: the pure part of a tick (state
/// read, policy, state written back), no I/O.
fn conclude(p: Box<Prepared>, now_ms: i64) -> Result<Box<Planned>, Undecided> {
    let Prepared {
        order,
        tenant,
        settings: s,
        mode,
        bounds,
        cfg,
        repaired,
        observed,
        forecast,
        budget,
        readiness,
        state,
        keep,
    } = *p;
    // Names are copied only for a workload that cannot be decided.
    let undecided = |error: BoxDynError| Undecided {
        tenant: tenant.clone(),
        workload: s.workload.clone(),
        error,
    };
    let commanded = u32::try_from(s.commanded).map_err(|e| undecided(e.into()))?;
    let slot = now_ms.div_euclid(STEP_MS);
    let forecast = match forecast {
        Ok(forecast) => forecast,
        Err(e) => {
            let target = cfg.target;
            let why = (repaired, &e);
            let mut p = not_decided(tenant, s, commanded, observed, target, now_ms, why);
            p.order = order;
            return Ok(p);
        }
    };
    let (mut state, learnt, stored_slot) = match state {
        StateSource::Kept(state, at) => (state, Some(at), s.controller.slot),
        StateSource::Stored(stored) => {
            let state = match ControllerState::restore(
                stored.state.as_deref(),
                stored.state_json.as_deref(),
            ) {
                Ok(Some(state)) => state,
                Ok(None) => ControllerState::new(&cfg),
                // What it learnt is lost, not the workload: it learns again.
                Err(e) => {
                    tracing::warn!(organization = tenant.id(), workload = s.workload, error = %e,
                        "controller state unreadable: starting afresh");
                    ControllerState::new(&cfg)
                }
            };
            (state, stored.slot, stored.slot)
        }
        StateSource::Unread => return Err(undecided("controller state not read".into())),
    };
    // Stored some ticks ago (a state from before slots were stored has none:
    // it was stored every tick).
    if learnt.is_some_and(|at| at < slot - 1) {
        state.forget_short_term();
    }
    let (forecast, version) = forecast_from_now(forecast.as_ref(), s.units_per_instance, now_ms);
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
            Some(headroom_store::allocation::NO_PROVIDER_DETAIL.to_owned()),
        ),
        (true, _) => ("pending", None),
    };
    if let Some(note) = &repaired {
        detail = Some(note.clone());
    }
    let count = |n: u32| i32::try_from(n).map_err(|e| undecided(e.into()));
    let (before, after, warm) = (
        count(decision.before)?,
        count(decision.after)?,
        count(decision.warm)?,
    );
    let limits_json = serde_json::to_string(&decision.limits).map_err(|e| undecided(e.into()))?;
    let row = StoredDecision {
        id: headroom_store::new_id(),
        workload: s.workload.clone(),
        source: "controller".into(),
        slot,
        decided_ms: now_ms,
        mode: s.mode.clone(),
        before,
        after,
        warm,
        reason: label(&decision.reason),
        limits_json,
        observed: observed.map(|v| v * s.units_per_instance),
        sized_for: decision.sized_for.map(|v| v * s.units_per_instance),
        forecast_version: version,
        status: status.into(),
        command_id: headroom_store::new_id(),
        detail,
        // Demand above the fleet in force (`before`) this tick, as billing
        // counts it: recorded now, so a later change of instance size cannot
        // re-rate past hours.
        missed: observed.map(|o| o > f64::from(decision.before)),
    };
    // Stored when due, when the worker does not keep it, and at once when
    // none is stored with a slot yet (a new workload).
    let checkpoint =
        (!keep || stored_slot.is_none() || checkpoint_due(tenant.id(), &s.workload, slot))
            .then(|| state.encode());
    Ok(Box::new(Planned {
        order,
        tenant,
        settings: s,
        row,
        state: Some(state),
        checkpoint,
        keep,
        forecast,
        target: cfg.target,
        before: decision.before,
        changed,
        repaired,
    }))
}

/// The record of a workload the tick could not decide (its forecast cannot
/// be read): `failed`, the fleet left as it is, so the workload's log and
/// notifications say why and billing still counts the tick if demand was
/// above the fleet. Its state is not kept: the next tick starts from the
/// stored one. Its place in the tick's order is the caller's to set.
fn not_decided(
    tenant: Tenant,
    s: StoredSettings,
    before: u32,
    observed: Option<f64>,
    target: f64,
    now_ms: i64,
    (repaired, error): (Option<String>, &StoreError),
) -> Box<Planned> {
    let detail = format!("not decided: {error}; the fleet stays as it is");
    let row = StoredDecision {
        id: headroom_store::new_id(),
        workload: s.workload.clone(),
        source: "controller".into(),
        slot: now_ms.div_euclid(STEP_MS),
        decided_ms: now_ms,
        mode: s.mode.clone(),
        before: s.commanded,
        after: s.commanded,
        warm: s.warm_commanded,
        reason: label(&headroom_core::allocate::Reason::Steady),
        limits_json: "[]".into(),
        observed: observed.map(|v| v * s.units_per_instance),
        sized_for: None,
        forecast_version: None,
        status: "failed".into(),
        command_id: headroom_store::new_id(),
        detail: Some(match &repaired {
            Some(note) => format!("{detail}; {note}"),
            None => detail,
        }),
        missed: observed.map(|o| o > f64::from(before)),
    };
    Box::new(Planned {
        order: 0,
        tenant,
        settings: s,
        row,
        state: None,
        checkpoint: None,
        keep: false,
        forecast: Vec::new(),
        target,
        before,
        changed: false,
        repaired,
    })
}

/// Sends a logged decision's command (when it has one) and announces the
/// outcome.
async fn carry_out(
    db: &Db,
    providers: &Providers,
    money: &TickMoney,
    p: &Planned,
    now_ms: i64,
) -> Result<(), BoxDynError> {
    let (tenant, s, row) = (&p.tenant, &p.settings, &p.row);
    let status = if row.status == "pending" {
        let needed = needed_hours(&p.forecast, p.before, p.target);
        finish(db, providers, tenant, s, row, needed).await?
    } else {
        row.status.as_str()
    };
    // Fleets that really changed, or a command that failed. Logged decisions
    // (forecast-only, no provider) leave the fleet as it is, so they would
    // repeat every tick; they stay in the decision log.
    if (p.changed && status == "applied") || status == "failed" {
        // The decision stands whatever becomes of its announcement.
        if let Err(e) = money.announce(db, tenant, row, status, now_ms).await {
            tracing::warn!(organization = tenant.id(), workload = s.workload, error = %e, "decision not announced");
        }
    }
    Ok(())
}

/// How long new capacity above `before` is expected to be needed: the
/// forecast steps from now on whose upper quantile exceeds what `before`
/// instances serve at the target, at least one step (hours).
fn needed_hours(forecast: &[Step], before: u32, target: f64) -> f64 {
    let serving = f64::from(before) * target;
    let steps = forecast.iter().take_while(|st| st.p90 > serving).count();
    steps.max(1) as f64 * STEP_MS as f64 / 3_600_000.0
}

/// What the provider should have in force for `instances` and `warm`.
fn desired(s: &StoredSettings, instances: u32, warm: u32) -> Desired {
    Desired {
        instances,
        // AWS does not allow a warm pool beside spot capacity.
        warm: if s.provider == "aws" && s.allow_spot {
            0
        } else {
            warm
        },
        min: u32::try_from(s.min_instances).unwrap_or(0),
        max: u32::try_from(s.max_instances).unwrap_or(0),
        memory_bytes: memory_bytes(s, instances.max(1)),
        network_bits_per_sec: network_bits(s, instances.max(1)),
        // Priority 1 is the kernel's default weight (100).
        io_weight: Some((s.priority * 100.0).round().clamp(1.0, 10_000.0) as u32),
        instance_type: s.instance_type.clone(),
        purchase: None,
    }
}

/// Spot or on-demand for a workload that allows spot, from the group's spot
/// price history; `None` when spot is not allowed.
async fn purchase(
    providers: &Providers,
    s: &StoredSettings,
    needed_hours: f64,
) -> Result<Option<Purchase>, ProviderError> {
    if s.provider != "aws" || !s.allow_spot {
        return Ok(None);
    }
    let (Some(kind), Some(on_demand)) = (&s.instance_type, s.on_demand_micros_per_hour) else {
        return Ok(None);
    };
    let prices = providers
        .aws()?
        .spot_prices(kind, SPOT_HISTORY_HOURS)
        .await?;
    Ok(Some(spot::choose(&SpotInputs {
        on_demand_micros: on_demand,
        spot_history: &prices,
        needed_hours,
        interruption_rate: SPOT_INTERRUPTIONS_PER_HOUR,
        min_saving: SPOT_MIN_SAVING,
        allow_spot: true,
    })))
}

fn purchase_note(p: &Purchase) -> String {
    match p {
        Purchase::Spot { expected_saving } => format!(
            "bought as spot (expected saving {:.0} %)",
            expected_saving * 100.0
        ),
        Purchase::OnDemand { why } => format!("bought on demand ({})", label(why)),
    }
}

/// Sends a logged decision's command (retried with backoff) and records how
/// it ended.
async fn finish(
    db: &Db,
    providers: &Providers,
    tenant: &Tenant,
    s: &StoredSettings,
    d: &StoredDecision,
    needed_hours: f64,
) -> Result<&'static str, BoxDynError> {
    let instances = u32::try_from(d.after)?;
    let warm = u32::try_from(d.warm)?;
    let target = s.provider_ref.as_deref().unwrap_or_default();
    let attempts = AtomicU32::new(0);
    let sent = (|| async {
        attempts.fetch_add(1, Ordering::Relaxed);
        let mut want = desired(s, instances, warm);
        want.purchase = purchase(providers, s, needed_hours).await?;
        providers
            .apply(&s.provider, tenant.id(), target, &want, &d.command_id)
            .await
            .map(|()| want.purchase)
    })
    .retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(COMMAND_RETRIES)
            .with_jitter(),
    )
    // A provider that is missing or misconfigured will not heal in seconds.
    .when(|e: &ProviderError| e.transient)
    .await;
    let tries = attempts.load(Ordering::Relaxed);
    let (status, detail, fleet) = match sent {
        Ok(bought) => (
            "applied",
            bought.as_ref().map(purchase_note),
            (d.after, desired(s, instances, warm).warm as i32),
        ),
        Err(e) => (
            "failed",
            Some(format!(
                "{} ({tries} attempt{})",
                e.message,
                if tries == 1 { "" } else { "s" }
            )),
            (s.commanded, s.warm_commanded),
        ),
    };
    // A repair noted on the decision stays beside how it ended.
    let detail = match (&d.detail, detail) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => b.or_else(|| a.clone()),
    };
    db.finish_decision(tenant, d, status, detail.as_deref(), fleet)
        .await?;
    Ok(status)
}

/// The memory limit for a fleet, when the workload sets one per instance.
fn memory_bytes(s: &StoredSettings, instances: u32) -> Option<u64> {
    let mib = u64::try_from(s.memory_mib_per_instance?).ok()?;
    mib.checked_mul(1 << 20)?.checked_mul(u64::from(instances))
}

/// The egress cap for a fleet, when the workload sets one per instance.
fn network_bits(s: &StoredSettings, instances: u32) -> Option<u64> {
    let mbit = u64::try_from(s.network_mbit_per_instance?).ok()?;
    mbit.checked_mul(1_000_000)?
        .checked_mul(u64::from(instances))
}

/// Compares what the provider has in force with the record and re-applies
/// the record when they differ; says what it repaired.
async fn reconcile(
    providers: &Providers,
    tenant: &Tenant,
    s: &StoredSettings,
    found: Option<Result<InForce, ProviderError>>,
) -> Option<String> {
    if s.provider == "none" || s.mode != "on" {
        return None;
    }
    let target = s.provider_ref.as_deref().unwrap_or_default();
    let want = desired(
        s,
        u32::try_from(s.commanded).unwrap_or(0),
        u32::try_from(s.warm_commanded).unwrap_or(0),
    );
    let found = match found {
        Some(f) => f,
        None => providers.in_force(&s.provider, tenant.id(), target).await,
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => return Some(format!("could not read what is in force: {e}")),
    };
    let drift = want.drift(&found);
    if drift.is_empty() {
        return None;
    }
    let drift = drift.join(", ");
    // A fresh token: the repair is a command of its own.
    let token = headroom_store::new_id();
    Some(
        match providers
            .apply(&s.provider, tenant.id(), target, &want, &token)
            .await
        {
            Ok(()) => format!("repaired drift: {drift}; the record was re-applied"),
            Err(e) => format!("drift ({drift}) not repaired: {e}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handover::tests::forecast;

    #[test]
    fn the_policy_sees_the_forecast_from_the_step_in_progress() {
        let step = STEP_MS;
        // Made from the step that just closed: the step in progress is h = 1.
        let (steps, version) = forecast_from_now(Some(&forecast(0)), 2.0, step + 45_000);
        assert_eq!(version.as_deref(), Some("v"));
        assert_eq!(steps.len(), 12);
        assert_eq!(steps[0].p50, 0.5, "h = 1, in instances of 2 units");
        // A step older (the forecast job has not reached the series yet).
        let (steps, _) = forecast_from_now(Some(&forecast(0)), 1.0, 2 * step + 45_000);
        assert_eq!((steps.len(), steps[0].p50), (11, 2.0));
        assert!(forecast_from_now(None, 1.0, step).0.is_empty());
    }
}
