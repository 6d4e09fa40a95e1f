//! `headroom backtest …`: offline evaluation on a CSV series. Every forecast or
//! score at a row is computed from rows up to it only (see core::forecast::backtest).

mod readiness;
mod series;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use headroom_core::forecast::{EngineConfig, Family, backtest};
use headroom_core::profile::{AnomalyDetector, DEFAULT_PERSISTENCE, ProfileConfig};

pub use series::{Series, SeriesError};

#[derive(Debug, Subcommand)]
pub enum Backtest {
    /// Rolling-origin forecasts: CSV `origin,h,p10,p50,p90` on stdout.
    Forecast(ForecastArgs),
    /// Behavioural-profile deviation per row: CSV `timestamp,score,is_anomaly`.
    Anomalies(AnomaliesArgs),
    /// Readiness predictions replayed over an event stream: CSV
    /// `timestamp,probability,occurred`; Brier score and reliability on stderr.
    Readiness(readiness::ReadinessArgs),
}

#[derive(Debug, Args)]
pub struct AnomaliesArgs {
    /// A `timestamp,value` CSV; rows are scored in file order.
    #[arg(long)]
    pub input: PathBuf,
    /// Deviation, in spreads of the profile, from which a row is an anomaly.
    #[arg(long, default_value_t = ProfileConfig::default().threshold)]
    pub threshold: f64,
    /// Weight an observation keeps per week (how fast old behaviour fades).
    #[arg(long, default_value_t = ProfileConfig::default().weekly_keep)]
    pub weekly_keep: f64,
    /// Consecutive deviating rows needed before a row is flagged.
    #[arg(long, default_value_t = DEFAULT_PERSISTENCE)]
    pub persistence: usize,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// A `timestamp,value` CSV; rows are the series in file order.
    #[arg(long)]
    pub input: PathBuf,
    /// Steps ahead forecast at each origin.
    #[arg(long, default_value_t = 12)]
    pub horizon: usize,
    /// Rows between origins.
    #[arg(long, default_value_t = 12)]
    pub every: usize,
    /// Rows observed before the first origin (which is row `min-train − 1`).
    #[arg(long, default_value_t = 2016)]
    pub min_train: usize,
    /// Which models may serve: `auto` chooses per series by recent accuracy.
    #[arg(long, value_enum, default_value_t = ModelArg::Auto)]
    pub model: ModelArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    Auto,
    Ets,
    Snaive,
}

impl From<ModelArg> for Family {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::Auto => Family::Auto,
            ModelArg::Ets => Family::Ets,
            ModelArg::Snaive => Family::Snaive,
        }
    }
}

pub fn run(command: Backtest, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        Backtest::Forecast(args) => forecast(&args, out),
        Backtest::Anomalies(args) => anomalies(&args, out),
        Backtest::Readiness(args) => readiness::run(&args, out),
    }
}

fn anomalies(args: &AnomaliesArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.threshold.is_finite() && args.threshold > 0.0,
        "--threshold must be a positive number"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.weekly_keep),
        "--weekly-keep must be between 0 and 1"
    );
    let series = Series::read(&args.input)?;
    anyhow::ensure!(args.persistence >= 1, "--persistence must be at least 1");
    let mut detector = AnomalyDetector::new(
        ProfileConfig {
            threshold: args.threshold,
            weekly_keep: args.weekly_keep,
            ..ProfileConfig::default()
        },
        args.persistence,
    );
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "timestamp,score,is_anomaly")?;
    for (ts, v) in series.timestamps.iter().zip(&series.values) {
        // A gap is scored 0: nothing was measured to be unusual.
        let d = detector.observe(*ts, v.unwrap_or(f64::NAN));
        let when = chrono::DateTime::from_timestamp(*ts, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| ts.to_string());
        writeln!(out, "{when},{:.4},{}", d.score, u8::from(d.is_anomaly))?;
    }
    out.flush()?;
    Ok(())
}

fn forecast(args: &ForecastArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let series = Series::read(&args.input)?;
    let origins = backtest::Origins {
        horizon: args.horizon,
        every: args.every,
        min_train: args.min_train,
    };
    let cfg = EngineConfig::for_step(args.horizon, series.step_secs(), args.model.into());
    let forecasts = backtest::rolling_origin(&series.values, origins, cfg)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "origin,h,p10,p50,p90")?;
    for f in &forecasts {
        for (i, s) in f.steps.iter().enumerate() {
            writeln!(out, "{},{},{},{},{}", f.origin, i + 1, s.p10, s.p50, s.p90)?;
        }
    }
    out.flush()?;
    Ok(())
}
