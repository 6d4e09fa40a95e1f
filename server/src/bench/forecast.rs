//! `headroom bench forecast`: how fast the statistical engine forecasts many
//! series, on windows cut from the six real NAB traces (compiled in with the demo).
//!
//! Three figures, because the engine is online:
//! - forecast: engines that have already seen their history produce H steps
//!   (what serving a forecast costs once state is kept);
//! - update: one new observation folded in, then a forecast (a live tick);
//! - cold: the whole history observed from scratch, then a forecast (what the
//!   stateless forecast job does today, per series and horizon);
//! - job: the forecast job's engine work per run at both horizons, with their
//!   own histories and engines: replayed, with the planning horizon computed
//!   once an hour (when its step closes), and with kept allocation engines
//!   (the update figure).
//!
//! Engines hold their error windows in memory, so the warm figures are measured
//! on `--warm` engines and scaled to `--series`; cold is measured on `--cold`
//! series and scaled likewise. Work is split over all cores.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use headroom_core::forecast::{EngineConfig, Family, Horizon, SeriesForecaster};

use super::{threads, timed_parallel};

#[derive(Debug, Clone, clap::Args)]
pub struct ForecastBench {
    /// Series the figures are reported for.
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    /// Engines kept warm for the forecast and update figures (memory bound).
    #[arg(long, default_value_t = 500)]
    pub warm: usize,
    /// Series forecast from scratch for the cold figure.
    #[arg(long, default_value_t = 200)]
    pub cold: usize,
    /// Observations per series (5-minute steps; 2016 = one week).
    #[arg(long, default_value_t = 2016)]
    pub history: usize,
    #[arg(long, default_value_t = 12)]
    pub horizon: usize,
    /// Also write the first `--cold` series as `timestamp,value` CSVs here, so
    /// other tools can be timed on exactly the same data.
    #[arg(long)]
    pub write_series: Option<PathBuf>,
    /// Where the LSTM is (`forecast_lstm.onnx`); its figure is skipped, with a
    /// note, when it or ONNX Runtime is unavailable.
    #[arg(long, env = "HEADROOM_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

/// The `i`-th benchmark series: a window of a real trace, offset and scaled so
/// that no two series are identical.
fn series(traces: &[Vec<f64>], i: usize, len: usize) -> Vec<f64> {
    let trace = &traces[i % traces.len()];
    let room = trace.len().saturating_sub(len).max(1);
    let start = (i / traces.len()).wrapping_mul(37) % room;
    let scale = 1.0 + (i % 10) as f64 / 10.0;
    trace[start..(start + len).min(trace.len())]
        .iter()
        .map(|v| v * scale)
        .collect()
}

pub fn run(args: ForecastBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.series > 0 && args.warm > 0 && args.cold > 0 && args.horizon > 0,
        "--series, --warm, --cold and --horizon must be positive"
    );
    anyhow::ensure!(args.history >= 2, "--history must be at least 2");
    let traces: Vec<Vec<f64>> = crate::demo::SERIES
        .iter()
        .map(|(_, _, csv)| {
            crate::demo::parse_csv(csv).map(|rows| rows.into_iter().map(|r| r.1).collect())
        })
        .collect::<anyhow::Result<_>>()?;
    let cfg = EngineConfig::for_step(args.horizon, 300, Family::Auto);
    let candidates = cfg.candidates.len();
    println!(
        "forecast bench: {} series reported, history {} (5-minute steps), H={}, {} candidate models, {} threads",
        args.series,
        args.history,
        args.horizon,
        candidates,
        threads()
    );

    if let Some(dir) = &args.write_series {
        std::fs::create_dir_all(dir)?;
        for i in 0..args.cold {
            let mut csv = String::from("timestamp,value\n");
            for (t, v) in series(&traces, i, args.history).iter().enumerate() {
                csv += &format!("{},{v}\n", 1_400_000_000 + t as i64 * 300);
            }
            std::fs::write(dir.join(format!("series_{i:05}.csv")), csv)?;
        }
        println!("wrote {} series to {}", args.cold, dir.display());
    }

    // Cold: observe everything, then forecast.
    let elapsed = timed_replay(&traces, &cfg, args.cold, args.history)?;
    report("cold (history + forecast)", args.cold, args.series, elapsed);
    let (allocation, planning) = job(&args, &traces)?;

