//! `headroom backtest …`: offline evaluation on a CSV series. Every forecast or
//! score at a row is computed from rows up to it only (see core::forecast::backtest).

mod readiness;
mod scale;
mod series;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use headroom_core::forecast::{EngineConfig, Family, ModelSpec, backtest};
use headroom_core::profile::{AnomalyDetector, DEFAULT_PERSISTENCE, ProfileConfig};
use headroom_jobs::lstm::LstmForecaster;

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
    /// Capacity a scaling policy keeps over a demand series: CSV
    /// `index,demand,capacity`; under-provisioned rows and cost on stderr.
    Scale(scale::ScaleArgs),
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
    /// Which models may serve: `auto` chooses per series and step by recent
    /// accuracy among the statistical models and, when its files load, the LSTM.
    #[arg(long, value_enum, default_value_t = ModelArg::Auto)]
    pub model: ModelArg,
    /// Where `forecast_lstm.onnx` and `forecast_lstm.json` are.
    #[arg(long, env = "HEADROOM_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    Auto,
    Lstm,
    Ets,
    Snaive,
}

/// The LSTM's p50 forecast after every row that has a full input window, each
/// from that row and the ones before it only. Gaps are filled with the last
/// value seen (the model needs a regular window).
fn lstm_forecasts(
    args: &ForecastArgs,
    values: &[Option<f64>],
) -> anyhow::Result<Vec<Option<Vec<f64>>>> {
    headroom_jobs::inference::init_runtime(None)?;
    let model = LstmForecaster::load(&args.models_dir)?;
    let (len, horizon) = (model.spec().input_len, model.spec().horizon);
    anyhow::ensure!(
        horizon >= args.horizon,
        "the LSTM forecasts {horizon} steps, --horizon asks for {}",
        args.horizon
    );
    let filled = headroom_jobs::lstm::fill_gaps(values);
    let ends: Vec<usize> = (len.saturating_sub(1)..filled.len()).collect();
    let windows: Vec<&[f64]> = ends.iter().map(|&i| &filled[i + 1 - len..=i]).collect();
    let forecasts = model.forecast(&windows)?;
    let mut out = vec![None; values.len()];
    for (i, f) in ends.into_iter().zip(forecasts) {
        out[i] = Some(f.iter().take(args.horizon).map(|s| s.p50).collect());
    }
    Ok(out)
}

pub fn run(command: Backtest, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        Backtest::Forecast(args) => forecast(&args, out),
        Backtest::Anomalies(args) => anomalies(&args, out),
        Backtest::Readiness(args) => readiness::run(&args, out),
        Backtest::Scale(args) => scale::run(&args, out),
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
    let step = series.step_secs();
    let family = match args.model {
        ModelArg::Auto | ModelArg::Lstm => Family::Auto,
        ModelArg::Ets => Family::Ets,
        ModelArg::Snaive => Family::Snaive,
    };
    let mut cfg = EngineConfig::for_step(args.horizon, step, family);
    let lstm = match args.model {
        ModelArg::Lstm => {
            cfg.candidates = vec![ModelSpec::Lstm];
            lstm_forecasts(args, &series.values)?
        }
        ModelArg::Auto => match lstm_forecasts(args, &series.values) {
            Ok(f) => {
                cfg.candidates.push(ModelSpec::Lstm);
                f
            }
            Err(e) => {
                eprintln!(
                    "headroom: note: statistical models only, the LSTM is unavailable: {e:#}"
                );
                Vec::new()
            }
        },
        ModelArg::Ets | ModelArg::Snaive => Vec::new(),
    };
    let forecasts = backtest::rolling_origin_offered(&series.values, origins, cfg, &lstm)
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
