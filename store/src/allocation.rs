//! Allocation settings, the controller's state per workload, and the
//! decision log.

use sea_orm::{ConnectionTrait, Statement, TransactionTrait, Value};

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::forecasts::StoredForecast;
use crate::sql::{binder, placeholder, placeholder as ph, placeholders};
use crate::{Db, StoreError, Tenant};

#[derive(Debug, Clone, PartialEq)]
pub struct StoredSettings {
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
    pub commanded: i32,
    pub last_suggestion_ms: Option<i64>,
    pub updated_ms: i64,
    /// Usage-event type whose readiness score pre-allocates capacity.
    pub readiness_event: Option<String>,
    /// Memory limit per instance, applied by the provider with the CPU quota.
    pub memory_mib_per_instance: Option<i64>,
    /// The instance type the provider should run (AWS: the group's launch
    /// template), when Headroom manages it.
    pub instance_type: Option<String>,
    /// Whether spot capacity may be bought when it is cheap and stable enough.
    pub allow_spot: bool,
    /// The on-demand price of one instance-hour, micro-dollars (what spot
    /// prices are weighed against).
    pub on_demand_micros_per_hour: Option<i64>,
    /// Warm (stopped, ready) instances commanded beside the fleet.
    pub warm_commanded: i32,
    /// Egress bandwidth per instance, Mbit/s (cgroup provider, with `tc`).
    pub network_mbit_per_instance: Option<i32>,
    /// The controller's state. [`Db::tick_settings_since`] reads only its
    /// slot (see [`Db::controller_states`]).
    pub controller: StoredState,
}

/// A workload's controller state as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredState {
    /// `ControllerState::encode`.
    pub state: Option<Vec<u8>>,
    /// As earlier versions stored it (JSON), until the next checkpoint.
    pub state_json: Option<String>,
    /// The slot of the decision whose outcome it last learnt (`None`: no
    /// state, or one stored before slots were kept).
    pub slot: Option<i64>,
}

impl StoredState {
    /// Whether a state (either encoding) is here, not only its slot.
    pub fn is_present(&self) -> bool {
        self.state.is_some() || self.state_json.is_some()
    }
}

/// Where a page of the decision log ends: what comes next is older than
/// this, decided earlier or, with an `id`, at the same millisecond with a
/// smaller id (the log's order: newest first, then by id, descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionCursor {
    pub decided_ms: i64,
    pub id: Option<String>,
}

