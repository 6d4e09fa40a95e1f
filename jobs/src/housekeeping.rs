//! The periodic housekeeping job: prunes finished background jobs, expired
//! browser sessions, observations and allocation decisions past their
//! retention, and records each run once per schedule slot. Every cutoff is
//! measured from the schedule slot, so a late or retried run prunes what an
//! on-time run would have.

use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use chrono::{DateTime, Utc};
use headroom_core::retention::prune_cutoff;
use headroom_store::{Db, housekeeping::RunRecord};

/// What every housekeeping run needs; handed to the worker as shared data.
#[derive(Debug, Clone)]
pub struct Housekeeping {
    pub db: Db,
    pub job_retention: Duration,
    pub telemetry_retention: headroom_store::telemetry::Retention,
    /// Allocation decisions older than this are pruned, except those billing
    /// and the controller still read ([`Db::prune_decisions`]).
    pub decision_retention: Duration,
}

pub async fn run(tick: Tick, ctx: Data<Housekeeping>) -> Result<(), BoxDynError> {
    let started_at = Utc::now();
    let tick_at = i64::try_from(tick.get_timestamp())?;
    let cutoff = DateTime::<Utc>::from_timestamp(prune_cutoff(tick_at, ctx.job_retention), 0)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let pruned = ctx.db.prune_finished_jobs(cutoff).await?;
    let sessions = ctx
        .db
        .sessions_delete_expired(started_at.timestamp())
        .await?;
    let slot_ms = tick_at.saturating_mul(1000);
    let observations = ctx
        .db
        .prune_telemetry(slot_ms, ctx.telemetry_retention)
        .await?;
    let decisions = ctx
        .db
        .prune_decisions(prune_cutoff(tick_at, ctx.decision_retention).saturating_mul(1000))
        .await?;
    let removed_settings = ctx
        .db
        .prune_removed_settings(
            tick_at
                .saturating_mul(1000)
                .saturating_sub(headroom_store::allocation::REMOVED_SETTINGS_KEPT_MS),
        )
        .await?;
    let state_writes = ctx
        .db
        .prune_state_writes(
            tick_at
                .saturating_mul(1000)
                .saturating_sub(headroom_store::allocation::STATE_WRITES_KEPT_MS),
        )
        .await?;
    let recorded = ctx
        .db
        .record_housekeeping_run(RunRecord {
            tick_at,
            started_at,
            finished_at: Utc::now(),
            pruned_jobs: i64::try_from(pruned).unwrap_or(i64::MAX),
        })
        .await?;
    metrics::counter!("headroom_housekeeping_runs_total").increment(1);
    metrics::counter!("headroom_jobs_pruned_total").increment(pruned);
    metrics::counter!("headroom_sessions_expired_total").increment(sessions);
    metrics::counter!("headroom_observations_pruned_total").increment(observations);
    metrics::counter!("headroom_decisions_pruned_total").increment(decisions);
    tracing::info!(
        tick_at,
        pruned,
        sessions,
        observations,
        decisions,
        removed_settings,
        state_writes,
        recorded,
        "housekeeping run finished"
    );
    Ok(())
}