    // Warm engines.
    let mut warm: Vec<(SeriesForecaster, f64)> = Vec::with_capacity(args.warm);
    for i in 0..args.warm {
        let values = series(&traces, i, args.history + 1);
        let mut engine = SeriesForecaster::new(cfg.clone())?;
        for v in &values[..values.len() - 1] {
            engine.observe(Some(*v));
        }
        warm.push((engine, *values.last().unwrap_or(&0.0)));
    }
    let rounds = 5;
    let mut best = Duration::MAX;
    for _ in 0..rounds {
        let elapsed = timed_parallel(&mut warm, |(engine, _)| {
            std::hint::black_box(engine.forecast().ok());
        });
        best = best.min(elapsed);
    }
    report("forecast (warm state)", args.warm, args.series, best);
    let elapsed = timed_parallel(&mut warm, |(engine, next)| {
        engine.observe(Some(*next));
        std::hint::black_box(engine.forecast().ok());
    });
    report(
        "update (1 observation + forecast)",
        args.warm,
        args.series,
        elapsed,
    );
    // The job's engine work per 5-minute run; planning is made at one run in 12.
    let update = elapsed.as_secs_f64() / args.warm as f64;
    let n = args.series as f64;
    println!(
        "job: a 5-minute run, {} series (engine work, mean over an hour): {:.3} s replaying both horizons at every run; {:.3} s with planning once an hour; {:.3} s with kept allocation engines too",
        args.series,
        (allocation + planning) * n,
        (allocation + planning / 12.0) * n,
        (update + planning / 12.0) * n
    );
    lstm(&args, &traces)?;
    println!(
        "memory: about {:.1} MB of error windows per warm engine ({} candidates x {} steps x {} errors)",
        (candidates * args.horizon * cfg.calibration_window * 2 * 8) as f64 / 1e6,
        candidates,
        args.horizon,
        cfg.calibration_window
    );
    Ok(())
}

/// The forecast job's engine work for one run, per series: each horizon's
/// history (3 days of 5-minute steps, 15 days of hourly ones) replayed into
/// its engine, then a forecast. Returns the seconds per series of each.
fn job(args: &ForecastBench, traces: &[Vec<f64>]) -> anyhow::Result<(f64, f64)> {
    let mut per_series = Vec::new();
    for horizon in Horizon::ALL {
        let steps = (horizon.history_ms() / (horizon.step_secs() as i64 * 1000)) as usize;
        let elapsed = timed_replay(traces, &horizon.engine(), args.cold, steps)?;
        report(
            &format!("job: {} ({steps} steps)", horizon.as_str()),
            args.cold,
            args.series,
            elapsed,
        );
        per_series.push(elapsed.as_secs_f64() / args.cold as f64);
    }
    Ok((per_series[0], per_series[1]))
}

/// Replays `count` series of `len` values into new engines, then forecasts;
/// the wall time, all threads.
fn timed_replay(
    traces: &[Vec<f64>],
    cfg: &EngineConfig,
    count: usize,
    len: usize,
) -> anyhow::Result<Duration> {
    let mut work: Vec<(Vec<f64>, usize)> =
        (0..count).map(|i| (series(traces, i, len), 0)).collect();
    let elapsed = timed_parallel(&mut work, |(values, made)| {
        let mut engine = SeriesForecaster::new(cfg.clone()).expect("valid config");
        for v in values.iter() {
            engine.observe(Some(*v));
        }
        *made = engine.forecast().map_or(0, |f| f.steps.len());
    });
    anyhow::ensure!(work.iter().all(|w| w.1 == cfg.horizon), "a forecast failed");
    Ok(elapsed)
}

fn report(what: &str, measured: usize, reported: usize, elapsed: Duration) {
    let per_series = elapsed.as_secs_f64() / measured as f64;
    println!(
        "{what:<36} {measured:>6} series in {:>9.3} ms = {:>9.1} us/series (wall, all threads) -> {:>9.3} s for {reported} series",
        elapsed.as_secs_f64() * 1e3,
        per_series * 1e6,
        per_series * reported as f64
    );
}

/// The LSTM path: `--series` windows through the model in batches, best of three.
fn lstm(args: &ForecastBench, traces: &[Vec<f64>]) -> anyhow::Result<()> {
    use headroom_jobs::lstm::LstmForecaster;
    let model = match headroom_jobs::inference::init_runtime(None)
        .map_err(anyhow::Error::from)
        .and_then(|()| LstmForecaster::load(&args.models_dir).map_err(anyhow::Error::from))
    {
        Ok(m) => m,
        Err(e) => {
            println!("lstm: skipped ({e:#})");
            return Ok(());
        }
    };
    let len = model.spec().input_len;
    let windows: Vec<Vec<f64>> = (0..args.series).map(|i| series(traces, i, len)).collect();
    let views: Vec<&[f64]> = windows.iter().map(Vec::as_slice).collect();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = model.forecast(&views)?;
        best = best.min(started.elapsed());
        anyhow::ensure!(out.len() == args.series, "the LSTM skipped windows");
    }
    report(
        &format!("lstm ({} in, batched)", model.spec().version),
        args.series,
        args.series,
        best,
    );
    if let Some(flops) = model.spec().flops_per_series {
        println!(
            "lstm: {:.0} kFLOP per series, {:.2} GFLOP/s achieved (ONNX Runtime, CPU)",
            flops / 1e3,
            flops * args.series as f64 / best.as_secs_f64() / 1e9
        );
    }
    Ok(())
}
