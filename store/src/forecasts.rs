//! Stored forecasts, and which series are active enough to forecast.

use std::collections::HashSet;

use headroom_core::forecast::PackedSteps;
use sea_orm::{ConnectionTrait, Statement, Value};

use crate::sql::binder;
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
    /// The steps h = 1.. with the model that served each.
    pub steps: PackedSteps,
}

/// A stored forecast's `steps_packed`, checked (a row this version cannot
/// read is corrupt, not a panic later).
pub(crate) fn packed_steps(bytes: Option<Vec<u8>>) -> Result<PackedSteps, StoreError> {
    let bytes = bytes.ok_or_else(|| StoreError::Corrupt("a forecast without steps".into()))?;
    PackedSteps::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("forecast steps: {e}")))
}

impl Db {
    /// Series with minute rollups since `since_ms`, in every organisation (for
    /// the forecast job; each result carries its tenant).
    pub async fn active_series(&self, since_ms: i64) -> Result<Vec<ActiveSeries>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
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
        let p = binder(backend);
        let sql = format!(
            "INSERT INTO forecasts (organization_id, workload, metric, horizon, origin, step_secs, \
             made_at, model_version, steps_packed) VALUES ({}) \
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
            f.steps.as_bytes().to_vec().into(),
        ];
        let done = self
            .conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Series, by (organisation id, workload, metric), that already have a
    /// forecast at `horizon` from `origin_ms`: the forecast job has nothing
    /// new to say of them until their next step closes. Found through the
    /// `made_at` index (a forecast is made after its origin).
    pub async fn forecast_at_origin(
        &self,
        horizon: &str,
        origin_ms: i64,
    ) -> Result<HashSet<(String, String, String)>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT organization_id, workload, metric FROM forecasts \
             WHERE made_at >= {} AND horizon = {} AND origin = {}",
            p(1),
            p(2),
            p(3)
        );
        crate::sql::rows(
            self.conn(),
            sql,
            vec![origin_ms.into(), horizon.into(), origin_ms.into()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
            ))
        })
        .collect()
    }

    /// The latest forecast per metric and horizon of one workload.
    pub async fn latest_forecasts(
        &self,
        tenant: &Tenant,
        workload: &str,
    ) -> Result<Vec<StoredForecast>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT f.workload, f.metric, f.horizon, f.origin, f.step_secs, f.made_at, \
             f.model_version, f.steps_packed FROM forecasts f \
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
                    steps: packed_steps(r.try_get_by_index(7)?)?,
                })
            })
            .collect()
    }
}

/// A step that deviated from its workload's behavioural profile.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnomaly {
    pub workload: String,
    pub metric: String,
    pub ts_ms: i64,
    pub step_secs: i64,
    pub value: f64,
    pub expected: f64,
    pub score: f64,
    pub reason: String,
    pub detected_at_ms: i64,
}

impl Db {
    /// Stores anomalies; a step already stored is left as it was. Returns how
    /// many were new.
    pub async fn insert_anomalies(
        &self,
        tenant: &Tenant,
        anomalies: &[StoredAnomaly],
    ) -> Result<u64, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "INSERT INTO anomalies (organization_id, workload, metric, ts, step_secs, value, \
             expected, score, reason, detected_at) VALUES ({}) \
             ON CONFLICT (organization_id, workload, metric, ts) DO NOTHING",
            (1..=10).map(&p).collect::<Vec<_>>().join(", ")
        );
        let mut new = 0;
        for a in anomalies {
            let values: Vec<Value> = vec![
                tenant.id().into(),
                a.workload.clone().into(),
                a.metric.clone().into(),
                a.ts_ms.into(),
                (a.step_secs as i32).into(),
                a.value.into(),
                a.expected.into(),
                a.score.into(),
                a.reason.clone().into(),
                a.detected_at_ms.into(),
            ];
            new += self
                .conn()
                .execute_raw(Statement::from_sql_and_values(backend, sql.clone(), values))
                .await?
                .rows_affected();
        }
        Ok(new)
    }

    /// The organisation's anomalies in `[from_ms, to_ms)`, newest first, at most
    /// `limit`; optionally one workload only.
    pub async fn anomalies(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: u64,
    ) -> Result<Vec<StoredAnomaly>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let mut values: Vec<Value> = vec![tenant.id().into(), from_ms.into(), to_ms.into()];
        let mut sql = format!(
            "SELECT workload, metric, ts, step_secs, value, expected, score, reason, detected_at \
             FROM anomalies WHERE organization_id = {} AND ts >= {} AND ts < {}",
            p(1),
            p(2),
            p(3)
        );
        if let Some(w) = workload {
            sql += &format!(" AND workload = {}", p(4));
            values.push(w.into());
        }
        sql += &format!(
            " ORDER BY ts DESC, workload, metric LIMIT {}",
            limit.min(10_000)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredAnomaly {
                    workload: r.try_get_by_index(0)?,
                    metric: r.try_get_by_index(1)?,
                    ts_ms: r.try_get_by_index(2)?,
                    step_secs: i64::from(r.try_get_by_index::<i32>(3)?),
                    value: r.try_get_by_index(4)?,
                    expected: r.try_get_by_index(5)?,
                    score: r.try_get_by_index(6)?,
                    reason: r.try_get_by_index(7)?,
                    detected_at_ms: r.try_get_by_index(8)?,
                })
            })
            .collect()
    }
}

impl Db {
    /// Usage event types the organisation sent since `since_ms`.
    pub async fn usage_event_types(
        &self,
        tenant: &Tenant,
        since_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        let sql = format!(
            "SELECT DISTINCT event_type FROM usage_events WHERE organization_id = {} AND ts >= {} \
             ORDER BY event_type",
            p(1),
            p(2)
        );
        let rows = self
            .conn()
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                vec![tenant.id().into(), since_ms.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get_by_index::<String>(0)?))
            .collect()
    }

    /// Events of one type in `[from_ms, to_ms)`, counted per `bucket_ms`,
    /// oldest first.
    pub async fn usage_event_counts(
        &self,
        tenant: &Tenant,
        event_type: &str,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<EventCount>, StoreError> {
        let backend = self.conn().get_database_backend();
        let p = binder(backend);
        // `bucket_ms` is ours, never the caller's: inlined as a number.
        let bucket = bucket_ms.max(1);
        let sql = format!(
            "SELECT (ts / {bucket}) * {bucket} AS b, COUNT(*), COUNT(DISTINCT ts / 1000) \
             FROM usage_events \
             WHERE organization_id = {} AND event_type = {} AND ts >= {} AND ts < {} \
             GROUP BY b ORDER BY b",
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
                vec![
                    tenant.id().into(),
                    event_type.into(),
                    from_ms.into(),
                    to_ms.into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EventCount {
                    start_ms: r.try_get_by_index(0)?,
                    events: r.try_get_by_index(1)?,
                    seconds: r.try_get_by_index(2)?,
                })
            })
            .collect()
    }
}

/// Usage events of one type in one bucket of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCount {
    pub start_ms: i64,
    pub events: i64,
    /// Distinct seconds in which they arrived.
    pub seconds: i64,
}
