//! `headroom bench tick`: the allocation job's whole tick against the
//! configured database: read every workload's inputs, decide, log every
//! decision. Workloads use provider `none`, so no command is sent and what is
//! timed is the database and the policy.
//!
//! Seeds `--workloads` workloads over `--organizations` new organisations,
//! each with minute-rollups of demand for the ticks' windows, an
//! allocation-horizon forecast and the controller state learnt over
//! `--history` ticks (made from windows of the real NAB traces), gathers
//! PostgreSQL's planner statistics, then runs ticks as one worker does: the
//! first reads every workload's settings and state from the database (a
//! worker just started), the next two use the settings and states it keeps
//! (reading the settings written since, which are those of the states
//! stored for a checkpoint), and the rest (`--handed-ticks`, 5 by default)
//! decide from the demand and forecasts handed over as the worker's
//! forecast job hands them (each stored, then handed over, before the
//! tick); their fastest, median and slowest close the report. Run with
//! `HEADROOM_LOG=headroom_jobs=debug` to see where a tick's time goes
//! (prices, reads, gathering, decisions, log, commands).

use std::time::Instant;

use headroom_core::accounts::Tier;
use headroom_core::allocate::PolicyConfig;
use headroom_core::forecast::{Horizon, PackedSteps, STATISTICAL_VERSION, Step};
use headroom_jobs::allocate::{STEP_MS, TickMemory, allocate_all_kept};
use headroom_jobs::forecast::last_closed_step;
use headroom_jobs::handover::{Handed, Handover};
use headroom_jobs::providers::Providers;
use headroom_store::forecasts::StoredForecast;
use headroom_store::sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use headroom_store::{Db, Tenant};

use super::controller::learnt_state;
use super::cpu::CpuTime;
use crate::config::Config;
use crate::startup::Application;

/// The pause between the bench's ticks, as a worker idles between its
/// 5-minute ticks: PostgreSQL's background workers have had their turn, and
/// the allocator has returned what the tick before freed when it is told to
/// within the pause (`MIMALLOC_PURGE_DELAY` below 15,000; `headroom` keeps it
/// 10 minutes, past a real tick's period), so each tick starts as a scheduled
/// one does, not in the wake of the one before.
const IDLE_BETWEEN_TICKS: std::time::Duration = std::time::Duration::from_secs(15);

#[derive(Debug, Clone, clap::Args)]
pub struct TickBench {
    #[arg(long, default_value_t = 100_000)]
    pub workloads: usize,
    #[arg(long, default_value_t = 100)]
    pub organizations: usize,
    /// Ticks each workload's stored controller state has learnt from (a day
    /// of 5-minute ticks fills its risk windows, as in a running system).
    #[arg(long, default_value_t = 288)]
    pub history: usize,
    /// Controller states the worker keeps between ticks (default: all;
    /// 0: every tick reads and stores every state).
    #[arg(long)]
    pub kept_states: Option<usize>,
    /// Ticks timed after the three that read their inputs, each deciding
    /// from the demand and forecasts handed over (a worker's usual tick):
    /// several, since one machine's runs of the same tick vary.
    #[arg(long, default_value_t = 5)]
    pub handed_ticks: usize,
}

/// `metric_rollups` columns, in the order seeded rows give them.
pub(crate) const ROLLUP_COLUMNS: [&str; 11] = [
    "organization_id",
    "workload",
    "metric",
    "resolution",
    "bucket_start",
    "count",
    "sum",
    "min",
    "max",
    "last",
    "last_ts",
];

/// Rows per seeding statement.
const CHUNK: usize = 1000;