impl DecisionCursor {
    /// Whether a decision made at `decided_ms` with `id` comes after the cursor.
    pub fn admits(&self, decided_ms: i64, id: &str) -> bool {
        match &self.id {
            Some(last) => (decided_ms, id) < (self.decided_ms, last.as_str()),
            None => decided_ms < self.decided_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredDecision {
    pub id: String,
    pub workload: String,
    pub source: String,
    pub slot: i64,
    pub decided_ms: i64,
    pub mode: String,
    pub before: i32,
    pub after: i32,
    pub warm: i32,
    pub reason: String,
    pub limits_json: String,
    pub observed: Option<f64>,
    pub sized_for: Option<f64>,
    pub forecast_version: Option<String>,
    pub status: String,
    pub command_id: String,
    pub detail: Option<String>,
    /// Whether demand exceeded the fleet in force when it was decided (what
    /// billing counts against the SLA). `None`: not a controller tick, or
    /// logged before this was recorded (billing then compares `observed`
    /// with the workload's current instance size).
    pub missed: Option<bool>,
}

const SETTINGS_COLUMNS: &str = "workload, metric, units_per_instance, mode, min_instances, \
    max_instances, target, priority, provider, provider_ref, commanded, state, \
    last_suggestion_at, updated_at, readiness_event, memory_mib_per_instance, instance_type, \
    allow_spot, on_demand_micros_per_hour, warm_commanded, network_mbit_per_instance, \
    controller_state, controller_state_slot";
/// Columns in `SETTINGS_COLUMNS`.
const SETTINGS_COUNT: usize = 23;

/// `SETTINGS_COLUMNS` with the stored controller states (JSON and binary)
/// read as NULL: a tick reads them only for workloads whose state the worker
/// does not keep ([`Db::controller_states`]), since they are most of a row.
/// Each column is named after `table` (`"s."`, or `""` for none).
fn tick_settings_columns(backend: sea_orm::DbBackend, table: &str) -> String {
    let blob = match backend {
        sea_orm::DbBackend::Postgres => "CAST(NULL AS BYTEA)",
        _ => "NULL",
    };
    SETTINGS_COLUMNS
        .split(',')
        .map(|c| match c.trim() {
            "state" => "CAST(NULL AS TEXT)".to_owned(),
            "controller_state" => blob.to_owned(),
            c => format!("{table}{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn settings_from_row(r: &sea_orm::QueryResult) -> Result<StoredSettings, StoreError> {
    Ok(StoredSettings {
        workload: r.try_get_by_index(0)?,
        metric: r.try_get_by_index(1)?,
        units_per_instance: r.try_get_by_index(2)?,
        mode: r.try_get_by_index(3)?,
        min_instances: r.try_get_by_index(4)?,
        max_instances: r.try_get_by_index(5)?,
        target: r.try_get_by_index(6)?,
        priority: r.try_get_by_index(7)?,
        provider: r.try_get_by_index(8)?,
        provider_ref: r.try_get_by_index(9)?,
        commanded: r.try_get_by_index(10)?,
        last_suggestion_ms: r.try_get_by_index(12)?,
        updated_ms: r.try_get_by_index(13)?,
        readiness_event: r.try_get_by_index(14)?,
        memory_mib_per_instance: r.try_get_by_index(15)?,
        instance_type: r.try_get_by_index(16)?,
        allow_spot: r.try_get_by_index(17)?,
        on_demand_micros_per_hour: r.try_get_by_index(18)?,
        warm_commanded: r.try_get_by_index(19)?,
        network_mbit_per_instance: r.try_get_by_index(20)?,
        controller: StoredState {
            state: r.try_get_by_index(21)?,
            state_json: r.try_get_by_index(11)?,
            slot: r.try_get_by_index(22)?,
        },
    })
}

const DECISION_COLUMNS: &str = "id, workload, source, slot, decided_at, mode, before_instances, \
    after_instances, warm, reason, limits, observed, sized_for, forecast_version, status, \
    command_id, detail, missed";

fn decision_from_row(r: &sea_orm::QueryResult) -> Result<StoredDecision, StoreError> {
    Ok(StoredDecision {
        id: r.try_get_by_index(0)?,
        workload: r.try_get_by_index(1)?,
        source: r.try_get_by_index(2)?,
        slot: r.try_get_by_index(3)?,
        decided_ms: r.try_get_by_index(4)?,
        mode: r.try_get_by_index(5)?,
        before: r.try_get_by_index(6)?,
        after: r.try_get_by_index(7)?,
        warm: r.try_get_by_index(8)?,
        reason: r.try_get_by_index(9)?,
        limits_json: r.try_get_by_index(10)?,
        observed: r.try_get_by_index(11)?,
        sized_for: r.try_get_by_index(12)?,
        forecast_version: r.try_get_by_index(13)?,
        status: r.try_get_by_index(14)?,
        command_id: r.try_get_by_index(15)?,
        detail: r.try_get_by_index(16)?,
        missed: r.try_get_by_index(17)?,
    })
}

impl Db {
    /// Creates or updates a workload's settings. The learnt state is kept; the
    /// commanded fleet is replaced only when `commanded` is given.
    pub async fn upsert_allocation_settings(
        &self,
        tenant: &Tenant,
        s: &StoredSettings,
        commanded: Option<i32>,
    ) -> Result<(), StoreError> {
        let backend = self.conn().get_database_backend();
        let fleet_update = if commanded.is_some() {
            ", commanded = excluded.commanded"
        } else {
            ""
        };
        let sql = format!(
            "INSERT INTO allocation_settings (organization_id, {SETTINGS_COLUMNS}) VALUES ({}) \
             ON CONFLICT (organization_id, workload) DO UPDATE SET metric = excluded.metric, \
             units_per_instance = excluded.units_per_instance, mode = excluded.mode, \
             min_instances = excluded.min_instances, max_instances = excluded.max_instances, \
             target = excluded.target, priority = excluded.priority, provider = excluded.provider, \
             provider_ref = excluded.provider_ref, updated_at = excluded.updated_at, \
             readiness_event = excluded.readiness_event, \
             memory_mib_per_instance = excluded.memory_mib_per_instance, \
             instance_type = excluded.instance_type, allow_spot = excluded.allow_spot, \
             on_demand_micros_per_hour = excluded.on_demand_micros_per_hour, \
             network_mbit_per_instance = excluded.network_mbit_per_instance{fleet_update}",
            placeholders(backend, 1, SETTINGS_COUNT + 1).join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            s.workload.clone().into(),
            s.metric.clone().into(),
            s.units_per_instance.into(),
            s.mode.clone().into(),
            s.min_instances.into(),
            s.max_instances.into(),
            s.target.into(),
            s.priority.into(),
            s.provider.clone().into(),
            s.provider_ref.clone().into(),
            commanded.unwrap_or(s.commanded).into(),
            s.controller.state_json.clone().into(),
            s.last_suggestion_ms.into(),
            s.updated_ms.into(),
            s.readiness_event.clone().into(),
            s.memory_mib_per_instance.into(),
            s.instance_type.clone().into(),
            s.allow_spot.into(),
            s.on_demand_micros_per_hour.into(),
            s.warm_commanded.into(),
            s.network_mbit_per_instance.into(),
            s.controller.state.clone().into(),
            s.controller.slot.into(),
        ];
        self.conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(())
    }

    pub async fn allocation_settings(
        &self,
        tenant: &Tenant,
        workload: &str,
    ) -> Result<Option<StoredSettings>, StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT {SETTINGS_COLUMNS} FROM allocation_settings \
             WHERE organization_id = {} AND workload = {}",
            ph(backend, 1),
            ph(backend, 2)
        );
        let row = self
            .conn()
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![tenant.id().into(), workload.into()],
            ))
            .await?;
        row.as_ref().map(settings_from_row).transpose()
    }

    /// The organisation's workloads under allocation settings, by name.
    pub async fn allocation_settings_all(
        &self,
        tenant: &Tenant,
    ) -> Result<Vec<StoredSettings>, StoreError> {
        self.allocation_settings_page(tenant, None, None).await
    }

    /// The organisation's workloads under allocation settings, by name: those
    /// named after `after`, at most `limit` of them.
    pub async fn allocation_settings_page(
        &self,
        tenant: &Tenant,
        after: Option<&str>,
        limit: Option<u64>,
    ) -> Result<Vec<StoredSettings>, StoreError> {
        let backend = self.conn().get_database_backend();
        let mut values: Vec<Value> = vec![tenant.id().into()];
        let mut sql = format!(
            "SELECT {SETTINGS_COLUMNS} FROM allocation_settings WHERE organization_id = {}",
            ph(backend, 1)
        );
        if let Some(after) = after {
            values.push(after.into());
            sql += &format!(" AND workload > {}", ph(backend, values.len()));
        }
        sql += " ORDER BY workload";
        if let Some(limit) = limit {
            values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
            sql += &format!(" LIMIT {}", ph(backend, values.len()));
        }
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter().map(settings_from_row).collect()
    }

    /// Every workload the controller acts for (mode not `off`), in every
    /// organisation, each with its tenant; without the stored states (as
    /// [`Db::tick_settings_since`]).
    pub async fn controlled_workloads(&self) -> Result<Vec<(Tenant, StoredSettings)>, StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT {}, organization_id FROM allocation_settings \
             WHERE mode <> 'off' ORDER BY organization_id, workload",
            tick_settings_columns(backend, "")
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_string(backend, sql))
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    Tenant::new(r.try_get_by_index::<String>(SETTINGS_COUNT)?),
                    settings_from_row(r)?,
                ))
            })
            .collect()
    }

    /// Logs a decision made outside the controller's tick (a suggestion, an
    /// operator) and, in the same transaction, stores the fleet it leaves.
    /// The controller's state is the tick's to store. A decision for a slot
    /// already decided (a replayed suggestion) changes nothing; returns
    /// whether it was new.
    pub async fn record_decision(
        &self,
        tenant: &Tenant,
        d: &StoredDecision,
        commanded: i32,
        suggestion_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let backend = self.conn().get_database_backend();
        let tx = self.conn().begin().await?;
        let write = DecisionWrite {
            tenant,
            decision: d,
            state: None,
        };
        let inserted = insert_decision_rows(&tx, &[&write]).await?.contains(&d.id);
        if inserted {
            let sql = format!(
                "UPDATE allocation_settings SET commanded = {}, \
                 last_suggestion_at = COALESCE({}, last_suggestion_at) \
                 WHERE organization_id = {} AND workload = {}",
                ph(backend, 1),
                ph(backend, 2),
                ph(backend, 3),
                ph(backend, 4)
            );
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![
                    commanded.into(),
                    suggestion_at.into(),
                    tenant.id().into(),
                    d.workload.clone().into(),
                ],
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Decisions, newest first.
    pub async fn allocation_decisions(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
        limit: u64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        self.allocation_decisions_page(tenant, workload, None, None, limit)
            .await
    }

    /// [`Db::allocation_decisions`] decided at or after `since_ms` (when
    /// given), which also bounds what is read (a workload's listing stops at
    /// its groups older than that instead of reading back until it finds
    /// `limit` decisions), and older than `before` (the last decision of the
    /// previous page): the log a page at a time, each decision on one page.
    pub async fn allocation_decisions_page(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
        since_ms: Option<i64>,
        before: Option<&DecisionCursor>,
        limit: u64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let limit = limit.min(1000);
        let mut out = self
            .decision_rows(tenant, workload, since_ms, before, limit)
            .await?;
        // With the compact ones: the newest `limit` of both.
        out.extend(
            self.grouped_decisions(tenant, workload, limit, None, since_ms, before)
                .await?,
        );
        keep_newest(&mut out, limit);
        Ok(out)
    }

    /// A workload's newest decision, as [`Db::allocation_decisions`] lists
    /// it, reading only the groups that can hold it: none when the
    /// controller has not decided the workload under these settings (its
    /// first decision stores a state, in the same transaction), else those
    /// at or after the slot of the decision its stored state learnt from.
    pub async fn last_decision(
        &self,
        tenant: &Tenant,
        settings: &StoredSettings,
    ) -> Result<Option<StoredDecision>, StoreError> {
        let workload = Some(settings.workload.as_str());
        let mut out = self.decision_rows(tenant, workload, None, None, 1).await?;
        let state = &settings.controller;
        if state.state.is_some() || state.state_json.is_some() {
            out.extend(
                self.grouped_decisions(tenant, workload, 1, state.slot, None, None)
                    .await?,
            );
        }
        keep_newest(&mut out, 1);
        Ok(out.pop())
    }

    /// Decisions kept as rows, newest first.
    async fn decision_rows(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
        since_ms: Option<i64>,
        before: Option<&DecisionCursor>,
        limit: u64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let backend = self.conn().get_database_backend();
        let mut values: Vec<Value> = vec![tenant.id().into()];
        let mut sql = format!(
            "SELECT {DECISION_COLUMNS} FROM allocation_decisions WHERE organization_id = {}",
            ph(backend, 1)
        );
        if let Some(w) = workload {
            values.push(w.into());
            sql += &format!(" AND workload = {}", ph(backend, values.len()));
        }
        if let Some(since) = since_ms {
            values.push(since.into());
            sql += &format!(" AND decided_at >= {}", ph(backend, values.len()));
        }
        // Ids compare as bytes on both backends, as [`keep_newest`] orders them.
        let id = match backend {
            sea_orm::DatabaseBackend::Postgres => r#"id COLLATE "C""#,
            _ => "id",
        };
        match before {
            Some(DecisionCursor {
                decided_ms,
                id: Some(last),
            }) => {
                // Each value once per placeholder: SQLite's are positional.
                let n = values.len();
                values.extend([
                    (*decided_ms).into(),
                    (*decided_ms).into(),
                    last.as_str().into(),
                ]);
                sql += &format!(
                    " AND (decided_at < {} OR (decided_at = {} AND {id} < {}))",
                    ph(backend, n + 1),
                    ph(backend, n + 2),
                    ph(backend, n + 3)
                );
            }
            Some(DecisionCursor {
                decided_ms,
                id: None,
            }) => {
                values.push((*decided_ms).into());
                sql += &format!(" AND decided_at < {}", ph(backend, values.len()));
            }
            None => {}
        }
        sql += &format!(
            " ORDER BY decided_at DESC, {id} DESC LIMIT {}",
            limit.min(1000)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter().map(decision_from_row).collect()
    }
}

/// How far a read of the controlled workloads' settings got
/// ([`Db::tick_settings_since`]): the next read from it returns what changed
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsMark {
    /// Every row version written at a lower revision had been read
    /// (migration 026 says what a revision is on each backend).
    revision: i64,
    /// When it was taken (this process's clock).
    taken_ms: i64,
}

/// Notes of removed settings are kept this long ([`Db::prune_removed_settings`]);
/// a mark older than half of it reads everything again instead of trusting
/// notes that may be gone.
pub const REMOVED_SETTINGS_KEPT_MS: i64 = 7 * 24 * 3_600_000;

/// Notes of stored controller states are kept this long
/// ([`Db::prune_state_writes`]: a tick notes a twelfth of all workloads);
/// a mark older than half of it reads everything again. A worker keeping
/// the settings reads every tick, five minutes apart.
pub const STATE_WRITES_KEPT_MS: i64 = 3_600_000;

/// What [`Db::tick_settings_since`] read.
#[derive(Debug)]
pub struct SettingsRead {
    /// `true`: `changed` is every controlled workload (mode not `off`), and
    /// whatever the caller held is replaced; `false`: `changed` is every
    /// workload whose settings were written since the mark, in any mode
    /// (an `off` one has left the controller's care).
    pub whole: bool,
    pub changed: Vec<(Tenant, StoredSettings)>,
    /// (organisation id, workload) of settings removed since the mark.
    pub removed: Vec<(String, String)>,
    /// The newest slot of the controller states stored since the mark, by
    /// (organisation id, workload), but for the reader's own (migration
    /// 029); a row in `changed` may be named too, with another slot than
    /// its own (read apart, so the newer one holds). Empty when `whole`.
    pub state_slots: Vec<((String, String), i64)>,
    /// Where the next read starts.
    pub mark: SettingsMark,
}

/// What one controller tick reads ([`Db::tick_inputs`]).
#[derive(Debug, Default)]
pub struct TickInputs {
    /// Every controlled workload (mode not `off`), by organisation and name.
    pub workloads: Vec<TickWorkload>,
    /// The workload's newest decision left `pending` (a tick interrupted
    /// between logging it and carrying it out), by (organisation id, workload).
    pub pending: HashMap<(String, String), StoredDecision>,
}

/// Keys per statement of [`Db::controller_states`] (two values each on
/// SQLite; one array element each on PostgreSQL).
const STATE_KEYS_SQLITE: usize = 400;
const STATE_KEYS_PG: usize = 10_000;

/// One controlled workload with what its decision is made from.
#[derive(Debug)]
pub struct TickWorkload {
    pub tenant: Tenant,
    pub settings: StoredSettings,
    /// Mean of the workload's metric over the window, from minute rollups.
    pub mean: Option<f64>,
    /// The latest forecast of the workload's metric at the given horizon (an
    /// error if it cannot be read: that workload's, not the tick's).
    pub forecast: Result<Option<StoredForecast>, StoreError>,
}

/// A series a tick reads the inputs of ([`Db::tick_inputs`]).
#[derive(Debug, Clone)]
struct SeriesRef {
    organization: String,
    workload: String,
    metric: String,
}

impl SeriesRef {
    /// Its forecast at `horizon` as read: (origin, step seconds, made at),
    /// the model version and the packed steps (checked here).
    fn forecast(
        &self,
        horizon: &str,
        (origin_ms, step_secs, made_at_ms): (i64, i64, i64),
        model_version: String,
        steps: Option<Vec<u8>>,
    ) -> Result<StoredForecast, StoreError> {
        Ok(StoredForecast {
            workload: self.workload.clone(),
            metric: self.metric.clone(),
            horizon: horizon.to_owned(),
            origin_ms,
            step_secs,
            made_at_ms,
            model_version,
            steps: crate::forecasts::packed_steps(steps)?,
        })
    }
}

/// One series' inputs as read for a tick.
#[derive(Debug)]
struct TickRead {
    mean: Option<f64>,
    forecast: Result<Option<StoredForecast>, StoreError>,
}

/// The rows of a read's parts, read by tasks of their own, in the parts'
/// order; a part's panic goes on here.
async fn join_parts<T>(
    parts: Vec<tokio::task::JoinHandle<Result<Vec<T>, StoreError>>>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for part in futures::future::join_all(parts).await {
        match part {
            Ok(rows) => out.extend(rows?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(StoreError::Db(sea_orm::DbErr::Custom(e.to_string()))),
        }
    }
    Ok(out)
}

/// Series per statement of [`Db::tick_inputs`] on SQLite (four
/// values each).
const SERIES_KEYS_SQLITE: usize = 200;

/// The mean of rollups summed to `total` over `n` points, if any.
fn mean_of(total: Option<f64>, n: Option<i64>) -> Option<f64> {
    match (total, n) {
        (Some(total), Some(n)) if n > 0 => Some(total / n as f64),
        _ => None,
    }
}

/// Statements a tick's reads are split into on PostgreSQL, run at once: one
/// statement keeps one server process busy (the per-workload index probes
/// of [`Db::tick_inputs`] are most of the work), and its rows are decoded on
/// a core of their own.
const TICK_READ_PARTS: usize = 2;

/// A decision to log in [`Db::record_decisions`], with the controller state
/// it leaves when that is to be stored now (a checkpoint; the fleet on record
/// is not changed by logging: carrying the decision out changes it).
#[derive(Debug, Clone)]
pub struct DecisionWrite<'a> {
    pub tenant: &'a Tenant,
    pub decision: &'a StoredDecision,
    /// The controller state it leaves (`ControllerState::encode`), stored
    /// with the decision's slot as `controller_state_slot`.
    pub state: Option<&'a [u8]>,
}

/// A decision's values in `organization_id, DECISION_COLUMNS` order.
fn decision_values(tenant: &Tenant, d: &StoredDecision) -> [Value; 19] {
    [
        tenant.id().into(),
        d.id.clone().into(),
        d.workload.clone().into(),
        d.source.clone().into(),
        d.slot.into(),
        d.decided_ms.into(),
        d.mode.clone().into(),
        d.before.into(),
        d.after.into(),
        d.warm.into(),
        d.reason.clone().into(),
        d.limits_json.clone().into(),
        d.observed.into(),
        d.sized_for.into(),
        d.forecast_version.clone().into(),
        d.status.clone().into(),
        d.command_id.clone().into(),
        d.detail.clone().into(),
        d.missed.into(),
    ]
}

/// Orders decisions newest first (the log's order: time, then id) and keeps
/// the first `limit`.
pub(crate) fn keep_newest(decisions: &mut Vec<StoredDecision>, limit: u64) {
    decisions.sort_by(|a, b| (b.decided_ms, &b.id).cmp(&(a.decided_ms, &a.id)));
    decisions.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
}

/// Inserts decisions as rows of `allocation_decisions` (a slot already
/// decided is left as it is); the ids of those inserted.
pub(crate) async fn insert_decision_rows<C: ConnectionTrait>(
    c: &C,
    writes: &[&DecisionWrite<'_>],
) -> Result<HashSet<String>, StoreError> {
    let backend = c.get_database_backend();
    let mut new = HashSet::new();
    for chunk in writes.chunks(DECISION_CHUNK) {
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|w| decision_values(w.tenant, w.decision))
            .collect();
        for r in crate::sql::rows(
            c,
            format!(
                "INSERT INTO allocation_decisions (organization_id, {DECISION_COLUMNS}) \
                 VALUES {} ON CONFLICT (organization_id, workload, source, slot) DO NOTHING \
                 RETURNING id",
                crate::sql::values_clause(backend, chunk.len(), 19)
            ),
            values,
        )
        .await?
        {
            new.insert(r.try_get_by_index::<String>(0)?);
        }
    }
    Ok(new)
}

/// Stores controller states with the slot of the decision that left them,
/// and notes them once as `writer`'s (migration 029).
pub(crate) async fn store_states<C: ConnectionTrait>(
    c: &C,
    states: &[(&DecisionWrite<'_>, &[u8])],
    writer: Option<&str>,
) -> Result<(), StoreError> {
    if states.is_empty() {
        return Ok(());
    }
    let backend = c.get_database_backend();
    for chunk in states.chunks(DECISION_CHUNK) {
        // VALUES columns are column1.. on both backends.
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        let mut rows = Vec::with_capacity(chunk.len());
        for (w, state) in chunk {
            let n = values.len();
            rows.push(format!(
                "({}, {}, {}, CAST({} AS BIGINT))",
                placeholder(backend, n + 1),
                placeholder(backend, n + 2),
                placeholder(backend, n + 3),
                placeholder(backend, n + 4),
            ));
            values.extend([
                w.tenant.id().into(),
                w.decision.workload.clone().into(),
                state.to_vec().into(),
                w.decision.slot.into(),
            ]);
        }
        crate::sql::exec(
            c,
            format!(
                // A revision of -1: only the state is written, so the row's
                // settings revision stays (migration 029) and no indexed
                // column moves.
                "UPDATE allocation_settings SET controller_state = v.column3, \
                 controller_state_slot = v.column4, state = NULL, revision = -1 \
                 FROM (VALUES {}) AS v \
                 WHERE allocation_settings.organization_id = v.column1 \
                 AND allocation_settings.workload = v.column2",
                rows.join(", ")
            ),
            values,
        )
        .await?;
    }
    let keys: Vec<StoredKey<'_>> = states
        .iter()
        .map(|(w, _)| {
            (
                Cow::Borrowed(w.tenant.id()),
                Cow::Borrowed(w.decision.workload.as_str()),
                w.decision.slot,
            )
        })
        .collect();
    let keys = postcard::to_allocvec(&keys)
        .map_err(|e| StoreError::Corrupt(format!("stored states' keys: {e}")))?;
    // SQLite's trigger sets the revision from its clock.
    let revision = match backend {
        sea_orm::DbBackend::Postgres => "CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)",
        _ => "0",
    };
    crate::sql::exec(
        c,
        format!(
            "INSERT INTO allocation_state_writes (revision, writer, written_at, keys) \
             VALUES ({revision}, {}, {}, {})",
            ph(backend, 1),
            ph(backend, 2),
            ph(backend, 3)
        ),
        vec![
            writer.map(str::to_owned).into(),
            chrono::Utc::now().timestamp_millis().into(),
            keys.into(),
        ],
    )
    .await?;
    Ok(())
}

/// A stored state's organisation id, workload and slot, as
/// `allocation_state_writes` notes it.
type StoredKey<'a> = (Cow<'a, str>, Cow<'a, str>, i64);

/// The detail of a decision that would command a workload without a
/// provider (the compact log stores it as a mark).
pub const NO_PROVIDER_DETAIL: &str =
    "no provider is configured for this workload: nothing was commanded";

/// Rows per statement when decisions are written in bulk (19 values each,
/// well inside both backends' limit on bound values).
const DECISION_CHUNK: usize = 500;

impl Db {
    /// The inputs of a tick deciding for `settings` (every controlled
    /// workload, as [`Db::tick_settings_since`] read them): `handed` is asked
    /// for each workload's demand over the window `[from_ms, to_ms)` and
    /// newest forecast at `horizon`, and only the workloads it has none for
    /// are read, by key; with the decisions left pending. The settings come
    /// first, so a workload whose metric changes meanwhile is read (or
    /// handed) for the metric it is decided with.
    pub async fn tick_inputs(
        &self,
        settings: Vec<(Tenant, StoredSettings)>,
        (from_ms, to_ms): (i64, i64),
        horizon: &str,
        mut handed: impl FnMut(&Tenant, &StoredSettings) -> Option<(Option<f64>, StoredForecast)>,
    ) -> Result<TickInputs, StoreError> {
        let mut workloads = Vec::with_capacity(settings.len());
        let mut unread = Vec::new();
        for (tenant, settings) in settings {
            let (mean, forecast) = match handed(&tenant, &settings) {
                Some((mean, forecast)) => (mean, Some(forecast)),
                None => {
                    unread.push(workloads.len());
                    (None, None)
                }
            };
            workloads.push(TickWorkload {
                tenant,
                settings,
                mean,
                forecast: Ok(forecast),
            });
        }
        let keys: Vec<SeriesRef> = unread
            .iter()
            .map(|&i| {
                let w = &workloads[i];
                SeriesRef {
                    organization: w.tenant.id().to_owned(),
                    workload: w.settings.workload.clone(),
                    metric: w.settings.metric.clone(),
                }
            })
            .collect();
        let (reads, pending) = futures::future::join(
            self.tick_reads_for(keys, from_ms, to_ms, horizon),
            self.pending_decisions(),
        )
        .await;
        for (i, read) in unread.into_iter().zip(reads?) {
            workloads[i].mean = read.mean;
            workloads[i].forecast = read.forecast;
        }
        Ok(TickInputs {
            workloads,
            pending: pending?,
        })
    }

    /// The settings of the controlled workloads (without the stored states,
    /// as [`Db::controlled_workloads`]): all of them when `since` is `None`
    /// (or too old, see [`REMOVED_SETTINGS_KEPT_MS`] and
    /// [`STATE_WRITES_KEPT_MS`]), else only what was written or removed
    /// after it, found by the revision every write but a controller
    /// checkpoint sets (migration 026). A worker keeping the settings between
    /// ticks reads a few changed rows instead of every workload's. Of the
    /// states stored since, only the slots are read (migration 029), and none
    /// of those `reader` stored itself ([`Db::record_decisions_as`]).
    pub async fn tick_settings_since(
        &self,
        since: Option<SettingsMark>,
        reader: Option<&str>,
    ) -> Result<SettingsRead, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let since = since.filter(|m| {
            now_ms - m.taken_ms < REMOVED_SETTINGS_KEPT_MS.min(STATE_WRITES_KEPT_MS) / 2
        });
        // Taken before reading: what is written meanwhile is read again next
        // time rather than missed.
        let mark = SettingsMark {
            revision: self.settings_revision().await?,
            taken_ms: now_ms,
        };
        let Some(since) = since else {
            return Ok(SettingsRead {
                whole: true,
                changed: self.tick_settings().await?,
                removed: Vec::new(),
                state_slots: Vec::new(),
                mark,
            });
        };
        let backend = self.conn().get_database_backend();
        // The rows written since, and the keys removed since that are not
        // there now (made again since, the row is read; made again before
        // the mark, it was read then and has not changed): one statement,
        // one snapshot; the last column says which. Beside it, the states
        // other writers stored since (migration 029).
        let nulls = vec!["NULL"; SETTINGS_COUNT].join(", ");
        let settings = crate::sql::rows(
            self.conn(),
            format!(
                "SELECT {}, organization_id, workload, CAST(0 AS BIGINT) \
                 FROM allocation_settings WHERE revision >= {} \
                 UNION ALL SELECT {nulls}, r.organization_id, r.workload, CAST(1 AS BIGINT) \
                 FROM allocation_settings_removed r WHERE r.revision >= {} \
                 AND NOT EXISTS (SELECT 1 FROM allocation_settings s \
                   WHERE s.organization_id = r.organization_id AND s.workload = r.workload)",
                tick_settings_columns(backend, ""),
                ph(backend, 1),
                ph(backend, 2),
            ),
            vec![since.revision.into(); 2],
        );
        let settings = async { settings.await.map_err(StoreError::from) };
        let (rows, state_slots) =
            futures::future::try_join(settings, self.states_stored_since(since.revision, reader))
                .await?;
        let mut read = SettingsRead {
            whole: false,
            changed: Vec::with_capacity(rows.len()),
            removed: Vec::new(),
            state_slots,
            mark,
        };
        for r in &rows {
            let tenant = Tenant::new(r.try_get_by_index::<String>(SETTINGS_COUNT)?);
            match r.try_get_by_index::<i64>(SETTINGS_COUNT + 2)? {
                0 => read.changed.push((tenant, settings_from_row(r)?)),
                _ => read.removed.push((
                    tenant.id().to_owned(),
                    r.try_get_by_index(SETTINGS_COUNT + 1)?,
                )),
            }
        }
        Ok(read)
    }

    /// The slots of the states stored at or after `revision`, but for
    /// `reader`'s own (it knows them), by (organisation id, workload): the
    /// newest of each.
    async fn states_stored_since(
        &self,
        revision: i64,
        reader: Option<&str>,
    ) -> Result<Vec<((String, String), i64)>, StoreError> {
        let backend = self.conn().get_database_backend();
        let mut values: Vec<Value> = vec![revision.into()];
        let others = match reader {
            Some(me) => {
                values.push(me.into());
                format!(" AND (writer IS NULL OR writer <> {})", ph(backend, 2))
            }
            None => String::new(),
        };
        let mut slots: HashMap<(String, String), i64> = HashMap::new();
        for r in crate::sql::rows(
            self.conn(),
            format!(
                "SELECT keys FROM allocation_state_writes WHERE revision >= {}{others}",
                ph(backend, 1)
            ),
            values,
        )
        .await?
        {
            let keys: Vec<u8> = r.try_get_by_index(0)?;
            let keys: Vec<StoredKey<'_>> = postcard::from_bytes(&keys)
                .map_err(|e| StoreError::Corrupt(format!("stored states' keys: {e}")))?;
            for (org, workload, slot) in keys {
                let newest = slots
                    .entry((org.into_owned(), workload.into_owned()))
                    .or_insert(slot);
                *newest = (*newest).max(slot);
            }
        }
        Ok(slots.into_iter().collect())
    }

    /// The revision from which rows may not have been seen by a read
    /// starting now.
    async fn settings_revision(&self) -> Result<i64, StoreError> {
        let sql = match self.conn().get_database_backend() {
            // The oldest transaction still running: every row version this
            // snapshot does not see was written by it or a later one.
            sea_orm::DbBackend::Postgres => {
                "SELECT CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"
            }
            // Writers take turns: the next write gets the next revision.
            _ => "SELECT revision + 1 FROM allocation_settings_clock WHERE id = 1",
        };
        let row = crate::sql::row(self.conn(), sql.to_owned(), vec![])
            .await?
            .ok_or_else(|| StoreError::Corrupt("no settings revision".into()))?;
        Ok(row.try_get_by_index(0)?)
    }

    /// Forgets notes of settings removed before `cutoff_ms` (see
    /// [`REMOVED_SETTINGS_KEPT_MS`]); how many.
    pub async fn prune_removed_settings(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let backend = self.conn().get_database_backend();
        let done = crate::sql::exec(
            self.conn(),
            format!(
                "DELETE FROM allocation_settings_removed WHERE removed_at < {}",
                ph(backend, 1)
            ),
            vec![cutoff_ms.into()],
        )
        .await?;
        Ok(done.rows_affected())
    }

    /// Forgets notes of controller states stored before `cutoff_ms` (see
    /// [`STATE_WRITES_KEPT_MS`]); how many.
    pub async fn prune_state_writes(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let backend = self.conn().get_database_backend();
        let done = crate::sql::exec(
            self.conn(),
            format!(
                "DELETE FROM allocation_state_writes WHERE written_at < {}",
                ph(backend, 1)
            ),
            vec![cutoff_ms.into()],
        )
        .await?;
        Ok(done.rows_affected())
    }

    /// [`Db::controlled_workloads`], on PostgreSQL in [`TICK_READ_PARTS`]
    /// parts read at once, so the rows are decoded on as many cores.
    async fn tick_settings(&self) -> Result<Vec<(Tenant, StoredSettings)>, StoreError> {
        if self.postgres_pool().is_none() {
            return self.controlled_workloads().await;
        }
        let parts: Vec<_> = (0..TICK_READ_PARTS)
            .map(|part| {
                let db = self.clone();
                tokio::spawn(async move {
                    let columns = tick_settings_columns(db.conn().get_database_backend(), "s.");
                    let rows = crate::sql::rows(
                        db.conn(),
                        format!(
                            "SELECT {columns}, organization_id FROM allocation_settings s \
                             WHERE s.mode <> 'off' \
                             AND (hashtext(s.organization_id || '/' || s.workload) & 2147483647) \
                             % $1 = $2"
                        ),
                        vec![(TICK_READ_PARTS as i32).into(), (part as i32).into()],
                    )
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push((
                            Tenant::new(r.try_get_by_index::<String>(SETTINGS_COUNT)?),
                            settings_from_row(r)?,
                        ));
                    }
                    Ok::<_, StoreError>(out)
                })
            })
            .collect();
        let mut out = join_parts(parts).await?;
        out.sort_unstable_by(|(a, x), (b, y)| (a.id(), &x.workload).cmp(&(b.id(), &y.workload)));
        Ok(out)
    }

    /// Each series' mean over `[from_ms, to_ms)` (minute rollups) and newest
    /// forecast at `horizon`, in the order of `keys`; by index probes, on
    /// PostgreSQL in [`TICK_READ_PARTS`] parts read at once.
    async fn tick_reads_for(
        &self,
        keys: Vec<SeriesRef>,
        from_ms: i64,
        to_ms: i64,
        horizon: &str,
    ) -> Result<Vec<TickRead>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if self.postgres_pool().is_none() {
            let mut out = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(SERIES_KEYS_SQLITE) {
                out.extend(
                    self.tick_reads_sqlite(chunk, from_ms, to_ms, horizon)
                        .await?,
                );
            }
            return Ok(out);
        }
        let part_len = keys.len().div_ceil(TICK_READ_PARTS);
        let mut rest = keys;
        let mut parts = Vec::with_capacity(TICK_READ_PARTS);
        while !rest.is_empty() {
            let tail = rest.split_off(part_len.min(rest.len()));
            let part = std::mem::replace(&mut rest, tail);
            let (db, horizon) = (self.clone(), horizon.to_owned());
            parts.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(part.len());
                for chunk in part.chunks(STATE_KEYS_PG) {
                    out.extend(db.tick_reads_pg(chunk, from_ms, to_ms, &horizon).await?);
                }
                Ok::<_, StoreError>(out)
            }));
        }
        join_parts(parts).await
    }

    async fn tick_reads_pg(
        &self,
        keys: &[SeriesRef],
        from_ms: i64,
        to_ms: i64,
        horizon: &str,
    ) -> Result<Vec<TickRead>, StoreError> {
        type Row = (
            i64,
            Option<f64>,
            Option<i64>,
            Option<i64>,
            Option<i32>,
            Option<i64>,
            Option<String>,
            Option<Vec<u8>>,
        );
        let pool = self
            .postgres_pool()
            .ok_or_else(|| StoreError::Db(sea_orm::DbErr::Custom("not PostgreSQL".into())))?;
        let column = |f: fn(&SeriesRef) -> &str| keys.iter().map(f).collect::<Vec<&str>>();
        let rows: Vec<Row> = sea_orm::sqlx::query_as(
            "SELECT k.i, m.total, m.n, f.origin, f.step_secs, f.made_at, f.model_version, \
             f.steps_packed \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY \
               AS k(org, workload, metric, i) \
             LEFT JOIN LATERAL (SELECT SUM(r.sum) AS total, CAST(SUM(r.count) AS BIGINT) AS n \
               FROM metric_rollups r WHERE r.organization_id = k.org \
               AND r.workload = k.workload AND r.metric = k.metric AND r.resolution = 60 \
               AND r.bucket_start >= $4 AND r.bucket_start < $5) m ON TRUE \
             LEFT JOIN LATERAL (SELECT g.origin, g.step_secs, g.made_at, g.model_version, \
               g.steps_packed FROM forecasts g WHERE g.organization_id = k.org \
               AND g.workload = k.workload AND g.metric = k.metric AND g.horizon = $6 \
               ORDER BY g.origin DESC LIMIT 1) f ON TRUE \
             ORDER BY k.i",
        )
        .bind(column(|k| &k.organization))
        .bind(column(|k| &k.workload))
        .bind(column(|k| &k.metric))
        .bind(from_ms)
        .bind(to_ms)
        .bind(horizon)
        .fetch_all(pool)
        .await
        .map_err(StoreError::Sqlx)?;
        if rows.len() != keys.len() {
            return Err(StoreError::Db(sea_orm::DbErr::Custom(format!(
                "tick read returned {} rows for {} series",
                rows.len(),
                keys.len()
            ))));
        }
        Ok(keys
            .iter()
            .zip(rows)
            .map(
                |(k, (_, total, n, origin, step_secs, made_at, version, steps))| {
                    let forecast = match (origin, step_secs, made_at, version) {
                        (
                            Some(origin_ms),
                            Some(step_secs),
                            Some(made_at_ms),
                            Some(model_version),
                        ) => k
                            .forecast(
                                horizon,
                                (origin_ms, i64::from(step_secs), made_at_ms),
                                model_version,
                                steps,
                            )
                            .map(Some),
                        _ => Ok(None),
                    };
                    TickRead {
                        mean: mean_of(total, n),
                        forecast,
                    }
                },
            )
            .collect())
    }

    async fn tick_reads_sqlite(
        &self,
        keys: &[SeriesRef],
        from_ms: i64,
        to_ms: i64,
        horizon: &str,
    ) -> Result<Vec<TickRead>, StoreError> {
        let backend = self.conn().get_database_backend();
        // (index, organisation, workload, metric) per key.
        let values = || -> Vec<Value> {
            keys.iter()
                .enumerate()
                .flat_map(|(i, k)| {
                    [
                        Value::from(i as i64),
                        Value::from(k.organization.as_str()),
                        Value::from(k.workload.as_str()),
                        Value::from(k.metric.as_str()),
                    ]
                })
                .collect()
        };
        let keys_sql = crate::sql::values_clause(backend, keys.len(), 4);
        let mut means = values();
        means.extend([Value::from(from_ms), Value::from(to_ms)]);
        let mean_rows = crate::sql::rows(
            self.conn(),
            format!(
                "SELECT k.column1, SUM(r.sum), CAST(SUM(r.count) AS BIGINT) \
                 FROM (VALUES {keys_sql}) AS k JOIN metric_rollups r \
                 ON r.organization_id = k.column2 AND r.workload = k.column3 \
                 AND r.metric = k.column4 AND r.resolution = 60 \
                 AND r.bucket_start >= ? AND r.bucket_start < ? GROUP BY k.column1"
            ),
            means,
        )
        .await?;
        let mut out: Vec<TickRead> = keys
            .iter()
            .map(|_| TickRead {
                mean: None,
                forecast: Ok(None),
            })
            .collect();
        let at = |r: &sea_orm::QueryResult| -> Result<usize, StoreError> {
            let i: i64 = r.try_get_by_index(0)?;
            usize::try_from(i)
                .ok()
                .filter(|&i| i < keys.len())
                .ok_or_else(|| StoreError::Corrupt(format!("tick read: no key {i}")))
        };
        for r in &mean_rows {
            out[at(r)?].mean = mean_of(r.try_get_by_index(1)?, r.try_get_by_index(2)?);
        }
        let mut forecasts = values();
        forecasts.extend([Value::from(horizon), Value::from(horizon)]);
        let forecast_rows = crate::sql::rows(
            self.conn(),
            format!(
                "SELECT k.column1, f.origin, f.step_secs, f.made_at, f.model_version, \
                 f.steps_packed FROM (VALUES {keys_sql}) AS k JOIN forecasts f \
                 ON f.organization_id = k.column2 AND f.workload = k.column3 \
                 AND f.metric = k.column4 AND f.horizon = ? \
                 AND f.origin = (SELECT MAX(g.origin) FROM forecasts g \
                   WHERE g.organization_id = k.column2 AND g.workload = k.column3 \
                   AND g.metric = k.column4 AND g.horizon = ?)"
            ),
            forecasts,
        )
        .await?;
        for r in &forecast_rows {
            let i = at(r)?;
            out[i].forecast = keys[i]
                .forecast(
                    horizon,
                    (
                        r.try_get_by_index(1)?,
                        i64::from(r.try_get_by_index::<i32>(2)?),
                        r.try_get_by_index(3)?,
                    ),
                    r.try_get_by_index(4)?,
                    r.try_get_by_index(5)?,
                )
                .map(Some);
        }
        Ok(out)
    }

    /// The stored controller states of `keys` (organisation id, workload):
    /// what a tick reads for the workloads whose state the worker does not
    /// keep. A key without settings is absent.
    pub async fn controller_states(
        &self,
        keys: &[(&str, &str)],
    ) -> Result<HashMap<(String, String), StoredState>, StoreError> {
        let mut out = HashMap::with_capacity(keys.len());
        if let Some(pool) = self.postgres_pool() {
            type Row = (String, String, Option<Vec<u8>>, Option<String>, Option<i64>);
            for chunk in keys.chunks(STATE_KEYS_PG) {
                let (orgs, workloads): (Vec<&str>, Vec<&str>) = chunk.iter().copied().unzip();
                let rows: Vec<Row> = sea_orm::sqlx::query_as(
                    "SELECT s.organization_id, s.workload, s.controller_state, s.state, \
                     s.controller_state_slot FROM allocation_settings s \
                     JOIN UNNEST($1::text[], $2::text[]) AS k(org, workload) \
                     ON s.organization_id = k.org AND s.workload = k.workload",
                )
                .bind(orgs)
                .bind(workloads)
                .fetch_all(pool)
                .await
                .map_err(StoreError::Sqlx)?;
                for (org, workload, state, state_json, slot) in rows {
                    out.insert(
                        (org, workload),
                        StoredState {
                            state,
                            state_json,
                            slot,
                        },
                    );
                }
            }
        } else {
            let backend = self.conn().get_database_backend();
            for chunk in keys.chunks(STATE_KEYS_SQLITE) {
                let values: Vec<Value> = chunk
                    .iter()
                    .flat_map(|(o, w)| [Value::from(*o), Value::from(*w)])
                    .collect();
                let rows = crate::sql::rows(
                    self.conn(),
                    format!(
                        "SELECT s.organization_id, s.workload, s.controller_state, s.state, \
                         s.controller_state_slot FROM allocation_settings s \
                         JOIN (VALUES {}) AS k \
                         ON s.organization_id = k.column1 AND s.workload = k.column2",
                        crate::sql::values_clause(backend, chunk.len(), 2)
                    ),
                    values,
                )
                .await?;
                for r in &rows {
                    out.insert(
                        (r.try_get_by_index(0)?, r.try_get_by_index(1)?),
                        StoredState {
                            state: r.try_get_by_index(2)?,
                            state_json: r.try_get_by_index(3)?,
                            slot: r.try_get_by_index(4)?,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Each workload's newest decision left `pending` (a tick interrupted
    /// between logging it and carrying it out).
    pub async fn pending_decisions(
        &self,
    ) -> Result<HashMap<(String, String), StoredDecision>, StoreError> {
        // Found through a partial index of pending decisions (migration 017);
        // one a newer decision superseded is not carried out.
        let pending = crate::sql::rows(
            self.conn(),
            format!(
                "SELECT {DECISION_COLUMNS}, organization_id FROM allocation_decisions d \
                 WHERE status = 'pending' AND NOT EXISTS (SELECT 1 FROM allocation_decisions n \
                   WHERE n.organization_id = d.organization_id AND n.workload = d.workload \
                   AND n.decided_at > d.decided_at) \
                 ORDER BY decided_at, id"
            ),
            vec![],
        )
        .await?;
        let mut out = HashMap::new();
        for r in &pending {
            let d = decision_from_row(r)?;
            let org: String = r.try_get_by_index(18)?;
            // Ordered oldest first: the newest stays.
            out.insert((org, d.workload.clone()), d);
        }
        // Superseded by a compact decision (few are pending: a tick carries
        // out what the one before left).
        let mut live = HashMap::with_capacity(out.len());
        for ((org, workload), d) in out {
            if !self.decided_after(&org, &workload, d.slot).await? {
                live.insert((org, workload), d);
            }
        }
        Ok(live)
    }

    /// Logs many decisions, like [`Db::record_decision`] for each (a
    /// workload's slot already decided changes nothing), with the controller
    /// states they leave. The controller's are kept in compact groups (see
    /// [`crate::decision_groups`]: an organisation's slot is best written in
    /// one call, since a later call for it reads and rewrites its groups);
    /// others one transaction per chunk of rows. Returns, in order, whether
    /// each was new.
    pub async fn record_decisions(
        &self,
        writes: &[DecisionWrite<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        self.record_decisions_as(writes, None).await
    }

    /// [`Db::record_decisions`], the states stored named as `writer`'s (see
    /// [`Db::tick_settings_since`]).
    pub async fn record_decisions_as(
        &self,
        writes: &[DecisionWrite<'_>],
        writer: Option<&str>,
    ) -> Result<Vec<bool>, StoreError> {
        let (controller, other): (Vec<usize>, Vec<usize>) =
            (0..writes.len()).partition(|&i| writes[i].decision.source == "controller");
        let mut new = vec![false; writes.len()];
        for (i, n) in controller
            .iter()
            .zip(self.record_grouped(writes, &controller, writer).await?)
        {
            new[*i] = n;
        }
        for chunk in other.chunks(DECISION_CHUNK) {
            let tx = self.conn().begin().await?;
            let rows: Vec<&DecisionWrite<'_>> = chunk.iter().map(|&i| &writes[i]).collect();
            let inserted = insert_decision_rows(&tx, &rows).await?;
            let fresh: Vec<(&DecisionWrite<'_>, &[u8])> = rows
                .iter()
                .filter(|w| inserted.contains(&w.decision.id))
                .filter_map(|w| Some((*w, w.state?)))
                .collect();
            store_states(&tx, &fresh, writer).await?;
            tx.commit().await?;
            for &i in chunk {
                new[i] = inserted.contains(&writes[i].decision.id);
            }
        }
        Ok(new)
    }

    /// Adds `note` to the detail of the decision already logged for
    /// `workload`'s `slot` by `source` (what a retried tick did to it).
    pub async fn append_decision_note(
        &self,
        tenant: &Tenant,
        workload: &str,
        source: &str,
        slot: i64,
        note: &str,
    ) -> Result<(), StoreError> {
        let p = binder(self.conn().get_database_backend());
        let updated = crate::sql::exec(
            self.conn(),
            format!(
                "UPDATE allocation_decisions SET detail = CASE WHEN detail IS NULL THEN {} \
                 ELSE detail || '; ' || {} END \
                 WHERE organization_id = {} AND workload = {} AND source = {} AND slot = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            ),
            vec![
                note.into(),
                note.into(),
                tenant.id().into(),
                workload.into(),
                source.into(),
                slot.into(),
            ],
        )
        .await?
        .rows_affected();
        // Not a row: a compact decision.
        if updated == 0 && source == "controller" {
            self.note_grouped(tenant, workload, slot, note).await?;
        }
        Ok(())
    }

    /// Records how a logged decision's command ended, and the fleet it left
    /// (instances, warm instances).
    pub async fn finish_decision(
        &self,
        tenant: &Tenant,
        d: &StoredDecision,
        status: &str,
        detail: Option<&str>,
        fleet: (i32, i32),
    ) -> Result<(), StoreError> {
        let workload = d.workload.as_str();
        let p = crate::sql::binder(self.conn().get_database_backend());
        let tx = self.conn().begin().await?;
        // Found by the slot key (the primary key on PostgreSQL, see
        // migration 021); the id only confirms it.
        crate::sql::exec(
            &tx,
            format!(
                "UPDATE allocation_decisions SET status = {}, detail = {} \
                 WHERE organization_id = {} AND source = {} AND slot = {} AND workload = {} \
                 AND id = {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7)
            ),
            vec![
                status.into(),
                detail.map(str::to_owned).into(),
                tenant.id().into(),
                d.source.clone().into(),
                d.slot.into(),
                workload.into(),
                d.id.clone().into(),
            ],
        )
        .await?;
        crate::sql::exec(
            &tx,
            format!(
                "UPDATE allocation_settings SET commanded = {}, warm_commanded = {} \
                 WHERE organization_id = {} AND workload = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            vec![
                fleet.0.into(),
                fleet.1.into(),
                tenant.id().into(),
                workload.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The allocation in force for a workload at an instant: the last applied
/// decision and the instances it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForceSnapshot {
    pub decision_id: String,
    pub instances: i32,
}

/// Workloads looked up per statement.
const WORKLOADS_PER_QUERY: usize = 100;

impl Db {
    /// For each `(workload, instant)`, the allocation in force then, if the
    /// workload ever had an applied decision by that instant. Reads only the
    /// decisions from the one in force at the earliest instant on, one
    /// statement per hundred workloads.
    pub async fn allocations_in_force(
        &self,
        tenant: &Tenant,
        at: &[(Option<&str>, i64)],
    ) -> Result<Vec<Option<InForceSnapshot>>, StoreError> {
        let mut workloads: Vec<&str> = at.iter().filter_map(|(w, _)| *w).collect();
        workloads.sort_unstable();
        workloads.dedup();
        if workloads.is_empty() {
            return Ok(vec![None; at.len()]);
        }
        let min = at.iter().map(|(_, t)| *t).min().unwrap_or_default();
        let max = at.iter().map(|(_, t)| *t).max().unwrap_or_default();
        let backend = self.db_backend();
        // workload → (decided_at, snapshot), oldest first.
        let mut found: std::collections::HashMap<String, Vec<(i64, InForceSnapshot)>> =
            std::collections::HashMap::new();
        for chunk in workloads.chunks(WORKLOADS_PER_QUERY) {
            let n = chunk.len();
            let sql = format!(
                "SELECT d.workload, d.id, d.decided_at, d.after_instances FROM allocation_decisions d \
                 WHERE d.organization_id = {} AND d.status = 'applied' AND d.workload IN ({}) \
                 AND d.decided_at <= {} AND d.decided_at >= COALESCE((SELECT MAX(e.decided_at) \
                 FROM allocation_decisions e WHERE e.organization_id = d.organization_id \
                 AND e.workload = d.workload AND e.status = 'applied' AND e.decided_at <= {}), {}) \
                 ORDER BY d.workload, d.decided_at",
                ph(backend, 1),
                placeholders(backend, 2, n).join(", "),
                ph(backend, n + 2),
                ph(backend, n + 3),
                ph(backend, n + 4)
            );
            let mut values: Vec<Value> = vec![tenant.id().into()];
            values.extend(chunk.iter().map(|w| Value::from(*w)));
            values.extend([max.into(), min.into(), min.into()]);
            for r in crate::sql::rows(self.conn(), sql, values).await? {
                found.entry(r.try_get_by_index(0)?).or_default().push((
                    r.try_get_by_index(2)?,
                    InForceSnapshot {
                        decision_id: r.try_get_by_index(1)?,
                        instances: r.try_get_by_index(3)?,
                    },
                ));
            }
        }
        Ok(at
            .iter()
            .map(|(w, t)| {
                let list = found.get(*w.as_ref()?)?;
                // The last decided at or before the instant.
                let i = list.partition_point(|(d, _)| d <= t);
                i.checked_sub(1).map(|i| list[i].1.clone())
            })
            .collect())
    }
}
