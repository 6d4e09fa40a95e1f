//! External events and workload profiles, as customers declare them.

use sea_orm::{ConnectionTrait, Statement, Value};

use crate::sql::placeholders;
use crate::{Db, StoreError, Tenant};

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: String,
    pub name: String,
    pub workload: Option<String>,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub multiplier: f64,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredProfile {
    pub workload: String,
    pub category: String,
    /// JSON array of UTC hours.
    pub peak_hours_json: String,
    pub expected_growth: f64,
    pub updated_ms: i64,
}

const EVENT_COLUMNS: &str = "id, name, workload, starts_at, ends_at, multiplier, created_at";

fn event_from_row(r: &sea_orm::QueryResult) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: r.try_get_by_index(0)?,
        name: r.try_get_by_index(1)?,
        workload: r.try_get_by_index(2)?,
        starts_ms: r.try_get_by_index(3)?,
        ends_ms: r.try_get_by_index(4)?,
        multiplier: r.try_get_by_index(5)?,
        created_ms: r.try_get_by_index(6)?,
    })
}

impl Db {
    pub async fn insert_external_event(
        &self,
        tenant: &Tenant,
        e: &StoredEvent,
    ) -> Result<(), StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "INSERT INTO external_events (organization_id, {EVENT_COLUMNS}) VALUES ({})",
            placeholders(backend, 1, 8).join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            e.id.clone().into(),
            e.name.clone().into(),
            e.workload.clone().into(),
            e.starts_ms.into(),
            e.ends_ms.into(),
            e.multiplier.into(),
            e.created_ms.into(),
        ];
        self.conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(())
    }

    /// Events ending after `after_ms` that apply to `workload` (or, when
    /// `workload` is `None`, all of the organisation's events), by start.
    pub async fn external_events(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
        after_ms: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = placeholders(backend, 1, 3);
        let mut values: Vec<Value> = vec![tenant.id().into(), after_ms.into()];
        let mut sql = format!(
            "SELECT {EVENT_COLUMNS} FROM external_events WHERE organization_id = {} AND ends_at > {}",
            p[0], p[1]
        );
        if let Some(w) = workload {
            // Organisation-wide events apply to every workload.
            sql += &format!(" AND (workload IS NULL OR workload = {})", p[2]);
            values.push(w.into());
        }
        sql += " ORDER BY starts_at, id";
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Deletes one of the organisation's events; false when it has no such event.
    pub async fn delete_external_event(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<bool, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = placeholders(backend, 1, 2);
        let sql = format!(
            "DELETE FROM external_events WHERE organization_id = {} AND id = {}",
            p[0], p[1]
        );
        let done = self
            .conn()
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![tenant.id().into(), id.into()],
            ))
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Creates or replaces the profile of a workload.
    pub async fn upsert_workload_profile(
        &self,
        tenant: &Tenant,
        p: &StoredProfile,
    ) -> Result<(), StoreError> {
        let backend = self.conn().get_database_backend();
        let sql = format!(
            "INSERT INTO workload_profiles (organization_id, workload, category, peak_hours, \
             expected_growth, updated_at) VALUES ({}) ON CONFLICT (organization_id, workload) \
             DO UPDATE SET category = excluded.category, peak_hours = excluded.peak_hours, \
             expected_growth = excluded.expected_growth, updated_at = excluded.updated_at",
            placeholders(backend, 1, 6).join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            p.workload.clone().into(),
            p.category.clone().into(),
            p.peak_hours_json.clone().into(),
            p.expected_growth.into(),
            p.updated_ms.into(),
        ];
        self.conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(())
    }

    /// The organisation's profiles, or one workload's.
    pub async fn workload_profiles(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
    ) -> Result<Vec<StoredProfile>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = placeholders(backend, 1, 2);
        let mut values: Vec<Value> = vec![tenant.id().into()];
        let mut sql = format!(
            "SELECT workload, category, peak_hours, expected_growth, updated_at \
             FROM workload_profiles WHERE organization_id = {}",
            p[0]
        );
        if let Some(w) = workload {
            sql += &format!(" AND workload = {}", p[1]);
            values.push(w.into());
        }
        sql += " ORDER BY workload";
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredProfile {
                    workload: r.try_get_by_index(0)?,
                    category: r.try_get_by_index(1)?,
                    peak_hours_json: r.try_get_by_index(2)?,
                    expected_growth: r.try_get_by_index(3)?,
                    updated_ms: r.try_get_by_index(4)?,
                })
            })
            .collect()
    }
}