pub(crate) async fn insert(
    db: &Db,
    table: &str,
    columns: &[&str],
    rows: Vec<Vec<Value>>,
) -> anyhow::Result<()> {
    let backend = db.conn().get_database_backend();
    for chunk in rows.chunks(CHUNK) {
        let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(", "),
            headroom_store::values_clause(backend, chunk.len(), columns.len())
        );
        db.conn()
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

pub async fn run(config: Config, args: TickBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.workloads > 0 && args.organizations > 0,
        "--workloads and --organizations must be positive"
    );
    let app = Application::build(config, false).await?;
    let db = app.db().clone();
    let run_id = headroom_store::new_id();
    let hash = crate::auth::password::hash(crate::auth::keys::random_token(32)).await?;
    let mut tenants = Vec::new();
    for i in 0..args.organizations.min(args.workloads) {
        let email =
            headroom_core::accounts::Email::parse(&format!("tick-{run_id}-{i}@bench.invalid"))?;
        let (org, _) = db
            .create_organization_with_owner(
                &format!("tick bench {run_id} {i}"),
                Tier::Standard,
                &email,
                hash.clone(),
            )
            .await?;
        tenants.push(Tenant::new(org.id));
    }

    let traces = super::controller::demand_traces()?;
    let cfg = PolicyConfig {
        target: 0.7,
        ..PolicyConfig::default()
    };
    // Ticks land mid-slot, like the scheduled job's (second 45 of minute 5n).
    let now_ms = (chrono::Utc::now().timestamp_millis().div_euclid(STEP_MS) + 1) * STEP_MS + 45_000;
    let origin = last_closed_step(Horizon::Allocation, now_ms);
    let seeded = Instant::now();
    let (mut settings, mut rollups, mut forecasts) = (Vec::new(), Vec::new(), Vec::new());
    // Per workload: where in which trace its forecasts start.
    let mut series = Vec::with_capacity(args.workloads);
    for i in 0..args.workloads {
        let org = tenants[i % tenants.len()].id().to_owned();
        let workload = format!("w{i}");
        let trace = &traces[i % traces.len()];
        // Past the learnt history, with 12 steps of forecast left.
        let first = args.history.min(trace.len().saturating_sub(13));
        let room = trace.len().saturating_sub(13 + first).max(1);
        let at = first + (i / traces.len()).wrapping_mul(37) % room;
        let state = learnt_state(&cfg, &trace[at - first..=at], args.history);
        // One instance serves 100 units; the trace is in instances.
        let now = trace[at] * 100.0;
        settings.push(vec![
            org.clone().into(),
            workload.clone().into(),
            "requests".into(),
            100.0f64.into(),
            "on".into(),
            1i32.into(),
            1000i32.into(),
            0.7f64.into(),
            1.0f64.into(),
            "none".into(),
            (((now / 70.0).ceil() as i32).max(1)).into(),
            now_ms.into(),
            state.encode().into(),
            // Stored at the slot before (a worker restarting finds them so).
            (now_ms.div_euclid(STEP_MS) - 1).into(),
        ]);
        // The step before each tick's.
        for m in -(ROLLUP_STEPS * STEP_MS / 60_000 - 1)..=5 {
            let bucket = now_ms - m * 60_000;
            let bucket = bucket - bucket.rem_euclid(60_000);
            rollups.push(vec![
                org.clone().into(),
                workload.clone().into(),
                "requests".into(),
                60i32.into(),
                bucket.into(),
                12i64.into(),
                (now * 12.0).into(),
                now.into(),
                now.into(),
                now.into(),
                bucket.into(),
            ]);
        }
        let bench = BenchSeries {
            org,
            workload,
            trace: i % traces.len(),
            at,
            demand: now,
        };
        forecasts.push(forecast_row(
            &bench.org,
            &bench.forecast(&traces, origin, 0)?,
        ));
        series.push(bench);
    }
    insert(
        &db,
        "allocation_settings",
        &[
            "organization_id",
            "workload",
            "metric",
            "units_per_instance",
            "mode",
            "min_instances",
            "max_instances",
            "target",
            "priority",
            "provider",
            "commanded",
            "updated_at",
            "controller_state",
            "controller_state_slot",
        ],
        settings,
    )
    .await?;
    insert(&db, "metric_rollups", &ROLLUP_COLUMNS, rollups).await?;
    insert(&db, "forecasts", &FORECAST_COLUMNS, forecasts).await?;
    // PostgreSQL's planner statistics, as a running database has them
    // (autovacuum gathers them soon after a bulk load like this one). SQLite
    // gathers none by itself, so none are made for it either.
    if db.conn().get_database_backend() == DbBackend::Postgres {
        db.conn().execute_unprepared("ANALYZE").await?;
    }
    println!(
        "tick bench ({}): {} workloads over {} organisations seeded in {:.1} s",
        db.backend().as_str(),
        args.workloads,
        tenants.len(),
        seeded.elapsed().as_secs_f64()
    );

    let providers = Providers::default();
    let memory = TickMemory::new(
        args.kept_states.unwrap_or(args.workloads),
        std::sync::Arc::new(Handover::new()),
    );
    let kept = if memory.states.capacity() > 0 {
        "settings and states kept"
    } else {
        "settings kept, no state"
    };
    println!("the worker keeps up to {} states", memory.states.capacity());
    let handed_label = format!("{kept}, demand and forecasts handed over");
    let mut ticks: Vec<(String, bool)> = vec![
        (
            "first tick (settings and states read from the database)".into(),
            false,
        ),
        (format!("next slot ({kept})"), false),
        (format!("the slot after ({kept})"), false),
    ];
    for i in 0..args.handed_ticks {
        let which = if i == 0 {
            "next slot"
        } else {
            "the slot after"
        };
        ticks.push((format!("{which} ({handed_label})"), true));
    }
    let mut handed_secs = Vec::with_capacity(args.handed_ticks);
    for (i, (label, handed)) in ticks.into_iter().enumerate() {
        let at = now_ms + i as i64 * STEP_MS;
        if handed {
            // As the forecast job of the worker does: each series' forecast
            // from the step the tick measures, stored, then handed over
            // with that step's demand.
            let step = last_closed_step(Horizon::Allocation, at);
            let mut rows = Vec::with_capacity(series.len());
            for (k, b) in series.iter().enumerate() {
                let forecast = b.forecast(&traces, step, i)?;
                rows.push(forecast_row(&b.org, &forecast));
                memory.handover.put(
                    (b.org.clone(), b.workload.clone(), "requests".into()),
                    Handed {
                        demand: Some(b.demand),
                        forecast,
                    },
                );
                if rows.len() == CHUNK || k + 1 == series.len() {
                    insert(
                        &db,
                        "forecasts",
                        &FORECAST_COLUMNS,
                        std::mem::take(&mut rows),
                    )
                    .await?;
                }
            }
        }
        if i > 0 {
            tokio::time::sleep(IDLE_BETWEEN_TICKS).await;
        }
        let wal_before = wal_position(&db).await?;
        let cpu_before = CpuTime::now();
        let started = Instant::now();
        let s = allocate_all_kept(&db, &providers, &memory, at)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let secs = started.elapsed().as_secs_f64();
        if handed {
            handed_secs.push(secs);
        }
        let cpu = CpuTime::now()
            .zip(cpu_before)
            .map(|(now, before)| now.since(before));
        anyhow::ensure!(
            s.decided >= args.workloads,
            "only {} of {} workloads decided",
            s.decided,
            args.workloads
        );
        anyhow::ensure!(
            s.handed == if handed { args.workloads } else { 0 },
            "{} of {} workloads decided from inputs handed over",
            s.handed,
            args.workloads
        );
        println!(
            "{label}: {secs:.3} s for {} workloads ({:.1} us/workload), {} changed the fleet, \
             {} settings read, {} states read, {} stored",
            s.workloads,
            secs * 1e6 / s.workloads as f64,
            s.changed,
            s.settings_read,
            s.states_read,
            s.states_stored
        );
        if let Some(cpu) = cpu {
            println!(
                "  CPU time: this process {:.2} s, PostgreSQL processes on this machine {:.2} s",
                cpu.own, cpu.database
            );
        }
        if let (Some(before), Some(after)) = (wal_before, wal_position(&db).await?) {
            println!(
                "  write-ahead log written: {:.1} MB",
                (after - before) as f64 / 1e6
            );
        }
    }
    if !handed_secs.is_empty() {
        handed_secs.sort_by(f64::total_cmp);
        println!(
            "ticks from inputs handed over: {} of them, fastest {:.3} s, median {:.3} s, \
             slowest {:.3} s; {} of {} under 1 s",
            handed_secs.len(),
            handed_secs[0],
            handed_secs[handed_secs.len() / 2],
            handed_secs[handed_secs.len() - 1],
            handed_secs.iter().filter(|&&s| s < 1.0).count(),
            handed_secs.len()
        );
    }
    if let Some(peak) = super::ingest::peak_rss_kib() {
        println!("peak resident memory: {:.1} MiB", peak as f64 / 1024.0);
    }
    Ok(())
}

