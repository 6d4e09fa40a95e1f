//! The proactive allocation policy: one decision per workload and tick, from
//! the forecast, the readiness score, the fleet, the bounds and the budget.
//! Pure: the controller job feeds it stored data and executes what it
//! returns; the replay feeds it a series.
//!
//! Sizing: the capacity wanted when a scale-up would land (`delay_steps`
//! ahead) is the upper quantile of demand there, measured per demand level by
//! [`GrowthRisk`] from how earlier forecasts turned out, at the target
//! utilisation. The margin therefore follows measured accuracy: it widens
//! after misses and where the series bursts, and shrinks where it is calm.

use std::collections::VecDeque;

use super::budget::{Budget, BudgetOutcome};
use super::release::ReleaseRecord;
use super::replay::{Fleet, instances_for};
use super::risk::GrowthRisk;
use crate::forecast::Step;

/// Whether the controller acts for a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Nothing decided or executed.
    Off,
    /// Decisions are made and logged; nothing is executed.
    ForecastOnly,
    On,
}

/// Tunables of the policy. Defaults suit 5-minute ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyConfig {
    /// Utilisation an instance may reach at the upper quantile of demand.
    pub target: f64,
    /// Ticks between commanding an instance and it serving.
    pub delay_steps: usize,
    /// With `miss_cost` unset: share of ticks allowed to find demand above the
    /// upper quantile (the quantile level is `1 - miss_rate`).
    pub miss_rate: f64,
    /// When set, capacity is sized by expected cost instead of a fixed
    /// quantile: an under-provisioned tick is worth this many instance-ticks
    /// (times the workload's priority).
    pub miss_cost: Option<f64>,
    /// Outcomes kept per demand level, and needed before a level is trusted.
    pub risk_window: usize,
    pub risk_min_samples: usize,
    /// Hysteresis: capacity is released only down to the most wanted over
    /// this many ticks (this one included): 2 at 5-minute ticks is the
    /// Kubernetes HPA's 300 s scale-down stabilisation. Waived for a workload
    /// whose wanted scale-downs have held (see [`ReleaseRecord`]): at least
    /// `risk_min_samples` measured, failing less often than holding is worth
    /// (the instances held for the rest of the window against `miss_cost` ×
    /// priority a miss; `miss_rate` without a miss cost).
    pub down_window: usize,
    /// Warm (stopped, ready) instances at most this share of the fleet.
    pub warm_share: f64,
    /// Readiness score from which capacity is pre-allocated, and the instance
    /// units added at score 1 and priority 1.
    pub readiness_threshold: f64,
    pub readiness_units: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            target: 0.7,
            delay_steps: 1,
            miss_rate: 0.05,
            miss_cost: Some(1000.0),
            risk_window: 256,
            risk_min_samples: 20,
            down_window: 2,
            warm_share: 0.25,
            readiness_threshold: 0.8,
            readiness_units: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("bounds are impossible: min {min} is above max {max}")]
    Bounds { min: u32, max: u32 },
    #[error("{0} must be a number in {1}")]
    Range(&'static str, &'static str),
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<(), PolicyError> {
        let unit = |v: f64| v.is_finite() && v > 0.0 && v <= 1.0;
        if !unit(self.target) {
            return Err(PolicyError::Range("target", "(0, 1]"));
        }
        if !(self.miss_rate.is_finite() && (0.0..1.0).contains(&self.miss_rate)) {
            return Err(PolicyError::Range("miss_rate", "[0, 1)"));
        }
        if !(self.warm_share.is_finite() && self.warm_share >= 0.0) {
            return Err(PolicyError::Range("warm_share", "[0, ∞)"));
        }
        if self.miss_cost.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return Err(PolicyError::Range("miss_cost", "(0, ∞)"));
        }
        if self.down_window == 0 {
            return Err(PolicyError::Range("down_window", "1 or more"));
        }
        Ok(())
    }
}

/// Inclusive instance bounds of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    pub fn new(min: u32, max: u32) -> Result<Self, PolicyError> {
        if min > max {
            return Err(PolicyError::Bounds { min, max });
        }
        Ok(Self { min, max })
    }

    pub const UNBOUNDED: Bounds = Bounds {
        min: 0,
        max: u32::MAX,
    };
}

