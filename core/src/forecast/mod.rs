//! Forecasting: online statistical models, per-series model choice by measured
//! accuracy, conformal p10/p50/p90 intervals, and rolling-origin evaluation.

pub mod accuracy;
pub mod ar;
pub mod backtest;
pub mod calibration;
pub mod engine;
pub mod horizon;
pub mod inputs;
pub mod models;
pub mod packed;
pub mod registry;

pub use engine::{EngineConfig, Family, SeriesForecaster};
pub use horizon::{Grid, Horizon, STATISTICAL_VERSION, grid_from_buckets};
pub use models::ModelSpec;
pub use packed::{PackedError, PackedSteps};

/// One forecast step: the 10th, 50th and 90th percentiles.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

impl Step {
    /// Quantiles that never cross, whatever the error windows say.
    pub fn ordered(p10: f64, p50: f64, p90: f64) -> Self {
        Self {
            p10: p10.min(p50),
            p50,
            p90: p90.max(p50),
        }
    }
}

/// Forecast steps h = 1..=H and the models that made them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Forecast {
    pub steps: Vec<Step>,
    /// Label of the model that served each step.
    pub models: Vec<String>,
    /// The served models' recent mean absolute error (decayed, averaged over
    /// steps), `None` before any was scored.
    pub score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForecastError {
    #[error("the series is too short to forecast: {have} usable values, at least {need} needed")]
    TooShort { have: usize, need: usize },
    #[error("the horizon must be at least one step")]
    ZeroHorizon,
    #[error("no candidate models configured")]
    NoCandidates,
    #[error("{0}")]
    BadRequest(String),
}
