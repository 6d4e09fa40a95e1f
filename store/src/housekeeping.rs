//! Queries behind the periodic housekeeping job and the status it reports.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryOrder, Statement,
};

use crate::entities::housekeeping_run::{self, Entity as HousekeepingRun};
use crate::{Db, StoreError};

/// What the status page shows about housekeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HousekeepingSummary {
    pub runs: u64,
    pub last_finished_at: Option<DateTime<Utc>>,
    pub last_pruned_jobs: Option<i64>,
}

/// One completed run, keyed by its schedule slot.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub tick_at: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub pruned_jobs: i64,
}

impl Db {
    /// Records a run; a second record for the same tick is ignored (returns false).
    pub async fn record_housekeeping_run(&self, run: RunRecord) -> Result<bool, StoreError> {
        let model = housekeeping_run::ActiveModel {
            id: NotSet,
            tick_at: Set(run.tick_at),
            started_at: Set(run.started_at),
            finished_at: Set(run.finished_at),
            pruned_jobs: Set(run.pruned_jobs),
        };
        let inserted = HousekeepingRun::insert(model)
            .on_conflict(
                OnConflict::column(housekeeping_run::Column::TickAt)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self.conn())
            .await?;
        Ok(inserted == 1)
    }

    pub async fn housekeeping_summary(&self) -> Result<HousekeepingSummary, StoreError> {
        let runs = HousekeepingRun::find().count(self.conn()).await?;
        let last = HousekeepingRun::find()
            .order_by_desc(housekeeping_run::Column::TickAt)
            .one(self.conn())
            .await?;
        Ok(HousekeepingSummary {
            runs,
            last_finished_at: last.as_ref().map(|r| r.finished_at),
            last_pruned_jobs: last.map(|r| r.pruned_jobs),
        })
    }

    /// Deletes background jobs that finished (done, killed, or failed for good)
    /// before `cutoff`. The job queue lives in the same database, in the tables
    /// the queue library created.
    pub async fn prune_finished_jobs(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let stmt = match self.db_backend() {
            DbBackend::Postgres => Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM apalis.jobs \
                 WHERE (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
                 AND done_at < $1",
                [cutoff.into()],
            ),
            backend => Statement::from_sql_and_values(
                backend,
                "DELETE FROM Jobs \
                 WHERE (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts)) \
                 AND done_at < ?",
                [cutoff.timestamp().into()],
            ),
        };
        Ok(self.conn().execute_raw(stmt).await?.rows_affected())
    }
}