/// What the controller remembers per workload between ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ControllerState {
    /// Capacity wanted at the last ticks, newest last (the hysteresis window).
    recent: VecDeque<u32>,
    pub risk: GrowthRisk,
    /// Median forecasts for the arrival step made at the last ticks, oldest
    /// first; each is scored when its step comes.
    pending: VecDeque<Option<f64>>,
    /// Ticks scored, and those where demand was above the serving capacity.
    pub scored: u64,
    pub misses: u64,
    /// How the scale-downs it wanted would have turned out.
    #[serde(default)]
    pub releases: ReleaseRecord,
}

/// The shape [`ControllerState`] was stored in with format 1, before it
/// measured its scale-downs.
#[derive(serde::Serialize, serde::Deserialize)]
struct StateV1 {
    recent: VecDeque<u32>,
    risk: GrowthRisk,
    pending: VecDeque<Option<f64>>,
    scored: u64,
    misses: u64,
}

impl From<StateV1> for ControllerState {
    fn from(v: StateV1) -> Self {
        Self {
            recent: v.recent,
            risk: v.risk,
            pending: v.pending,
            scored: v.scored,
            misses: v.misses,
            releases: ReleaseRecord::default(),
        }
    }
}

/// The stored form of [`ControllerState`] could not be read.
#[derive(Debug, thiserror::Error)]
#[error("controller state: {0}")]
pub struct StateDecodeError(String);

/// First byte of [`ControllerState::encode`]'s output. postcard is not
/// self-describing: change it whenever `ControllerState`'s shape changes.
const STATE_FORMAT: u8 = 2;

impl ControllerState {
    pub fn new(cfg: &PolicyConfig) -> Self {
        Self {
            recent: VecDeque::new(),
            risk: GrowthRisk::new(cfg.risk_window, cfg.risk_min_samples),
            pending: VecDeque::new(),
            scored: 0,
            misses: 0,
            releases: ReleaseRecord::default(),
        }
    }

    /// Forgets what only holds from one tick to the next, for a state that
    /// missed ticks (one stored some ticks ago): the forecasts awaiting their
    /// step (scored against later demand they would teach the margins a
    /// wrong error), the hysteresis window (a young window counts the
    /// fleet as wanted, so nothing is released before a whole window of
    /// fresh ticks) and the scale-downs awaiting demand. The margins learnt
    /// per level and the scale-downs' outcomes stay.
    pub fn forget_short_term(&mut self) {
        self.recent.clear();
        self.pending.clear();
        self.releases.forget_pending();
    }

    /// The compact binary form kept per workload between ticks (postcard
    /// after a format byte): about a third of the JSON, and several times
    /// faster to read and write, which a tick does for every workload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![STATE_FORMAT];
        // Serialising plain data into a Vec cannot fail.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        match bytes.split_first() {
            Some((&STATE_FORMAT, rest)) => {
                postcard::from_bytes(rest).map_err(|e| StateDecodeError(e.to_string()))
            }
            Some((1, rest)) => postcard::from_bytes::<StateV1>(rest)
                .map(Self::from)
                .map_err(|e| StateDecodeError(e.to_string())),
            Some((v, _)) => Err(StateDecodeError(format!("unknown format {v}"))),
            None => Err(StateDecodeError("empty".into())),
        }
    }

    /// The state as stored: the binary form, else the JSON that earlier
    /// versions stored; `None` when neither is there.
    pub fn restore(
        binary: Option<&[u8]>,
        json: Option<&str>,
    ) -> Result<Option<Self>, StateDecodeError> {
        match (binary, json) {
            (Some(b), _) => Self::decode(b).map(Some),
            (None, Some(j)) => serde_json::from_str(j)
                .map(Some)
                .map_err(|e| StateDecodeError(e.to_string())),
            (None, None) => Ok(None),
        }
    }
}

