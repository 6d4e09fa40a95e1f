//! The model registry: forecasting versions per horizon, their measured
//! accuracy, and which one is live. Platform-wide (the models are global).

use headroom_core::forecast::registry::Score;
use sea_orm::TransactionTrait;

use crate::sql::{binder, exec, row, rows};
use crate::{Db, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub horizon: String,
    pub version: String,
    /// `candidate`, `live` or `retired`.
    pub status: String,
    pub mase: Option<f64>,
    pub coverage: Option<f64>,
    pub steps: i64,
    pub series: i64,
    pub scored_ms: i64,
    pub promoted_ms: Option<i64>,
    pub recent_mase: Option<f64>,
    pub recent_ms: Option<i64>,
    pub note: Option<String>,
}

const COLUMNS: &str = "horizon, version, status, mase, coverage, steps, series, scored_at, \
    promoted_at, recent_mase, recent_at, note";

fn from_row(r: &sea_orm::QueryResult) -> Result<ModelVersion, StoreError> {
    Ok(ModelVersion {
        horizon: r.try_get_by_index(0)?,
        version: r.try_get_by_index(1)?,
        status: r.try_get_by_index(2)?,
        mase: r.try_get_by_index(3)?,
        coverage: r.try_get_by_index(4)?,
        steps: r.try_get_by_index(5)?,
        series: r.try_get_by_index(6)?,
        scored_ms: r.try_get_by_index(7)?,
        promoted_ms: r.try_get_by_index(8)?,
        recent_mase: r.try_get_by_index(9)?,
        recent_ms: r.try_get_by_index(10)?,
        note: r.try_get_by_index(11)?,
    })
}

impl Db {
    /// Every registered version, by horizon, live first, then newest scored.
    pub async fn model_versions(&self) -> Result<Vec<ModelVersion>, StoreError> {
        rows(
            self.conn(),
            format!(
                "SELECT {COLUMNS} FROM model_versions ORDER BY horizon, \
                 CASE status WHEN 'live' THEN 0 WHEN 'candidate' THEN 1 ELSE 2 END, \
                 scored_at DESC, version"
            ),
            vec![],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// The live version at `horizon`, if any.
    pub async fn live_model(&self, horizon: &str) -> Result<Option<ModelVersion>, StoreError> {
        let p = binder(self.db_backend());
        row(
            self.conn(),
            format!(
                "SELECT {COLUMNS} FROM model_versions WHERE horizon = {} AND status = 'live'",
                p(1)
            ),
            vec![horizon.into()],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Stores the scores of one scoring run and, in the same transaction,
    /// makes `live` the live version (retiring the one before) when it is
    /// not already. `note` says why, on every version scored.
    pub async fn record_model_scores(
        &self,
        horizon: &str,
        scored: &[(String, Score)],
        live: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let p = binder(self.db_backend());
        let tx = self.conn().begin().await?;
        for (version, s) in scored {
            exec(
                &tx,
                format!(
                    "INSERT INTO model_versions (horizon, version, status, mase, coverage, steps, \
                     series, scored_at, note) VALUES ({}, {}, 'candidate', {}, {}, {}, {}, {}, {}) \
                     ON CONFLICT (horizon, version) DO UPDATE SET mase = excluded.mase, \
                     coverage = excluded.coverage, steps = excluded.steps, \
                     series = excluded.series, scored_at = excluded.scored_at, \
                     note = excluded.note",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    p(7),
                    p(8)
                ),
                vec![
                    horizon.into(),
                    version.clone().into(),
                    s.mase.into(),
                    s.coverage.into(),
                    (s.steps as i64).into(),
                    (s.series as i64).into(),
                    now_ms.into(),
                    note.into(),
                ],
            )
            .await?;
        }
        let current = row(
            &tx,
            format!(
                "SELECT version FROM model_versions WHERE horizon = {} AND status = 'live'",
                p(1)
            ),
            vec![horizon.into()],
        )
        .await?
        .map(|r| r.try_get_by_index::<String>(0))
        .transpose()?;
        if current.as_deref() != Some(live) {
            exec(
                &tx,
                format!(
                    "UPDATE model_versions SET status = 'retired' WHERE horizon = {} AND status = 'live'",
                    p(1)
                ),
                vec![horizon.into()],
            )
            .await?;
            exec(
                &tx,
                format!(
                    "UPDATE model_versions SET status = 'live', promoted_at = {}, recent_mase = NULL, \
                     recent_at = NULL WHERE horizon = {} AND version = {}",
                    p(1),
                    p(2),
                    p(3)
                ),
                vec![now_ms.into(), horizon.into(), live.into()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The live version's accuracy over recent hours.
    pub async fn record_recent_accuracy(
        &self,
        horizon: &str,
        version: &str,
        mase: f64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let p = binder(self.db_backend());
        exec(
            self.conn(),
            format!(
                "UPDATE model_versions SET recent_mase = {}, recent_at = {} \
                 WHERE horizon = {} AND version = {}",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            vec![mase.into(), now_ms.into(), horizon.into(), version.into()],
        )
        .await?;
        Ok(())
    }
}
