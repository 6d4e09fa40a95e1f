//! The shipped global LSTM (models/forecast_lstm.onnx) through our loader:
//! same numbers as onnxruntime in the training script, and clear errors for a
//! missing or mis-shaped model.
//!
//! Needs ORT_DYLIB_PATH:  eval "$(bash scripts/python-env.sh)" && cargo test -p headroom-jobs --test forecast_lstm

use std::path::{Path, PathBuf};

use headroom_jobs::inference::init_runtime;
use headroom_jobs::lstm::{LstmError, LstmForecaster, MODEL_FILE, SPEC_FILE, normalisation};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn runtime() {
    if let Err(e) = init_runtime(None) {
        panic!(
            "{e}\nThis test needs ONNX Runtime: run it as\n  \
             eval \"$(bash scripts/python-env.sh)\" && cargo test -p headroom-jobs --test forecast_lstm"
        );
    }
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn matches_the_training_scripts_onnxruntime_output() {
    runtime();
    let model = LstmForecaster::load(&models_dir()).unwrap_or_else(|e| panic!("{e}"));
    let path = models_dir().join("forecast_lstm.expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let inputs: Vec<Vec<f64>> = cases.iter().map(|c| floats(&c["input"])).collect();
    let windows: Vec<&[f64]> = inputs.iter().map(Vec::as_slice).collect();
    // One batch for all cases: batching must not change any row.
    let got = model.forecast(&windows).unwrap();
    for (case, steps) in cases.iter().zip(&got) {
        let name = case["name"].as_str().unwrap();
        let (center, scale) = normalisation(&floats(&case["input"]));
        assert!(
            (center - case["center"].as_f64().unwrap()).abs() <= 1e-9 * center.abs().max(1.0),
            "{name}"
        );
        assert!(
            (scale - case["scale"].as_f64().unwrap()).abs() <= 1e-9 * scale.abs().max(1.0),
            "{name}"
        );
        assert_eq!(steps.len(), model.spec().horizon);
        for (q, key) in [(0usize, "p10"), (1, "p50"), (2, "p90")] {
            let want = floats(&case[key]);
            for (h, s) in steps.iter().enumerate() {
                let have = [s.p10, s.p50, s.p90][q];
                // float32 inside the model: compare on the normalised scale.
                let err = (have - want[h]).abs() / scale;
                assert!(
                    err < 1e-3,
                    "{name} {key} h={}: {have} vs {}",
                    h + 1,
                    want[h]
                );
            }
        }
        assert!(
            steps.iter().all(|s| s.p10 <= s.p50 && s.p50 <= s.p90),
            "{name}"
        );
    }
    // Too short a window is an error, not a panic.
    let short = vec![1.0; model.spec().input_len - 1];
    assert!(model.forecast(&[&short]).is_err());
    assert!(model.forecast(&[]).unwrap().is_empty());
}

#[test]
fn a_missing_or_misshaped_model_names_the_file() {
    runtime();
    let dir = tempfile::tempdir().unwrap();
    let err = LstmForecaster::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains(SPEC_FILE), "{err}");

    // The contract present, the model absent.
    std::fs::copy(models_dir().join(SPEC_FILE), dir.path().join(SPEC_FILE)).unwrap();
    let err = LstmForecaster::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains(MODEL_FILE), "{err}");

    // A real ONNX model of another shape (the wiring fixture) in its place.
    std::fs::copy(
        models_dir().join("tiny_lstm.onnx"),
        dir.path().join(MODEL_FILE),
    )
    .unwrap();
    let err = LstmForecaster::load(dir.path()).unwrap_err();
    assert!(matches!(err, LstmError::Contract { .. }), "{err}");
    assert!(err.to_string().contains(MODEL_FILE), "{err}");

    // A contract that is not JSON.
    std::fs::write(dir.path().join(SPEC_FILE), "{ not json").unwrap();
    let err = LstmForecaster::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains(SPEC_FILE), "{err}");
}