/// What moved the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Off,
    /// Upper quantile of forecast demand above the fleet: scaled up ahead.
    ForecastAbove,
    /// No calibrated forecast yet: sized from the demand just measured.
    Reactive,
    /// Demand was above the serving capacity: the forecast under-called, so
    /// at least what was measured is served (graceful downgrade).
    Missed,
    /// Readiness score above the threshold: capacity pre-allocated.
    Readiness,
    Steady,
    /// Wants less, but not for long enough yet.
    HoldHysteresis,
    /// Wants less, but the forecast is not confident enough to release.
    HoldUncertain,
    ScaleDown,
}

/// A limit that cut the decision short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    BoundMin,
    BoundMax,
    Budget(BudgetOutcome),
}

/// Everything the controller needs for one workload at one tick.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Demand just measured, in instance units at 100 % utilisation.
    pub observed: Option<f64>,
    /// Forecast demand for the next ticks (h = 1, 2, …), same units.
    pub forecast: &'a [Step],
    /// Probability of a billable event soon (0..1), if the workload has one.
    pub readiness: Option<f64>,
    /// Customer priority (1 = normal; tiers raise it).
    pub priority: f64,
    pub fleet: Fleet,
    pub bounds: Bounds,
    pub budget: Option<Budget>,
    pub mode: Mode,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub before: u32,
    pub after: u32,
    /// Warm instances to keep ready beside `after`.
    pub warm: u32,
    pub reason: Reason,
    pub limits: Vec<Limit>,
    /// Demand the capacity was sized for (upper quantile), when a forecast was
    /// used.
    pub sized_for: Option<f64>,
    /// Whether the provider should be commanded (mode on and a change).
    pub execute: bool,
}

