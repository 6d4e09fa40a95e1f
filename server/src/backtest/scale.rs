//! `headroom backtest scale`: replays a demand series against a scaling policy
//! and prints the capacity in force at every row (CSV `index,demand,capacity`);
//! the totals (under-provisioned rows, cost) go to stderr.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use headroom_core::allocate::{
    Hpa, HpaConfig, PeakStatic, PolicyConfig, Predictive, ScalePolicy, instances_for, scale_demand,
    simulate, summarise,
};

use super::series::Series;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// A `timestamp,value` CSV; rows are the series in file order.
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, value_enum)]
    pub policy: PolicyArg,
    /// Rows between deciding a scale-up and the capacity serving; scale-downs
    /// apply at once.
    #[arg(long, default_value_t = 1)]
    pub delay_steps: usize,
    /// Target utilisation per instance: of the demand just measured for
    /// `reactive` and `static`, of the forecast's upper quantile for
    /// `predictive`.
    #[arg(long, default_value_t = 0.7)]
    pub target: f64,
    /// Demand is scaled so that the median of its non-zero values is this many
    /// instance units.
    #[arg(long, default_value_t = 10.0)]
    pub median_units: f64,
    /// `predictive`: what an under-provisioned row is worth, in instance-rows;
    /// capacity is sized to minimise instances plus expected misses. 0 sizes
    /// at a fixed quantile instead (see --miss-rate).
    #[arg(long, default_value_t = PolicyConfig::default().miss_cost.unwrap_or(0.0))]
    pub miss_cost: f64,
    /// `predictive` with `--miss-cost 0`: share of rows allowed above the upper
    /// quantile (the quantile level is 1 − this).
    #[arg(long, default_value_t = PolicyConfig::default().miss_rate)]
    pub miss_rate: f64,
    /// `predictive`: capacity comes down only to the most wanted over this many
    /// rows (2 at 5-minute rows is the HPA's 300 s stabilisation).
    #[arg(long, default_value_t = PolicyConfig::default().down_window)]
    pub down_window: usize,
    /// `reactive`: the scale-down stabilisation window (Kubernetes' default).
    #[arg(long, default_value_t = 300)]
    pub stabilisation_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// Headroom's policy: forecast, level-calibrated upper quantile, hysteresis.
    Predictive,
    /// The Kubernetes Horizontal Pod Autoscaler algorithm.
    Reactive,
    /// Sized for the peak seen so far, never scaled down.
    Static,
}

pub fn run(args: &ScaleArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.target.is_finite() && args.target > 0.0 && args.target <= 1.0,
        "--target must be in (0, 1], got {}",
        args.target
    );
    let series = Series::read(&args.input)?;
    let demand = scale_demand(&series.values, args.median_units)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?;
    let step = series.step_secs();
    let mut policy: Box<dyn ScalePolicy> = match args.policy {
        PolicyArg::Reactive => Box::new(Hpa::new(HpaConfig::new(
            args.target,
            args.stabilisation_secs,
            step,
        ))),
        PolicyArg::Static => Box::new(PeakStatic {
            target: args.target,
        }),
        PolicyArg::Predictive => {
            let cfg = PolicyConfig {
                target: args.target,
                delay_steps: args.delay_steps,
                miss_rate: args.miss_rate,
                miss_cost: (args.miss_cost > 0.0).then_some(args.miss_cost),
                down_window: args.down_window,
                ..PolicyConfig::default()
            };
            cfg.validate()?;
            Box::new(Predictive::new(cfg, step)?)
        }
    };
    // Every policy starts from a fleet sized for the first row.
    let first = demand.iter().flatten().next().copied().unwrap_or(0.0);
    let initial = instances_for(first / args.target).max(1);
    let capacity = simulate(&demand, args.delay_steps, initial, policy.as_mut());
    let mut w = std::io::BufWriter::new(out);
    writeln!(w, "index,demand,capacity")?;
    for (i, (d, c)) in demand.iter().zip(&capacity).enumerate() {
        match d {
            Some(d) => writeln!(w, "{i},{d},{c}")?,
            None => writeln!(w, "{i},,{c}")?,
        }
    }
    w.flush()?;
    let s = summarise(&demand, &capacity);
    eprintln!(
        "headroom: {:?} target {}: {} rows, {} under-provisioned, cost {} instance-rows, {:.1} unserved",
        args.policy, args.target, s.rows, s.under_rows, s.cost, s.unserved
    );
    Ok(())
}
