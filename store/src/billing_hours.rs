//! Inputs recorded as each hour closes: platform load and whether an
//! organisation's workload profiles were current.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use headroom_core::billing::rating::instance_ms_by_hour;
use headroom_core::billing::{Decimal, HOUR_MS};
use sea_orm::{ConnectionTrait, Statement};

use crate::sql::{binder, exec, placeholders, row, rows};
use crate::{Db, StoreError, Tenant};

impl Db {
    /// Instance-milliseconds in force across every organisation in the hour
    /// starting at `hour_ms`.
    pub async fn platform_instance_ms(&self, hour_ms: i64) -> Result<i64, StoreError> {
        let steps = self.fleet_steps(None, hour_ms, hour_ms + HOUR_MS).await?;
        Ok(steps
            .values()
            .flat_map(|s| instance_ms_by_hour(s, hour_ms, hour_ms + HOUR_MS))
            .map(|(_, ms)| ms)
            .sum())
    }

    /// The newest hour with a recorded platform load.
    pub async fn last_platform_load_hour(&self) -> Result<Option<i64>, StoreError> {
        let backend = self.db_backend();
        let row = self
            .conn()
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT MAX(hour) FROM platform_load".to_owned(),
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get_by_index::<Option<i64>>(0))
            .transpose()?
            .flatten())
    }

    /// Records an hour's load once; a second recording changes nothing.
    pub async fn record_platform_load(
        &self,
        hour_ms: i64,
        instance_ms: i64,
        capacity_instances: i64,
        load: Decimal,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let backend = self.db_backend();
        let res = exec(self.conn(), format!(
                    "INSERT INTO platform_load (hour, instance_ms, capacity_instances, load, recorded_at) \
                     VALUES ({}) ON CONFLICT DO NOTHING",
                    placeholders(backend, 1, 5).join(", ")
                ), vec![
                    hour_ms.into(),
                    instance_ms.into(),
                    capacity_instances.into(),
                    load.to_string().into(),
                    now_ms.into(),
                ])
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Recorded platform load per hour in `[from_ms, to_ms)`.
    pub async fn platform_load(
        &self,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeMap<i64, Decimal>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let rows = rows(
            self.conn(),
            format!(
                "SELECT hour, load FROM platform_load WHERE hour >= {} AND hour < {}",
                p(1),
                p(2)
            ),
            vec![from_ms.into(), to_ms.into()],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let load: String = r.try_get_by_index(1)?;
                Ok((
                    r.try_get_by_index(0)?,
                    Decimal::from_str(&load).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Whether the organisation has workload profiles and all were updated
    /// after `since_ms`.
    pub async fn profiles_current(
        &self,
        tenant: &Tenant,
        since_ms: i64,
    ) -> Result<bool, StoreError> {
        let backend = self.db_backend();
        let row = row(self.conn(), format!(
                    "SELECT COUNT(*), MIN(updated_at) FROM workload_profiles WHERE organization_id = {}",
                    binder(backend)(1)
                ), vec![tenant.id().into()])
            .await?;
        let Some(r) = row else {
            return Ok(false);
        };
        let n: i64 = r.try_get_by_index(0)?;
        let oldest: Option<i64> = r.try_get_by_index(1)?;
        Ok(n > 0 && oldest.is_some_and(|t| t >= since_ms))
    }

    /// Records once whether the profiles were current in the hour.
    pub async fn record_profile_hour(
        &self,
        tenant: &Tenant,
        hour_ms: i64,
        current: bool,
    ) -> Result<bool, StoreError> {
        let backend = self.db_backend();
        let res = exec(self.conn(), format!(
                    "INSERT INTO profile_hours (organization_id, hour, current) VALUES ({}) ON CONFLICT DO NOTHING",
                    placeholders(backend, 1, 3).join(", ")
                ), vec![tenant.id().into(), hour_ms.into(), current.into()])
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// The newest hour recorded for the organisation.
    pub async fn last_profile_hour(&self, tenant: &Tenant) -> Result<Option<i64>, StoreError> {
        let backend = self.db_backend();
        let row = row(
            self.conn(),
            format!(
                "SELECT MAX(hour) FROM profile_hours WHERE organization_id = {}",
                binder(backend)(1)
            ),
            vec![tenant.id().into()],
        )
        .await?;
        Ok(row
            .map(|r| r.try_get_by_index::<Option<i64>>(0))
            .transpose()?
            .flatten())
    }

    /// Hours in `[from_ms, to_ms)` in which the profiles were current.
    pub async fn profile_current_hours(
        &self,
        tenant: &Tenant,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<BTreeSet<i64>, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let rows = rows(
            self.conn(),
            format!(
                "SELECT hour FROM profile_hours WHERE organization_id = {} AND current = {} \
                     AND hour >= {} AND hour < {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            vec![
                tenant.id().into(),
                true.into(),
                from_ms.into(),
                to_ms.into(),
            ],
        )
        .await?;
        rows.iter().map(|r| Ok(r.try_get_by_index(0)?)).collect()
    }
}
