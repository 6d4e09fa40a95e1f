//! Runs models/tiny_lstm.onnx through ONNX Runtime and compares with the numpy reference
//! that models/make_tiny_lstm.py wrote to models/tiny_lstm.expected.json.
//!
//! Needs ORT_DYLIB_PATH:  eval "$(bash scripts/python-env.sh)" && cargo test -p headroom-jobs --test onnx_model

use std::path::{Path, PathBuf};

use headroom_jobs::inference::{InferenceError, SequenceModel, init_runtime, resolve_dylib};
use ndarray::{Array3, s};

const TOLERANCE: f32 = 1e-4;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Fails (never skips) without a runtime: a silently skipped test would hide a broken setup.
fn runtime() {
    if let Err(e) = init_runtime(None) {
        panic!(
            "{e}\nThis test needs ONNX Runtime: run it as\n  \
             eval \"$(bash scripts/python-env.sh)\" && cargo test -p headroom-jobs --test onnx_model"
        );
    }
}

fn load_model() -> SequenceModel {
    runtime();
    let path = models_dir().join("tiny_lstm.onnx");
    SequenceModel::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

struct Case {
    name: String,
    history: Vec<f32>,
    forecast: Vec<f32>,
}

fn expected_cases() -> Vec<Case> {
    let path = models_dir().join("tiny_lstm.expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .expect("array of numbers")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    json["cases"]
        .as_array()
        .expect("`cases` array")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("case name").to_owned(),
            history: floats(&c["history"]),
            forecast: floats(&c["forecast"]),
        })
        .collect()
}

#[test]
fn tiny_lstm_matches_numpy_reference_as_one_batch() {
    let model = load_model();
    let cases = expected_cases();
    assert_eq!(cases.len(), 3, "expected.json should hold 3 cases");
    let steps = cases[0].history.len();
    assert_eq!(model.input_dims(), &[-1, steps as i64, 1]);

    let flat: Vec<f32> = cases
        .iter()
        .flat_map(|c| c.history.iter().copied())
        .collect();
    let batch = Array3::from_shape_vec((cases.len(), steps, 1), flat).expect("equal-length cases");
    let out = model.predict(batch.view()).expect("predict");

    assert_eq!(out.dim(), (cases.len(), 1));
    for (row, case) in out.rows().into_iter().zip(&cases) {
        for (&got, &want) in row.iter().zip(&case.forecast) {
            assert!(
                (got - want).abs() <= TOLERANCE,
                "{}: got {got}, expected {want} (tolerance {TOLERANCE})",
                case.name
            );
        }
    }
    // The cases give different forecasts, so a batch mix-up would not go unnoticed.
    assert!((out[[0, 0]] - out[[1, 0]]).abs() > 1e-3);
}

#[test]
fn strided_view_gives_same_result_as_contiguous() {
    let model = load_model();
    let cases = expected_cases();
    let steps = cases[0].history.len();
    // Every other row of a 6-row array: a non-contiguous view must be handled, not rejected.
    let mut wide = Array3::<f32>::zeros((cases.len() * 2, steps, 1));
    for (i, c) in cases.iter().enumerate() {
        for (t, &v) in c.history.iter().enumerate() {
            wide[[2 * i, t, 0]] = v;
        }
    }
    let out = model
        .predict(wide.slice(s![..;2, .., ..]))
        .expect("predict strided");
    for (i, c) in cases.iter().enumerate() {
        assert!(
            (out[[i, 0]] - c.forecast[0]).abs() <= TOLERANCE,
            "{}",
            c.name
        );
    }
}

#[test]
fn wrong_input_shape_is_an_error_not_a_panic() {
    let model = load_model();
    for bad in [(1, 12, 1), (2, 16, 3)] {
        let history = Array3::<f32>::zeros(bad);
        match model.predict(history.view()) {
            Err(InferenceError::Shape(msg)) => assert!(msg.contains("[?, 16, 1]"), "{msg}"),
            other => panic!("{bad:?}: expected InferenceError::Shape, got {other:?}"),
        }
    }
}

#[test]
fn empty_batch_gives_empty_forecast_without_running() {
    // ONNX Runtime aborts the process on an empty LSTM batch; predict must not pass one on.
    let model = load_model();
    let out = model
        .predict(Array3::<f32>::zeros((0, 16, 1)).view())
        .expect("empty batch");
    assert_eq!(out.dim(), (0, 1));
}

#[test]
fn missing_model_file_is_a_load_error() {
    runtime();
    let err = SequenceModel::load(&models_dir().join("no_such_model.onnx")).unwrap_err();
    assert!(matches!(err, InferenceError::Load { .. }), "{err:?}");
}

#[test]
fn missing_runtime_library_is_reported_before_ort_sees_it() {
    // init_runtime works once per process, so the path check is tested through resolve_dylib.
    let missing = Path::new("/nonexistent/libonnxruntime.so");
    let err = resolve_dylib(Some(missing)).unwrap_err();
    assert!(
        matches!(&err, InferenceError::RuntimeMissing { path } if path == missing),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/libonnxruntime.so") && msg.contains("ORT_DYLIB_PATH"),
        "{msg}"
    );

    // An explicit path that exists resolves to an absolute file path.
    if let Some(configured) = std::env::var_os("ORT_DYLIB_PATH") {
        let resolved =
            resolve_dylib(Some(Path::new(&configured))).expect("configured path resolves");
        assert!(resolved.is_absolute() && resolved.is_file());
    }
}
