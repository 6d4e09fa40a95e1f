//! The predictive policy under replay: the online forecaster observes each
//! row's demand, forecasts up to the provisioning delay, and the policy
//! decides from that exactly as the controller does from stored forecasts.

use super::policy::{Bounds, ControllerState, Inputs, Mode, PolicyConfig, decide};
use super::replay::{Fleet, ScalePolicy};
use crate::forecast::{EngineConfig, Family, ForecastError, SeriesForecaster};

pub struct Predictive {
    cfg: PolicyConfig,
    state: ControllerState,
    forecaster: SeriesForecaster,
}

impl Predictive {
    pub fn new(cfg: PolicyConfig, step_secs: u64) -> Result<Self, ForecastError> {
        let engine = EngineConfig::for_step(cfg.delay_steps.max(1), step_secs, Family::Auto);
        Ok(Self {
            state: ControllerState::new(&cfg),
            cfg,
            forecaster: SeriesForecaster::new(engine)?,
        })
    }

    pub fn state(&self) -> &ControllerState {
        &self.state
    }
}

impl ScalePolicy for Predictive {
    fn decide(&mut self, demand: Option<f64>, fleet: Fleet) -> u32 {
        self.forecaster.observe(demand);
        let steps = self
            .forecaster
            .forecast()
            .map(|f| f.steps)
            .unwrap_or_default();
        let inputs = Inputs {
            observed: demand,
            forecast: &steps,
            readiness: None,
            priority: 1.0,
            fleet,
            bounds: Bounds {
                min: 1,
                max: u32::MAX,
            },
            budget: None,
            mode: Mode::On,
        };
        decide(&self.cfg, &mut self.state, &inputs).after
    }
}