/// One tick of the policy for one workload.
pub fn decide(cfg: &PolicyConfig, state: &mut ControllerState, inp: &Inputs) -> Decision {
    let before = inp.fleet.commanded;
    if inp.mode == Mode::Off {
        return Decision {
            before,
            after: before,
            warm: 0,
            reason: Reason::Off,
            limits: Vec::new(),
            sized_for: None,
            execute: false,
        };
    }
    let delay = cfg.delay_steps.max(1);
    // Score the forecast made `delay` ticks ago for this tick.
    let due = (state.pending.len() >= delay)
        .then(|| state.pending.pop_front())
        .flatten()
        .flatten();
    let missed = inp
        .observed
        .is_some_and(|d| d > f64::from(inp.fleet.in_force));
    if let Some(d) = inp.observed {
        if let Some(f) = due {
            state.risk.record(f, d);
        }
        state.scored += 1;
        state.misses += u64::from(missed);
        state.releases.observe(d);
    }
    let base = inp
        .forecast
        .get(delay - 1)
        .map(|s| s.p50)
        .filter(|v| v.is_finite());
    state.pending.push_back(base);

    let level = 1.0 - cfg.miss_rate;
    let sized_for = base.and_then(|b| match cfg.miss_cost {
        Some(m) => state
            .risk
            .economic(b, m * inp.priority.max(0.0), cfg.target),
        None => state.risk.upper(b, level),
    });
    let (mut want, mut reason) = match (sized_for, inp.observed) {
        (Some(u), _) => (instances_for(u / cfg.target), Reason::ForecastAbove),
        (None, Some(d)) => (instances_for(d / cfg.target), Reason::Reactive),
        (None, None) => (before, Reason::Steady),
    };
    if missed {
        let seen = inp.observed.map_or(0, instances_for);
        if seen > want {
            (want, reason) = (seen, Reason::Missed);
        }
    }
    if let Some(score) = inp.readiness
        && score >= cfg.readiness_threshold
    {
        let extra = instances_for(score * inp.priority.max(0.0) * cfg.readiness_units);
        if extra > 0 {
            want = want.saturating_add(extra);
            reason = Reason::Readiness;
        }
    }

    let window = cfg.down_window.max(1);
    state.recent.push_back(want);
    while state.recent.len() > window {
        state.recent.pop_front();
    }
    let mut after = if want > before {
        want
    } else if want == before {
        reason = Reason::Steady;
        before
    } else {
        // At least what was just measured, since a cut applies at once.
        let release = want.max(inp.observed.map_or(0, instances_for));
        // A failed scale-down costs a miss; holding costs the instances for
        // the rest of the window: release at once when that is the dearer.
        let tolerated = match cfg.miss_cost {
            Some(m) => {
                f64::from(before.saturating_sub(release)) * (window - 1) as f64
                    / (m * inp.priority.max(1e-9))
            }
            None => cfg.miss_rate,
        };
        let proven = release < before && state.releases.proven(cfg.risk_min_samples, tolerated);
        if release < before {
            state.releases.wanted(release, delay);
        }
        // Unless scale-downs have proven safe, down only to the most wanted
        // over the window (a young window counts the fleet as wanted).
        let young = state.recent.len() < window;
        let cut = if proven {
            release
        } else {
            state
                .recent
                .iter()
                .copied()
                .max()
                .unwrap_or(want)
                .max(if young { before } else { 0 })
                .max(release)
        };
        // Confident: the forecast's level has a measured margin. (The
        // forecast's own p10–p90 is additive and, on bursty series, wide in
        // calm periods too; gating on it kept burst capacity for hours.)
        let confident = base.is_some_and(|b| state.risk.calibrated_at(b));
        if cut >= before {
            reason = Reason::HoldHysteresis;
            before
        } else if !confident {
            reason = Reason::HoldUncertain;
            before
        } else {
            reason = Reason::ScaleDown;
            cut
        }
    };

    let mut limits = Vec::new();
    if after < inp.bounds.min {
        after = inp.bounds.min;
        limits.push(Limit::BoundMin);
    }
    if after > inp.bounds.max {
        after = inp.bounds.max;
        limits.push(Limit::BoundMax);
    }
    if let Some(budget) = &inp.budget {
        let (capped, outcome) = budget.apply(before, after);
        if let Some(o) = outcome {
            limits.push(Limit::Budget(o));
        }
        after = capped.max(inp.bounds.min);
    }

    // Warm pool: the gap to the highest p90 over the forecast, within a share
    // of the fleet, so a miss is served from stopped instances in seconds.
    let peak = inp
        .forecast
        .iter()
        .map(|s| s.p90)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let warm = instances_for(peak / cfg.target)
        .saturating_sub(after)
        .min(instances_for(cfg.warm_share * f64::from(after)));

    Decision {
        before,
        after,
        warm,
        reason,
        limits,
        sized_for,
        execute: inp.mode == Mode::On && after != before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocate::budget::CapAction;

    fn step(p50: f64) -> Step {
        Step {
            p10: p50 * 0.9,
            p50,
            p90: p50 * 1.1,
        }
    }

    fn fleet(n: u32) -> Fleet {
        Fleet {
            in_force: n,
            commanded: n,
        }
    }

    fn inputs(observed: f64, forecast: &[Step], n: u32) -> Inputs<'_> {
        Inputs {
            observed: Some(observed),
            forecast,
            readiness: None,
            priority: 1.0,
            fleet: fleet(n),
            bounds: Bounds::UNBOUNDED,
            budget: None,
            mode: Mode::On,
        }
    }

    #[test]
    fn state_round_trips_through_its_stored_forms() {
        let cfg = PolicyConfig::default();
        let mut st = ControllerState::new(&cfg);
        for t in 0..500 {
            let v = 10.0 + (t % 37) as f64;
            st.risk.record(v, v * 1.1 + (t % 5) as f64);
            decide(&cfg, &mut st, &inputs(v, &[step(v); 3], 2));
        }
        let bytes = st.encode();
        let json = serde_json::to_string(&st).unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
        assert_eq!(ControllerState::decode(&bytes).unwrap(), st);
        // Binary wins; JSON (as stored before) still reads.
        let blank = ControllerState::new(&cfg).encode();
        assert_eq!(
            ControllerState::restore(Some(&blank), Some(&json)).unwrap(),
            Some(ControllerState::new(&cfg))
        );
        assert_eq!(
            ControllerState::restore(None, Some(&json)).unwrap(),
            Some(st)
        );
        assert_eq!(ControllerState::restore(None, None).unwrap(), None);
        // Another format or a cut record is an error, not a wrong state.
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(ControllerState::decode(&other).is_err());
        assert!(ControllerState::decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(ControllerState::decode(&[]).is_err());
    }

    #[test]
    fn a_state_stored_before_scale_downs_were_measured_still_reads() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 7.0);
        decide(&cfg, &mut st, &inputs(7.0, &[step(7.0)], 20));
        let v1 = StateV1 {
            recent: st.recent.clone(),
            risk: st.risk.clone(),
            pending: st.pending.clone(),
            scored: st.scored,
            misses: st.misses,
        };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_allocvec(&v1).unwrap());
        let read = ControllerState::decode(&bytes).unwrap();
        assert_eq!(read.risk, st.risk);
        assert_eq!((read.recent, read.scored), (st.recent.clone(), st.scored));
        assert_eq!(read.releases, ReleaseRecord::default());
        // The JSON of that time (no `releases`) too.
        let json = serde_json::to_string(&v1).unwrap();
        let read = ControllerState::restore(None, Some(&json))
            .unwrap()
            .unwrap();
        assert_eq!(read.releases, ReleaseRecord::default());
        assert!(
            ControllerState::decode(&[3, 0]).is_err(),
            "a format no version wrote"
        );
    }

    /// `st` after `n` wanted scale-downs to `to` that demand `then` followed.
    fn with_releases(mut st: ControllerState, n: usize, to: u32, then: f64) -> ControllerState {
        for _ in 0..n {
            st.releases.wanted(to, 1);
            st.releases.observe(then);
        }
        st
    }

    #[test]
    fn hysteresis_is_waived_once_scale_downs_have_held() {
        let cfg = PolicyConfig::default(); // down_window 2, miss cost 1000
        let low = [step(7.0)];
        // 20 → 10 saves 10 instances for one tick of the window; a failed
        // scale-down costs a miss worth 1000: waived only below 1 % failures.
        let held = with_releases(calibrated(&cfg, 7.0), 64, 10, 7.0);
        let d = decide(&cfg, &mut held.clone(), &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (10, Reason::ScaleDown));
        // One in 64 failed: 1.6 %, held.
        let once = with_releases(held, 1, 10, 12.0);
        let d = decide(&cfg, &mut once.clone(), &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (20, Reason::HoldHysteresis));
        // Worth only 100 a miss, 1.6 % is below the 10 % that pays.
        let cheap = PolicyConfig {
            miss_cost: Some(100.0),
            ..cfg.clone()
        };
        let d = decide(&cheap, &mut once.clone(), &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (10, Reason::ScaleDown));
        // Too few measured: held; and never into an unmeasured level.
        let few = with_releases(calibrated(&cfg, 7.0), 19, 10, 7.0);
        let d = decide(&cfg, &mut few.clone(), &inputs(7.0, &low, 20));
        assert_eq!(d.reason, Reason::HoldHysteresis);
        let unmeasured = with_releases(ControllerState::new(&cfg), 64, 10, 7.0);
        let d = decide(&cfg, &mut unmeasured.clone(), &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (20, Reason::HoldUncertain));
    }

    #[test]
    fn demand_above_the_commanded_fleet_is_no_scale_down_to_measure() {
        // More instances serve than were commanded (drift the next tick
        // repairs): demand of 11.5 needs 12, above the 10 commanded.
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 5.0);
        let forecast = [step(5.0)];
        let mut inp = inputs(11.5, &forecast, 10);
        inp.fleet.in_force = 12;
        let d = decide(&cfg, &mut st, &inp);
        assert_eq!(d.after, 10);
        assert_eq!(st.releases, ReleaseRecord::default());
    }

    #[test]
    fn wanted_scale_downs_are_scored_by_the_demand_that_follows() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 7.0);
        // Wants 10 of 20 (held by the young window), then demand comes at 12.
        let d = decide(&cfg, &mut st, &inputs(7.0, &[step(7.0)], 20));
        assert_eq!(d.reason, Reason::HoldHysteresis);
        assert_eq!(st.releases.measured(), (0, 0));
        decide(&cfg, &mut st, &inputs(12.0, &[step(7.0)], 20));
        assert_eq!(st.releases.measured(), (1, 1));
        // A steady fleet wants no scale-down: nothing to score.
        let mut steady = calibrated(&cfg, 7.0);
        for _ in 0..3 {
            decide(&cfg, &mut steady, &inputs(7.0, &[step(7.0)], 10));
        }
        assert_eq!(steady.releases.measured(), (0, 0));
    }

    /// A state whose forecasts at level ~`level` were always exact.
    fn calibrated(cfg: &PolicyConfig, level: f64) -> ControllerState {
        let mut st = ControllerState::new(cfg);
        for _ in 0..cfg.risk_min_samples {
            st.risk.record(level, level);
        }
        st
    }

    #[test]
    fn reacts_to_measured_demand_until_the_forecast_is_calibrated() {
        let cfg = PolicyConfig::default();
        let mut st = ControllerState::new(&cfg);
        let d = decide(&cfg, &mut st, &inputs(7.0, &[step(7.0)], 10));
        assert_eq!((d.after, d.reason), (10, Reason::Steady));
        let d = decide(&cfg, &mut st, &inputs(14.0, &[step(14.0)], 10));
        // 14 / 0.7 = 20, sized from what was measured.
        assert_eq!((d.after, d.reason), (20, Reason::Reactive));
    }

    #[test]
    fn scales_up_ahead_of_forecast_demand() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 30.0);
        // Demand is 10 now; 30 is forecast for when a scale-up would land.
        let d = decide(&cfg, &mut st, &inputs(10.0, &[step(30.0)], 15));
        assert_eq!(d.reason, Reason::ForecastAbove);
        assert_eq!(d.after, 43); // 30 / 0.7 = 42.9
        assert!(d.execute);
        assert_eq!(d.sized_for.map(f64::round), Some(30.0));
    }

    #[test]
    fn the_margin_follows_measured_misses_at_that_level() {
        let cfg = PolicyConfig::default();
        let mut st = ControllerState::new(&cfg);
        // At level 100, demand always came in 50 % above the forecast.
        for _ in 0..cfg.risk_min_samples {
            st.risk.record(100.0, 150.0);
        }
        let d = decide(&cfg, &mut st, &inputs(100.0, &[step(100.0)], 100));
        assert_eq!(d.after, 215); // (101 × 1.5 − 1) / 0.7
    }

    #[test]
    fn scale_down_waits_for_hysteresis_and_a_confident_level() {
        let cfg = PolicyConfig::default(); // down_window = 2
        let mut st = calibrated(&cfg, 7.0);
        let low = [step(7.0)];
        let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (20, Reason::HoldHysteresis));
        let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (10, Reason::ScaleDown));

        // A level never measured: capacity is kept.
        let mut st = ControllerState::new(&cfg);
        for _ in 0..3 {
            let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
            assert_eq!(d.after, 20);
        }
        let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        assert_eq!(d.reason, Reason::HoldUncertain);
    }

    #[test]
    fn a_state_that_missed_ticks_holds_capacity_for_a_window_and_scores_no_stale_forecast() {
        let cfg = PolicyConfig::default(); // down_window = 2, delay 1
        let low = [step(7.0)];
        let mut st = calibrated(&cfg, 7.0);
        decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        // Stored here; the next tick it sees is some ticks later.
        let mut resumed = st.clone();
        resumed.forget_short_term();
        // Kept from the tick before, the window is full: 20 → 10 at once.
        let d = decide(&cfg, &mut st.clone(), &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (10, Reason::ScaleDown));
        // Resumed: the first tick holds, the window's second releases.
        let d = decide(&cfg, &mut resumed, &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (20, Reason::HoldHysteresis));
        let d = decide(&cfg, &mut resumed, &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (10, Reason::ScaleDown));

        // The forecast awaiting its step (7) is not scored against demand
        // seen later (70): the margin at level 7 learns nothing from it.
        let mut kept = st.clone();
        let mut gone = st.clone();
        gone.forget_short_term();
        decide(&cfg, &mut kept, &inputs(70.0, &[step(70.0)], 20));
        decide(&cfg, &mut gone, &inputs(70.0, &[step(70.0)], 20));
        assert_ne!(kept.risk, st.risk);
        assert_eq!(gone.risk, st.risk);
        assert_eq!((gone.scored, gone.misses), (kept.scored, kept.misses));
    }

    #[test]
    fn capacity_comes_down_only_to_the_most_wanted_in_the_window() {
        // The 95th percentile ignores the one ×2 outcome the high tick records.
        let cfg = PolicyConfig {
            miss_cost: None,
            ..PolicyConfig::default()
        };
        let mut st = calibrated(&cfg, 7.0);
        for _ in 0..cfg.risk_min_samples {
            st.risk.record(14.0, 14.0);
        }
        let (low, high) = ([step(7.0)], [step(14.0)]);
        let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        assert_eq!(d.reason, Reason::HoldHysteresis);
        // Wants 20 again: steady, and it stays in the window...
        let d = decide(&cfg, &mut st, &inputs(14.0, &high, 20));
        assert_eq!((d.after, d.reason), (20, Reason::Steady));
        // ...so the next low tick still holds, and the one after releases.
        let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (20, Reason::HoldHysteresis));
        let d = decide(&cfg, &mut st, &inputs(7.0, &low, 20));
        assert_eq!((d.after, d.reason), (10, Reason::ScaleDown));
    }

    #[test]
    fn expected_cost_covers_a_cheap_tail_and_leaves_an_expensive_one() {
        let cfg = PolicyConfig {
            miss_cost: Some(200.0),
            target: 1.0,
            ..PolicyConfig::default()
        };
        let mut st = ControllerState::new(&cfg);
        // At both levels one outcome in ten doubled.
        for i in 0..40 {
            let ratio = if i % 10 == 0 { 2.0 } else { 1.0 };
            st.risk.record(9.0, 10.0 * ratio - 1.0);
            st.risk.record(9_999.0, 10_000.0 * ratio - 1.0);
        }
        // At 10 instances, 10 more for a 10 % chance of a miss worth 200: covered.
        let d = decide(&cfg, &mut st, &inputs(9.0, &[step(9.0)], 10));
        assert_eq!(d.after, 19);
        // At 10,000, 10,000 more for the same: left uncovered.
        let d = decide(&cfg, &mut st, &inputs(9_999.0, &[step(9_999.0)], 9_000));
        assert_eq!(d.after, 9_999);
    }

    #[test]
    fn a_miss_serves_at_least_the_measured_demand() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 5.0);
        // Forecast says 5 but 40 arrived on a fleet of 10.
        let d = decide(&cfg, &mut st, &inputs(40.0, &[step(5.0)], 10));
        assert_eq!((d.after, d.reason), (40, Reason::Missed));
        assert_eq!((st.scored, st.misses), (1, 1));
    }

    #[test]
    fn readiness_pre_allocates_by_score_and_priority() {
        let cfg = PolicyConfig {
            readiness_units: 4.0,
            ..PolicyConfig::default()
        };
        let mut st = calibrated(&cfg, 7.0);
        let f = [step(7.0)];
        let mut inp = inputs(7.0, &f, 10);
        inp.readiness = Some(0.9);
        inp.priority = 2.0;
        let d = decide(&cfg, &mut st, &inp);
        // 10 for the forecast + ceil(0.9 × 2 × 4) = 8.
        assert_eq!((d.after, d.reason), (18, Reason::Readiness));
        inp.readiness = Some(0.5);
        let d = decide(&cfg, &mut st, &inp);
        assert_ne!(d.reason, Reason::Readiness);
    }

    #[test]
    fn bounds_clamp_and_say_so() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 30.0);
        let f = [step(30.0)];
        let mut inp = inputs(30.0, &f, 10);
        inp.bounds = Bounds::new(1, 20).unwrap();
        let d = decide(&cfg, &mut st, &inp);
        assert_eq!((d.after, d.limits.clone()), (20, vec![Limit::BoundMax]));
        assert_eq!(
            Bounds::new(5, 2),
            Err(PolicyError::Bounds { min: 5, max: 2 })
        );
    }

    #[test]
    fn a_blocking_budget_refuses_the_scale_up() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 30.0);
        let f = [step(30.0)];
        let mut inp = inputs(30.0, &f, 10);
        inp.budget = Some(Budget {
            cap_micros: 1_000,
            projected_micros: 900,
            instance_rest_micros: 50,
            action: CapAction::Block,
        });
        let d = decide(&cfg, &mut st, &inp);
        assert_eq!(d.after, 10);
        assert_eq!(d.limits, vec![Limit::Budget(BudgetOutcome::Blocked)]);
        assert!(!d.execute);
    }

    #[test]
    fn modes() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 30.0);
        let f = [step(30.0)];
        let mut inp = inputs(30.0, &f, 10);
        inp.mode = Mode::Off;
        let d = decide(&cfg, &mut st, &inp);
        assert_eq!((d.after, d.reason, d.execute), (10, Reason::Off, false));
        inp.mode = Mode::ForecastOnly;
        let d = decide(&cfg, &mut st, &inp);
        assert!(d.after > 10 && !d.execute, "logged, not executed");
    }

    #[test]
    fn warm_pool_covers_the_forecast_peak_within_its_share() {
        let cfg = PolicyConfig::default();
        let mut st = calibrated(&cfg, 7.0);
        let f = [step(7.0), step(7.0), step(12.0)];
        let d = decide(&cfg, &mut st, &inputs(7.0, &f, 10));
        // p90 peak 13.2 / 0.7 → 19 wanted beside 10 serving, at most 25 %: 3.
        assert_eq!((d.after, d.warm), (10, 3));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_step() -> impl Strategy<Value = Step> {
            (0.0f64..1e4, 0.0f64..2.0)
                .prop_map(|(p50, w)| Step::ordered(p50 * (1.0 - w / 2.0), p50, p50 * (1.0 + w)))
        }

        proptest! {
            #[test]
            fn decisions_respect_bounds_budget_and_mode(
                forecast in proptest::collection::vec(any_step(), 0..6),
                observed in proptest::option::of(0.0f64..1e4),
                history in proptest::collection::vec((0.0f64..1e4, 0.0f64..1e4), 0..60),
                in_force in 0u32..2_000,
                booting in 0u32..50,
                min in 0u32..100,
                span in 0u32..5_000,
                readiness in proptest::option::of(0.0f64..1.0),
                cap in proptest::option::of((0i64..10_000_000, 0i64..10_000_000, 1i64..10_000)),
                mode in prop_oneof![Just(Mode::Off), Just(Mode::ForecastOnly), Just(Mode::On)],
            ) {
                let cfg = PolicyConfig::default();
                let mut st = ControllerState::new(&cfg);
                for (f, a) in history {
                    st.risk.record(f, a);
                }
                let fleet = Fleet { in_force, commanded: in_force + booting };
                let bounds = Bounds::new(min, min + span).unwrap();
                let budget = cap.map(|(cap_micros, projected_micros, instance_rest_micros)| Budget {
                    cap_micros, projected_micros, instance_rest_micros, action: CapAction::Block,
                });
                let inp = Inputs { observed, forecast: &forecast, readiness, priority: 1.5, fleet, bounds, budget, mode };
                let d = decide(&cfg, &mut st, &inp);
                prop_assert_eq!(d.before, fleet.commanded);
                match mode {
                    Mode::Off => prop_assert_eq!(d.after, d.before),
                    _ => {
                        prop_assert!(d.after >= bounds.min && d.after <= bounds.max);
                        if let Some(b) = budget && d.after > d.before.max(bounds.min) {
                            prop_assert!(b.projected_with(d.before, d.after) <= b.cap_micros);
                        }
                    }
                }
                prop_assert_eq!(d.execute, mode == Mode::On && d.after != d.before);
                // A cut never leaves less than what was just measured (bounds aside).
                if d.reason == Reason::ScaleDown && let Some(o) = observed {
                    prop_assert!(f64::from(d.after) >= o.min(f64::from(bounds.max)));
                }
            }
        }
    }
}
