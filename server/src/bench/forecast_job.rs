//! `headroom bench forecast-job`: the forecast job's runs against the
//! configured database, reads and writes included.
//!
//! Seeds `--series` series in a new organisation with eight days of minute
//! rollups and fifteen days of hourly ones (cut from the real NAB traces),
//! then runs the job three times, one five-minute step apart, a step of new
//! minutes written before each later run:
//! 1. the first run: every series replayed at both horizons, profiles rebuilt;
//! 2. the next run with what the first kept (allocation engines and anomaly
//!    detectors fed one step; the planning horizon is current);
//! 3. the run after, replaying everything again but the planning horizon
//!    (what a worker that keeps nothing does at most runs).

use std::time::Instant;

use headroom_core::accounts::Tier;
use headroom_jobs::forecast::{forecast_all, forecast_all_with};
use headroom_jobs::warm::Warm;
use headroom_store::Tenant;
use headroom_store::sea_orm::Value;

use super::tick::{ROLLUP_COLUMNS, insert};
use crate::config::Config;
use crate::startup::{Application, load_forecast_models};

#[derive(Debug, Clone, clap::Args)]
pub struct ForecastJobBench {
    #[arg(long, default_value_t = 100)]
    pub series: usize,
}

const STEP_MS: i64 = 300_000;
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

/// A rollup row of one value (count 1) in `metric_rollups` column order.
fn rollup(org: &str, workload: &str, resolution: i32, start_ms: i64, v: f64) -> Vec<Value> {
    vec![
        org.into(),
        workload.into(),
        "cpu".into(),
        resolution.into(),
        start_ms.into(),
        1i64.into(),
        v.into(),
        v.into(),
        v.into(),
        v.into(),
        start_ms.into(),
    ]
}

pub async fn run(config: Config, args: ForecastJobBench) -> anyhow::Result<()> {
    anyhow::ensure!(args.series > 0, "--series must be positive");
    let lstm = load_forecast_models(&config)?;
    let app = Application::build(config, false).await?;
    let db = app.db().clone();
    let run_id = headroom_store::new_id();
    let hash = crate::auth::password::hash(crate::auth::keys::random_token(32)).await?;
    let email = headroom_core::accounts::Email::parse(&format!("job-{run_id}@bench.invalid"))?;
    let (org, _) = db
        .create_organization_with_owner(
            &format!("forecast job bench {run_id}"),
            Tier::Standard,
            &email,
            hash,
        )
        .await?;
    let tenant = Tenant::new(org.id);
    let traces: Vec<Vec<f64>> = crate::demo::SERIES
        .iter()
        .map(|(_, _, csv)| {
            crate::demo::parse_csv(csv).map(|rows| rows.into_iter().map(|r| r.1).collect())
        })
        .collect::<anyhow::Result<_>>()?;
    // Series i at 5-minute step k: a trace value, offset and scaled per series.
    let value = |i: usize, k: i64| {
        let trace = &traces[i % traces.len()];
        let at = (k + (i / traces.len()) as i64 * 37).rem_euclid(trace.len() as i64) as usize;
        trace[at] * (1.0 + (i % 10) as f64 / 10.0)
    };
    // Half past this hour: the three runs fall in one hour, so the planning
    // horizon's origin is the same for all three.
    let step0 =
        chrono::Utc::now().timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS + 30 * MINUTE_MS;
    let workloads: Vec<String> = (0..args.series).map(|i| format!("s{i}")).collect();

    let seeded = Instant::now();
    let minutes = 8 * 24 * 60;
    let mut rows = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        for m in 0..minutes {
            let at = step0 - (minutes - m) * MINUTE_MS;
            rows.push(rollup(
                tenant.id(),
                w,
                60,
                at,
                value(i, at.div_euclid(STEP_MS)),
            ));
        }
        for h in 0..15 * 24 {
            let at = step0 - (15 * 24 - h) * HOUR_MS;
            let mean = (0..12)
                .map(|k| value(i, at.div_euclid(STEP_MS) + k))
                .sum::<f64>()
                / 12.0;
            rows.push(rollup(tenant.id(), w, 3600, at, mean));
        }
        if rows.len() > 200_000 {
            insert(
                &db,
                "metric_rollups",
                &ROLLUP_COLUMNS,
                std::mem::take(&mut rows),
            )
            .await?;
        }
    }
    insert(&db, "metric_rollups", &ROLLUP_COLUMNS, rows).await?;
    println!(
        "forecast job bench: {} series ({} minute and {} hourly rollups each) seeded in {:.1} s on {:?}; LSTM: {}",
        args.series,
        minutes,
        15 * 24,
        seeded.elapsed().as_secs_f64(),
        db.backend(),
        lstm.as_ref()
            .map_or("not loaded".to_owned(), |m| m.spec().version.clone())
    );

    // One more step of minutes before each later run.
    let next_step = |from_ms: i64| {
        let mut rows = Vec::new();
        for (i, w) in workloads.iter().enumerate() {
            for m in 0..5 {
                let at = from_ms + m * MINUTE_MS;
                rows.push(rollup(
                    tenant.id(),
                    w,
                    60,
                    at,
                    value(i, at.div_euclid(STEP_MS)),
                ));
            }
        }
        rows
    };
    let warm = Warm::new(args.series);
    let report = |what: &str, started: Instant, s: &headroom_jobs::forecast::RunSummary| {
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{what:<58} {secs:>8.2} s = {:>7.2} ms/series   (stored {}, kept {}, current {}, too short {})",
            secs * 1e3 / args.series as f64,
            s.stored,
            s.warm,
            s.current,
            s.skipped
        );
    };
    let handover = headroom_jobs::handover::Handover::new();
    let started = Instant::now();
    let s = forecast_all_with(&db, lstm.as_ref(), &warm, &handover, None, step0 + 1)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    report("run 1: everything replayed, both horizons", started, &s);

    insert(&db, "metric_rollups", &ROLLUP_COLUMNS, next_step(step0)).await?;
    let started = Instant::now();
    let s = forecast_all_with(
        &db,
        lstm.as_ref(),
        &warm,
        &handover,
        None,
        step0 + STEP_MS + 1,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    report(
        "run 2: kept engines and detectors fed one step",
        started,
        &s,
    );

    insert(
        &db,
        "metric_rollups",
        &ROLLUP_COLUMNS,
        next_step(step0 + STEP_MS),
    )
    .await?;
    let started = Instant::now();
    let s = forecast_all(&db, lstm.as_ref(), step0 + 2 * STEP_MS + 1)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    report("run 3: nothing kept (planning current)", started, &s);
    if let Some(peak) = super::ingest::peak_rss_kib() {
        println!("peak resident memory: {:.1} MiB", peak as f64 / 1024.0);
    }
    Ok(())
}
