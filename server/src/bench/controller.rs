//! `headroom bench controller`: one controller tick (the allocation policy for
//! every workload) on state learnt from windows of the real NAB traces.
//!
//! What is timed is the pure decision: each workload's new measurement and
//! forecast in, a decision out, over all cores. Reading inputs from and
//! writing decisions to the database are not included.

use std::time::Duration;

use headroom_core::allocate::{
    Bounds, ControllerState, Fleet, Inputs, Mode, PolicyConfig, decide, scale_demand,
};
use headroom_core::forecast::Step;

use super::{threads, timed_parallel};

#[derive(Debug, Clone, clap::Args)]
pub struct ControllerBench {
    #[arg(long, default_value_t = 100_000)]
    pub workloads: usize,
    /// Ticks of history each workload has learnt from before the timed tick.
    #[arg(long, default_value_t = 288)]
    pub history: usize,
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// The demo's NAB traces as demand in instances (median 10).
pub(crate) fn demand_traces() -> anyhow::Result<Vec<Vec<f64>>> {
    crate::demo::SERIES
        .iter()
        .map(|(_, _, csv)| {
            let values: Vec<Option<f64>> = crate::demo::parse_csv(csv)?
                .into_iter()
                .map(|r| Some(r.1))
                .collect();
            Ok(scale_demand(&values, 10.0)?.into_iter().flatten().collect())
        })
        .collect()
}

/// What the policy would have learnt over `history` ticks of `window` with
/// the last value as the forecast: the state a workload running for a while
/// carries (its risk windows full, as the persisted state would be).
pub(crate) fn learnt_state(cfg: &PolicyConfig, window: &[f64], history: usize) -> ControllerState {
    let mut state = ControllerState::new(cfg);
    for t in 1..history.min(window.len()) {
        state.risk.record(window[t - 1], window[t]);
    }
    state
}

struct Workload {
    state: ControllerState,
    fleet: Fleet,
    observed: f64,
    forecast: Vec<Step>,
}

pub fn run(args: ControllerBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.workloads > 0 && args.history > 1 && args.rounds > 0,
        "--workloads, --history and --rounds must be positive"
    );
    let traces = demand_traces()?;
    let cfg = PolicyConfig::default();
    let workloads: Vec<Workload> = (0..args.workloads)
        .map(|i| {
            let trace = &traces[i % traces.len()];
            let room = trace.len().saturating_sub(args.history + 13).max(1);
            let start = (i / traces.len()).wrapping_mul(37) % room;
            let w = &trace[start..];
            let state = learnt_state(&cfg, w, args.history);
            let now = w[args.history.min(w.len() - 1)];
            let forecast = (0..12)
                .map(|h| {
                    let v = w.get(args.history + h).copied().unwrap_or(now);
                    Step::ordered(v * 0.8, v, v * 1.3)
                })
                .collect();
            let n = (now / cfg.target).ceil().max(1.0) as u32;
            Workload {
                state,
                fleet: Fleet {
                    in_force: n,
                    commanded: n,
                },
                observed: now,
                forecast,
            }
        })
        .collect();
    let bytes: usize = workloads
        .iter()
        .take(200)
        .map(|w| serde_json::to_vec(&w.state).map_or(0, |v| v.len()))
        .sum::<usize>()
        / workloads.len().min(200);
    println!(
        "controller bench: {} workloads, {} ticks of learnt history each, {} threads",
        args.workloads,
        args.history,
        threads()
    );
    let mut best = Duration::MAX;
    let mut changed = 0;
    for _ in 0..args.rounds {
        // Each round decides from a copy of the state, as a real tick would
        // from the stored one.
        let mut round: Vec<(ControllerState, &Workload, u32)> =
            workloads.iter().map(|w| (w.state.clone(), w, 0)).collect();
        let elapsed = timed_parallel(&mut round, |(state, w, after)| {
            let inputs = Inputs {
                observed: Some(w.observed),
                forecast: &w.forecast,
                readiness: Some(0.5),
                priority: 1.0,
                fleet: w.fleet,
                bounds: Bounds::new(1, 100_000).expect("valid"),
                budget: None,
                mode: Mode::On,
            };
            *after = decide(&cfg, state, &inputs).after;
        });
        best = best.min(elapsed);
        changed = round
            .iter()
            .filter(|(_, w, after)| *after != w.fleet.commanded)
            .count();
    }
    println!(
        "tick: {:.3} s for {} workloads ({:.2} us/workload, best of {}); {} decisions changed the fleet",
        best.as_secs_f64(),
        args.workloads,
        best.as_secs_f64() * 1e6 / args.workloads as f64,
        args.rounds,
        changed
    );
    println!("state: {bytes} bytes of JSON per workload (mean of a sample)");
    Ok(())
}
