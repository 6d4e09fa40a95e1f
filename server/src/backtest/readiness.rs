//! `headroom backtest readiness`: replays an event stream through the readiness
//! estimator and judges each prediction against what happened next.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use headroom_core::readiness::{Readiness, ReadinessConfig, brier};
use rand::{Rng, SeedableRng};

use super::series::Series;

#[derive(Debug, Args)]
pub struct ReadinessArgs {
    /// Events to replay: a CSV whose first column is each event's timestamp
    /// (header row; `YYYY-MM-DD HH:MM:SS`, RFC 3339 or unix seconds).
    #[arg(
        long,
        conflicts_with = "from_series",
        required_unless_present = "from_series"
    )]
    pub events: Option<PathBuf>,
    /// Or draw events from a `timestamp,value` series used as the arrival rate
    /// (a Poisson process following a real trace's shape), seeded.
    #[arg(long)]
    pub from_series: Option<PathBuf>,
    /// With --from-series: mean seconds between events over the whole series.
    #[arg(long, default_value_t = 30.0)]
    pub mean_gap: f64,
    /// With --from-series: events arrive in bursts of 1..=N (uniform) at one
    /// instant each, so events are not a Poisson process (arrivals are).
    #[arg(long, default_value_t = 1)]
    pub burst: u32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The question asked: at least one event within this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub within: f64,
    /// Seconds between predictions.
    #[arg(long, default_value_t = 10.0)]
    pub every: f64,
    /// Half-life of the recent-rate estimate, seconds.
    #[arg(long, default_value_t = ReadinessConfig::default().recent_half_life)]
    pub half_life: f64,
    /// Weight of the hour-of-week profile against the recent rate.
    #[arg(long, default_value_t = ReadinessConfig::default().profile_weight)]
    pub profile_weight: f64,
    /// Seconds of history before the first prediction is judged.
    #[arg(long, default_value_t = 86_400.0)]
    pub warmup: f64,
}

fn read_events(path: &Path) -> anyhow::Result<Vec<f64>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let raw = line.split(',').next().unwrap_or("").trim();
        if raw.is_empty() {
            continue;
        }
        let ts = super::series::parse_time(raw).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: line {}: `{raw}` is not a timestamp",
                path.display(),
                i + 1
            )
        })?;
        out.push(ts as f64);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// A seeded Poisson process whose rate follows the series (piecewise constant
/// per row), scaled to one event per `mean_gap` seconds on average.
fn events_from_series(path: &Path, args: &ReadinessArgs) -> anyhow::Result<Vec<f64>> {
    anyhow::ensure!(
        args.mean_gap.is_finite() && args.mean_gap > 0.0,
        "--mean-gap must be a positive number of seconds"
    );
    anyhow::ensure!(args.burst >= 1, "--burst must be at least 1");
    let series = Series::read(path)?;
    let step = series.step_secs() as f64;
    let values: Vec<f64> = series
        .values
        .iter()
        .map(|v| v.unwrap_or(0.0).max(0.0))
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    anyhow::ensure!(
        mean > 0.0,
        "{}: the series has no positive values",
        path.display()
    );
    let mean_burst = (1.0 + f64::from(args.burst)) / 2.0;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut out = Vec::new();
    for (ts, v) in series.timestamps.iter().zip(&values) {
        // Bursts per second in this row, so events per second average 1/mean_gap.
        let rate = v / mean / args.mean_gap / mean_burst;
        let (start, end) = (*ts as f64, *ts as f64 + step);
        let mut t = start;
        if rate <= 0.0 {
            continue;
        }
        loop {
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            t += -u.ln() / rate;
            if t >= end {
                break;
            }
            for _ in 0..rng.random_range(1..=args.burst) {
                out.push(t);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

pub fn run(args: &ReadinessArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.within > 0.0 && args.every > 0.0 && args.warmup >= 0.0,
        "--within and --every must be positive, --warmup not negative"
    );
    let events = match (&args.events, &args.from_series) {
        (Some(p), _) => read_events(p)?,
        (None, Some(p)) => events_from_series(p, args)?,
        (None, None) => anyhow::bail!("give --events or --from-series"),
    };
    anyhow::ensure!(events.len() >= 2, "at least two events are needed");
    let (first, last) = (events[0], events[events.len() - 1]);
    anyhow::ensure!(
        args.half_life > 0.0 && args.profile_weight >= 0.0,
        "--half-life must be positive and --profile-weight not negative"
    );
    let mut estimator = Readiness::new(ReadinessConfig {
        recent_half_life: args.half_life,
        profile_weight: args.profile_weight,
        ..ReadinessConfig::default()
    });
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "timestamp,probability,occurred")?;
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    let mut next = 0; // first event not yet fed
    let mut last_second = f64::NAN; // the second of the last event fed
    let mut t = first + args.warmup;
    while t + args.within <= last {
        // Events fed per second they fall in: one arrival each second (a
        // second split by a prediction is not a second arrival).
        while next < events.len() && events[next] <= t {
            let second = events[next].floor();
            let mut n = 0.0;
            while next < events.len() && events[next] <= t && events[next].floor() == second {
                n += 1.0;
                next += 1;
            }
            let arrivals = if second == last_second { 0.0 } else { 1.0 };
            estimator.observe(second, n, arrivals);
            last_second = second;
        }
        estimator.advance(t);
        let p = estimator.probability(args.within);
        let occurred = next < events.len() && events[next] <= t + args.within;
        // Baseline: the long-run rate so far, as a user would estimate it.
        let long_run = next as f64 / (t - first).max(1.0);
        baseline.push((1.0 - (-long_run * args.within).exp(), occurred));
        ours.push((p, occurred));
        writeln!(out, "{},{p:.6},{}", t as i64, u8::from(occurred))?;
        t += args.every;
    }
    out.flush()?;
    anyhow::ensure!(
        !ours.is_empty(),
        "the events span less than --warmup + --within"
    );
    let base_rate = ours.iter().filter(|p| p.1).count() as f64 / ours.len() as f64;
    eprintln!(
        "readiness: {} predictions, events occurred in {:.1} %; Brier {:.4} (long-run-rate baseline {:.4}, constant {:.4})",
        ours.len(),
        base_rate * 100.0,
        brier(&ours),
        brier(&baseline),
        base_rate * (1.0 - base_rate),
    );
    eprintln!("reliability (predicted -> observed, n):");
    for bin in 0..10 {
        let (lo, hi) = (bin as f64 / 10.0, (bin + 1) as f64 / 10.0);
        let inside: Vec<&(f64, bool)> = ours
            .iter()
            .filter(|(p, _)| *p >= lo && (*p < hi || (bin == 9 && *p <= 1.0)))
            .collect();
        if inside.is_empty() {
            continue;
        }
        let mean_p = inside.iter().map(|x| x.0).sum::<f64>() / inside.len() as f64;
        let freq = inside.iter().filter(|x| x.1).count() as f64 / inside.len() as f64;
        eprintln!(
            "  {lo:.1}-{hi:.1}: {mean_p:.3} -> {freq:.3} (n={})",
            inside.len()
        );
    }
    Ok(())
}
