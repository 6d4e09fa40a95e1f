//! Allocation settings, the controller's state per workload, and the
//! decision log.

use sea_orm::{ConnectionTrait, Statement, TransactionTrait, Value};

use crate::sql::{placeholder as ph, placeholders};
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
    /// The controller's state as JSON.
    pub state_json: Option<String>,
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
}

const SETTINGS_COLUMNS: &str = "workload, metric, units_per_instance, mode, min_instances, \
    max_instances, target, priority, provider, provider_ref, commanded, state, \
    last_suggestion_at, updated_at, readiness_event, memory_mib_per_instance, instance_type, \
    allow_spot, on_demand_micros_per_hour, warm_commanded";
/// Columns in `SETTINGS_COLUMNS`.
const SETTINGS_COUNT: usize = 20;

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
        state_json: r.try_get_by_index(11)?,
        last_suggestion_ms: r.try_get_by_index(12)?,
        updated_ms: r.try_get_by_index(13)?,
        readiness_event: r.try_get_by_index(14)?,
        memory_mib_per_instance: r.try_get_by_index(15)?,
        instance_type: r.try_get_by_index(16)?,
        allow_spot: r.try_get_by_index(17)?,
        on_demand_micros_per_hour: r.try_get_by_index(18)?,
        warm_commanded: r.try_get_by_index(19)?,
    })
}

const DECISION_COLUMNS: &str = "id, workload, source, slot, decided_at, mode, before_instances, \
    after_instances, warm, reason, limits, observed, sized_for, forecast_version, status, \
    command_id, detail";

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
             on_demand_micros_per_hour = excluded.on_demand_micros_per_hour{fleet_update}",
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
            s.state_json.clone().into(),
            s.last_suggestion_ms.into(),
            s.updated_ms.into(),
            s.readiness_event.clone().into(),
            s.memory_mib_per_instance.into(),
            s.instance_type.clone().into(),
            s.allow_spot.into(),
            s.on_demand_micros_per_hour.into(),
            s.warm_commanded.into(),
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
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT {SETTINGS_COLUMNS} FROM allocation_settings WHERE organization_id = {} ORDER BY workload",
            ph(backend, 1)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![tenant.id().into()],
            ))
            .await?;
        rows.iter().map(settings_from_row).collect()
    }

    /// Every workload the controller acts for (mode not `off`), in every
    /// organisation, each with its tenant.
    pub async fn controlled_workloads(&self) -> Result<Vec<(Tenant, StoredSettings)>, StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT {SETTINGS_COLUMNS}, organization_id FROM allocation_settings \
             WHERE mode <> 'off' ORDER BY organization_id, workload"
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

    /// Logs a decision and, in the same transaction, stores the state and fleet
    /// it leaves. A decision for a slot already decided (a retried tick, a
    /// replayed suggestion) changes nothing; returns whether it was new.
    pub async fn record_decision(
        &self,
        tenant: &Tenant,
        d: &StoredDecision,
        state_json: Option<&str>,
        commanded: i32,
        suggestion_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let backend = self.conn().get_database_backend();
        let tx = self.conn().begin().await?;
        let sql = format!(
            "INSERT INTO allocation_decisions (organization_id, {DECISION_COLUMNS}) VALUES ({}) \
             ON CONFLICT (organization_id, workload, source, slot) DO NOTHING",
            placeholders(backend, 1, 18).join(", ")
        );
        let values: Vec<Value> = vec![
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
        ];
        let inserted = tx
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected()
            == 1;
        if inserted {
            let sql = format!(
                "UPDATE allocation_settings SET state = COALESCE({}, state), commanded = {}, \
                 last_suggestion_at = COALESCE({}, last_suggestion_at) \
                 WHERE organization_id = {} AND workload = {}",
                ph(backend, 1),
                ph(backend, 2),
                ph(backend, 3),
                ph(backend, 4),
                ph(backend, 5)
            );
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![
                    state_json.map(str::to_owned).into(),
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
        let backend = self.conn().get_database_backend();
        let mut values: Vec<Value> = vec![tenant.id().into()];
        let mut sql = format!(
            "SELECT {DECISION_COLUMNS} FROM allocation_decisions WHERE organization_id = {}",
            ph(backend, 1)
        );
        if let Some(w) = workload {
            sql += &format!(" AND workload = {}", ph(backend, 2));
            values.push(w.into());
        }
        sql += &format!(
            " ORDER BY decided_at DESC, id DESC LIMIT {}",
            limit.min(1000)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter().map(decision_from_row).collect()
    }

    /// Mean of a series over `[from_ms, to_ms)` from its minute rollups.
    pub async fn recent_mean(
        &self,
        tenant: &Tenant,
        workload: &str,
        metric: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<f64>, StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "SELECT SUM(sum), CAST(SUM(count) AS BIGINT) FROM metric_rollups WHERE organization_id = {} \
             AND workload = {} AND metric = {} AND resolution = 60 AND bucket_start >= {} \
             AND bucket_start < {}",
            ph(backend, 1),
            ph(backend, 2),
            ph(backend, 3),
            ph(backend, 4),
            ph(backend, 5)
        );
        let row = self
            .conn()
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![
                    tenant.id().into(),
                    workload.into(),
                    metric.into(),
                    from_ms.into(),
                    to_ms.into(),
                ],
            ))
            .await?;
        let Some(r) = row else { return Ok(None) };
        let sum: Option<f64> = r.try_get_by_index(0)?;
        let count: Option<i64> = r.try_get_by_index(1)?;
        Ok(match (sum, count) {
            (Some(s), Some(c)) if c > 0 => Some(s / c as f64),
            _ => None,
        })
    }
}

impl Db {
    /// Records how a logged decision's command ended, and the fleet it left
    /// (instances, warm instances).
    pub async fn finish_decision(
        &self,
        tenant: &Tenant,
        workload: &str,
        id: &str,
        status: &str,
        detail: Option<&str>,
        fleet: (i32, i32),
    ) -> Result<(), StoreError> {
        let p = crate::sql::binder(self.conn().get_database_backend());
        let tx = self.conn().begin().await?;
        crate::sql::exec(
            &tx,
            format!(
                "UPDATE allocation_decisions SET status = {}, detail = {} \
                 WHERE organization_id = {} AND id = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            vec![
                status.into(),
                detail.map(str::to_owned).into(),
                tenant.id().into(),
                id.into(),
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
