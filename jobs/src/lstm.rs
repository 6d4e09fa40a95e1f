//! The global LSTM forecaster: one ONNX model for every series, fed windows
//! normalised per series so it serves new customers without per-customer
//! training. The model and its contract (`forecast_lstm.json`) are made by
//! `models/train_forecast_lstm.py`; everything here checks that contract at
//! load time so a wrong file is a start-up error naming it.

use std::path::{Path, PathBuf};

use headroom_core::forecast::Step;
use ndarray::Array3;
use serde::Deserialize;

use crate::inference::{InferenceError, SequenceModel};

pub const MODEL_FILE: &str = "forecast_lstm.onnx";
pub const SPEC_FILE: &str = "forecast_lstm.json";
/// Windows per ONNX Runtime call: bounds memory, keeps batches efficient.
const MAX_BATCH: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LstmError {
    #[error("cannot read the LSTM contract {}: {reason}", .path.display())]
    Spec { path: PathBuf, reason: String },
    #[error("LSTM model {}: {reason}", .path.display())]
    Contract { path: PathBuf, reason: String },
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// The sidecar describing the model's input and output.
#[derive(Debug, Clone, Deserialize)]
pub struct LstmSpec {
    pub input_len: usize,
    pub horizon: usize,
    pub quantiles: Vec<f64>,
    pub version: String,
    /// Floating-point operations per series and forecast, when the training
    /// script recorded them (for the speed report).
    #[serde(default)]
    pub flops_per_series: Option<f64>,
}

pub struct LstmForecaster {
    model: SequenceModel,
    spec: LstmSpec,
}

impl std::fmt::Debug for LstmForecaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LstmForecaster")
            .field("spec", &self.spec)
            .finish()
    }
}

/// Per-window normalisation (the training script's rule, verbatim): centre on
/// the median, scale by the mean absolute deviation from it, with floors so a
/// flat window does not divide by zero.
pub fn normalisation(window: &[f64]) -> (f64, f64) {
    if window.is_empty() {
        return (0.0, 1.0);
    }
    let mut sorted = window.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let center = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let mut scale = window.iter().map(|v| (v - center).abs()).sum::<f64>() / n as f64;
    if scale < 1e-9 * center.abs().max(1.0) {
        scale = (1e-3 * center.abs()).max(1e-9);
    }
    if scale == 0.0 {
        scale = 1.0;
    }
    (center, scale)
}

/// A series with its gaps filled by the last value seen (the first value
/// before any): the model needs regular, complete windows.
pub fn fill_gaps(values: &[Option<f64>]) -> Vec<f64> {
    let mut last = values.iter().flatten().next().copied().unwrap_or(0.0);
    values
        .iter()
        .map(|v| {
            last = v.unwrap_or(last);
            last
        })
        .collect()
}

impl LstmForecaster {
    /// Loads `forecast_lstm.onnx` and its contract from `dir`.
    pub fn load(dir: &Path) -> Result<Self, LstmError> {
        let spec_path = dir.join(SPEC_FILE);
        let model_path = dir.join(MODEL_FILE);
        let text = std::fs::read_to_string(&spec_path).map_err(|e| LstmError::Spec {
            path: spec_path.clone(),
            reason: e.to_string(),
        })?;
        let spec: LstmSpec = serde_json::from_str(&text).map_err(|e| LstmError::Spec {
            path: spec_path.clone(),
            reason: e.to_string(),
        })?;
        let contract = |reason: String| LstmError::Contract {
            path: model_path.clone(),
            reason,
        };
        if spec.input_len == 0 || spec.horizon == 0 || spec.quantiles != [0.1, 0.5, 0.9] {
            return Err(contract(format!(
                "{SPEC_FILE} must give input_len and horizon > 0 and quantiles [0.1, 0.5, 0.9]"
            )));
        }
        let model = SequenceModel::load(&model_path)?;
        let dims = model.input_dims();
        let fits = |want: usize, got: i64| got < 0 || got as usize == want;
        if dims.len() != 3 || !fits(spec.input_len, dims[1]) || !fits(1, dims[2]) {
            return Err(contract(format!(
                "input must be [batch, {}, 1], the model declares {dims:?}",
                spec.input_len
            )));
        }
        if model.output_width() != Some(spec.horizon * 3) {
            return Err(contract(format!(
                "output must be [batch, {}, 3], the model declares {:?} values per row",
                spec.horizon,
                model.output_width()
            )));
        }
        Ok(Self { model, spec })
    }

    pub fn spec(&self) -> &LstmSpec {
        &self.spec
    }

    /// Forecasts each window (at least `input_len` values; the last ones are used).
    pub fn forecast(&self, windows: &[&[f64]]) -> Result<Vec<Vec<Step>>, LstmError> {
        let (len, horizon) = (self.spec.input_len, self.spec.horizon);
        if let Some(short) = windows.iter().find(|w| w.len() < len) {
            return Err(InferenceError::Shape(format!(
                "a window has {} values, the model needs {len}",
                short.len()
            ))
            .into());
        }
        let mut out = Vec::with_capacity(windows.len());
        for chunk in windows.chunks(MAX_BATCH) {
            let mut input = Array3::<f32>::zeros((chunk.len(), len, 1));
            let mut norms = Vec::with_capacity(chunk.len());
            for (b, w) in chunk.iter().enumerate() {
                let w = &w[w.len() - len..];
                let (center, scale) = normalisation(w);
                for (t, v) in w.iter().enumerate() {
                    input[[b, t, 0]] = ((v - center) / scale) as f32;
                }
                norms.push((center, scale));
            }
            let y = self.model.predict(input.view())?;
            for (b, (center, scale)) in norms.into_iter().enumerate() {
                let row = y.row(b);
                out.push(
                    (0..horizon)
                        .map(|h| {
                            let q = |k: usize| center + scale * f64::from(row[h * 3 + k]);
                            Step::ordered(q(0), q(1), q(2))
                        })
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_follows_the_contract() {
        let (c, s) = normalisation(&[1.0, 2.0, 3.0, 10.0]);
        assert_eq!(c, 2.5);
        assert_eq!(s, (1.5 + 0.5 + 0.5 + 7.5) / 4.0);
        // Flat windows: a floor relative to the level, never zero.
        assert_eq!(normalisation(&[5.0; 10]), (5.0, 5e-3));
        assert_eq!(normalisation(&[0.0; 10]), (0.0, 1e-9));
        assert_eq!(normalisation(&[]), (0.0, 1.0));
    }

    #[test]
    fn gaps_take_the_last_value_seen() {
        assert_eq!(
            fill_gaps(&[None, Some(2.0), None, Some(5.0), None]),
            vec![2.0, 2.0, 2.0, 5.0, 5.0]
        );
        assert!(fill_gaps(&[]).is_empty());
    }
}
