//! Queries behind the periodic housekeeping job and the status it reports.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryOrder, Statement,
};

use crate::billing::UNDER_PROVISIONED;
use crate::entities::housekeeping_run::{self, Entity as HousekeepingRun};
use crate::sql::{binder, delete_in_batches, rows};
use crate::{Db, StoreError};

/// Decisions deleted per statement: a run over a large backlog neither holds
/// one huge transaction nor keeps SQLite's single writer (the tick) waiting long.
const DECISIONS_PER_DELETE: i64 = 5_000;
/// Compact decision groups per pruning statement (a group holds up to a few
/// hundred decisions).
const GROUPS_PER_DELETE: i64 = 500;

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

    /// Deletes allocation decisions made before `cutoff_ms`, except those
    /// something still reads however old they are:
    /// - applied decisions: the fleet in force, which billing rates and usage
    ///   events link to;
    /// - the ticks billing counts as under-provisioned ([`UNDER_PROVISIONED`]);
    /// - each workload's newest decision: a pending decision is carried out
    ///   only while nothing newer was decided, so the newest must stay to keep
    ///   an old pending one superseded.
    ///
    /// Compact decisions (see `decision_groups`) commanded nothing and go
    /// with their group. Returns how many rows were deleted (decisions, and
    /// groups of compact ones).
    pub async fn prune_decisions(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let backend = self.db_backend();
        let p = binder(backend);
        let orgs = rows(
            self.conn(),
            "SELECT id FROM organizations ORDER BY id".to_owned(),
            vec![],
        )
        .await?;
        // One organisation at a time: the (organisation, decided_at) index
        // finds the old rows without reading the rest of the log.
        let sql = format!(
            "DELETE FROM allocation_decisions WHERE organization_id = {} \
             AND (source, slot, workload) IN (\
               SELECT d.source, d.slot, d.workload FROM allocation_decisions d \
               WHERE d.organization_id = {} AND d.decided_at < {} AND d.status <> 'applied' \
               AND EXISTS (SELECT 1 FROM allocation_decisions n \
                 WHERE n.organization_id = d.organization_id AND n.workload = d.workload \
                 AND n.decided_at > d.decided_at) \
               AND NOT ({UNDER_PROVISIONED}) \
               LIMIT {})",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let mut deleted = 0;
        for org in &orgs {
            let org: String = org.try_get_by_index(0)?;
            let values = vec![
                org.as_str().into(),
                org.as_str().into(),
                cutoff_ms.into(),
                DECISIONS_PER_DELETE.into(),
            ];
            deleted += delete_in_batches(self.conn(), &sql, values, DECISIONS_PER_DELETE).await?;
            deleted += self
                .prune_groups(&org, cutoff_ms, GROUPS_PER_DELETE)
                .await?;
        }
        Ok(deleted)
    }
}
