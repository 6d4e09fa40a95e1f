//! Stored forecasts, and which series are active enough to forecast.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::{Db, StoreError, Tenant};

/// A series some organisation has reported recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSeries {
    pub tenant: Tenant,
    pub workload: String,
    pub metric: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredForecast {
    pub workload: String,
    pub metric: String,
    pub horizon: String,
    /// Start of the last observed step (unix ms); step h starts at origin + h × step.
    pub origin_ms: i64,
    pub step_secs: i64,
    pub made_at_ms: i64,
    pub model_version: String,
    /// JSON array of {p10, p50, p90, model}.
    pub steps_json: String,
}

fn placeholder(backend: DbBackend) -> impl Fn(usize) -> String {
    move |n| {
        if backend == DbBackend::Postgres {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    }
}

impl Db {
    /// Series with minute rollups since `since_ms`, in every organisation (for
    /// the forecast job; each result carries its tenant).
    pub async fn active_series(&self, since_ms: i64) -> Result<Vec<ActiveSeries>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = placeholder(backend);
        let sql = format!(
            "SELECT DISTINCT organization_id, workload, metric FROM metric_rollups \
             WHERE resolution = {} AND bucket_start >= {} \
             ORDER BY organization_id, workload, metric",
            p(1),
            p(2)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![60i32.into(), since_ms.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ActiveSeries {
                    tenant: Tenant::new(r.try_get_by_index::<String>(0)?),
                    workload: r.try_get_by_index(1)?,
                    metric: r.try_get_by_index(2)?,
                })
            })
            .collect()
    }

    /// Stores a forecast; a second forecast for the same series, horizon and
    /// origin (a retried job) leaves the first in place. Returns whether it was new.
    pub async fn insert_forecast(
        &self,
        tenant: &Tenant,
        f: &StoredForecast,
    ) -> Result<bool, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = placeholder(backend);
        let sql = format!(
            "INSERT INTO forecasts (organization_id, workload, metric, horizon, origin, step_secs, \
             made_at, model_version, steps) VALUES ({}) \
             ON CONFLICT (organization_id, workload, metric, horizon, origin) DO NOTHING",
            (1..=9).map(&p).collect::<Vec<_>>().join(", ")
        );
        let values: Vec<Value> = vec![
            tenant.id().into(),
            f.workload.clone().into(),
            f.metric.clone().into(),
            f.horizon.clone().into(),
            f.origin_ms.into(),
            (f.step_secs as i32).into(),
            f.made_at_ms.into(),
            f.model_version.clone().into(),
            f.steps_json.clone().into(),
        ];
        let done = self
            .conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The latest forecast per metric and horizon of one workload.
    pub async fn latest_forecasts(
        &self,
        tenant: &Tenant,
        workload: &str,
    ) -> Result<Vec<StoredForecast>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = placeholder(backend);
        let sql = format!(
            "SELECT f.workload, f.metric, f.horizon, f.origin, f.step_secs, f.made_at, \
             f.model_version, f.steps FROM forecasts f \
             WHERE f.organization_id = {} AND f.workload = {} AND f.origin = ( \
               SELECT MAX(g.origin) FROM forecasts g WHERE g.organization_id = {} \
               AND g.workload = {} AND g.metric = f.metric AND g.horizon = f.horizon) \
             ORDER BY f.metric, f.horizon",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                // Bound once per placeholder: SQLite's `?` are positional.
                vec![
                    tenant.id().into(),
                    workload.into(),
                    tenant.id().into(),
                    workload.into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredForecast {
                    workload: r.try_get_by_index(0)?,
                    metric: r.try_get_by_index(1)?,
                    horizon: r.try_get_by_index(2)?,
                    origin_ms: r.try_get_by_index(3)?,
                    step_secs: i64::from(r.try_get_by_index::<i32>(4)?),
                    made_at_ms: r.try_get_by_index(5)?,
                    model_version: r.try_get_by_index(6)?,
                    steps_json: r.try_get_by_index(7)?,
                })
            })
            .collect()
    }
}