/// One bench workload: where in which demand trace it stands.
struct BenchSeries {
    org: String,
    workload: String,
    trace: usize,
    /// The trace's step at the first tick.
    at: usize,
    /// Its demand (units) in every tick's step.
    demand: f64,
}

impl BenchSeries {
    /// Its allocation forecast from `origin`, `ticks` ticks after the first:
    /// the trace's next 12 steps from there, with a band around them.
    fn forecast(
        &self,
        traces: &[Vec<f64>],
        origin: i64,
        ticks: usize,
    ) -> anyhow::Result<StoredForecast> {
        let trace = &traces[self.trace];
        let at = self.at + ticks;
        let steps: Vec<Step> = (1..=12)
            .map(|h| {
                let v = trace
                    .get(at + h)
                    .or(trace.last())
                    .copied()
                    .unwrap_or_default()
                    * 100.0;
                Step::ordered(v * 0.8, v, v * 1.3)
            })
            .collect();
        Ok(StoredForecast {
            workload: self.workload.clone(),
            metric: "requests".into(),
            horizon: "allocation".into(),
            origin_ms: origin,
            step_secs: STEP_MS / 1000,
            made_at_ms: origin + STEP_MS,
            model_version: STATISTICAL_VERSION.into(),
            steps: PackedSteps::pack(steps.into_iter().map(|s| (s, "ets")))?,
        })
    }
}

/// Steps of demand seeded before the first tick's (the rollups the ticks
/// that read their inputs measure, with room to spare).
const ROLLUP_STEPS: i64 = 4;

/// `forecasts` columns, in the order [`forecast_row`] gives them.
const FORECAST_COLUMNS: [&str; 9] = [
    "organization_id",
    "workload",
    "metric",
    "horizon",
    "origin",
    "step_secs",
    "made_at",
    "model_version",
    "steps_packed",
];

fn forecast_row(org: &str, f: &StoredForecast) -> Vec<Value> {
    vec![
        org.into(),
        f.workload.clone().into(),
        f.metric.clone().into(),
        "allocation".into(),
        f.origin_ms.into(),
        300i32.into(),
        f.made_at_ms.into(),
        f.model_version.clone().into(),
        f.steps.as_bytes().to_vec().into(),
    ]
}

/// PostgreSQL's write-ahead log position in bytes (what a tick writes,
/// whatever the machine's speed); `None` on SQLite.
async fn wal_position(db: &Db) -> anyhow::Result<Option<i64>> {
    if db.conn().get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS BIGINT)",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no WAL position"))?;
    Ok(Some(row.try_get_by_index::<i64>(0)?))
}
