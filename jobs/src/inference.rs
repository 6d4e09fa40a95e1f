//! The ONNX runtime for forecasts: loads `.onnx` sequence models through `ort` and runs them.
//!
//! `ort` is built with `load-dynamic`: ONNX Runtime is not linked in but loaded at run time
//! from `ORT_DYLIB_PATH` (the PyPI `onnxruntime` wheel ships it; `scripts/python-env.sh`
//! installs it and prints the export). `ort` panics on first use when that library is
//! missing, so everything here goes through [`init_runtime`], which checks first and
//! returns an error instead.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use ndarray::{Array2, ArrayView3};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};

/// Environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "ONNX Runtime library not found at {}: set ORT_DYLIB_PATH to libonnxruntime.so \
         (eval \"$(bash scripts/python-env.sh)\" installs it and sets it)",
        .path.display()
    )]
    RuntimeMissing { path: PathBuf },
    #[error(
        "ORT_DYLIB_PATH is not set: point it at libonnxruntime.so \
         (eval \"$(bash scripts/python-env.sh)\" installs it and sets it)"
    )]
    NotConfigured,
    #[error("ONNX Runtime at {} could not be initialised: {reason}", .path.display())]
    RuntimeInit { path: PathBuf, reason: String },
    #[error("cannot load model {}: {reason}", .path.display())]
    Load { path: PathBuf, reason: String },
    #[error("shape mismatch: {0}")]
    Shape(String),
    #[error("inference failed: {0}")]
    Run(#[from] ort::Error),
}

/// The process-wide ONNX Runtime environment (`ort` allows only one per process). A failed
/// initialisation is cached too: `ort` keeps the loaded library for the process lifetime,
/// so a retry with another path would not take effect anyway.
static RUNTIME: OnceLock<Result<Environment, (PathBuf, String)>> = OnceLock::new();

/// The library to load: `dylib` if given, else `$ORT_DYLIB_PATH`; absolute and checked to
/// exist (a relative path would otherwise be looked up next to the executable by `ort`).
pub fn resolve_dylib(dylib: Option<&Path>) -> Result<PathBuf, InferenceError> {
    let path = match dylib {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(DYLIB_ENV) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => return Err(InferenceError::NotConfigured),
        },
    };
    match std::fs::canonicalize(&path) {
        Ok(abs) if abs.is_file() => Ok(abs),
        _ => Err(InferenceError::RuntimeMissing { path }),
    }
}

/// Loads ONNX Runtime once per process. Later calls return the first outcome and ignore
/// `dylib`; path errors (unset, missing file) are not cached, so a caller can fix and retry.
pub fn init_runtime(dylib: Option<&Path>) -> Result<(), InferenceError> {
    runtime(dylib).map(|_| ())
}

fn runtime(dylib: Option<&Path>) -> Result<&'static Environment, InferenceError> {
    let outcome = match RUNTIME.get() {
        Some(done) => done,
        None => {
            let path = resolve_dylib(dylib)?;
            RUNTIME.get_or_init(|| {
                let env = ort::init_from(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        b.with_name("headroom")
                            .with_telemetry(false)
                            .build()
                            .map_err(|e| e.to_string())
                    })
                    .map_err(|reason| (path.clone(), reason))?;
                tracing::debug!(dylib = %path.display(), "ONNX Runtime initialised");
                Ok(env)
            })
        }
    };
    outcome
        .as_ref()
        .map_err(|(path, reason)| InferenceError::RuntimeInit {
            path: path.clone(),
            reason: reason.clone(),
        })
}

/// A model taking `[batch, steps, features]` float32 and returning `[batch, …]` float32,
/// read as `[batch, outputs]` (trailing dims flattened row-major).
pub struct SequenceModel {
    // `Session::run` takes `&mut self` (ONNX Runtime's Run is not guaranteed thread safe).
    session: Mutex<Session>,
    /// Declared input dims; negative = free (symbolic, e.g. batch).
    input_dims: Vec<i64>,
    input_name: String,
    output_name: String,
    /// Declared output width, if fixed (lets an empty batch be answered without running).
    output_width: Option<usize>,
}

impl std::fmt::Debug for SequenceModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequenceModel")
            .field("input", &self.input_name)
            .field("input_dims", &self.input_dims)
            .field("output", &self.output_name)
            .finish_non_exhaustive()
    }
}

impl SequenceModel {
    /// Loads an ONNX file. Initialises the runtime from `$ORT_DYLIB_PATH` if
    /// [`init_runtime`] was not called yet.
    pub fn load(path: &Path) -> Result<Self, InferenceError> {
        let env = runtime(None)?;
        let fail = |reason: String| InferenceError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let session = Session::builder(env)
            .and_then(|mut b| b.commit_from_file(path))
            .map_err(|e| fail(e.to_string()))?;

        let [input] = session.inputs() else {
            return Err(fail(format!(
                "expected exactly one input, found {}",
                session.inputs().len()
            )));
        };
        let input_dims = match (input.dtype().tensor_type(), input.dtype().tensor_shape()) {
            (Some(TensorElementType::Float32), Some(shape)) if shape.len() == 3 => shape.to_vec(),
            _ => {
                return Err(fail(format!(
                    "input `{}` must be a float32 tensor [batch, steps, features], found {}",
                    input.name(),
                    input.dtype()
                )));
            }
        };
        let Some(output) = session.outputs().first() else {
            return Err(fail("model has no outputs".into()));
        };
        let output_width = match (output.dtype().tensor_type(), output.dtype().tensor_shape()) {
            (Some(TensorElementType::Float32), Some(shape)) if shape.len() >= 2 => shape[1..]
                .iter()
                .map(|d| usize::try_from(*d).ok())
                .product::<Option<usize>>(),
            _ => {
                return Err(fail(format!(
                    "output `{}` must be a float32 tensor [batch, …], found {}",
                    output.name(),
                    output.dtype()
                )));
            }
        };
        let (input_name, output_name) = (input.name().to_owned(), output.name().to_owned());
        tracing::debug!(
            model = %path.display(),
            input = %input_name,
            input_dims = ?input_dims,
            output = %output_name,
            "loaded ONNX model"
        );
        Ok(Self {
            session: Mutex::new(session),
            input_dims,
            input_name,
            output_name,
            output_width,
        })
    }

    /// Values per batch row of the output, when the model fixes them.
    pub fn output_width(&self) -> Option<usize> {
        self.output_width
    }

    /// Declared input dims (`-1` where the model leaves a dim free, e.g. batch).
    pub fn input_dims(&self) -> &[i64] {
        &self.input_dims
    }

    /// Runs the model on a `[batch, steps, features]` history, giving `[batch, outputs]`.
    pub fn predict(&self, history: ArrayView3<'_, f32>) -> Result<Array2<f32>, InferenceError> {
        let got = history.shape();
        // Checked here so a caller gets an error naming the dims, never a runtime failure.
        let fits = self
            .input_dims
            .iter()
            .zip(got)
            .all(|(&want, &have)| want < 0 || want as usize == have);
        if !fits {
            return Err(InferenceError::Shape(format!(
                "input `{}` expects {}, got {got:?}",
                self.input_name,
                fmt_dims(&self.input_dims)
            )));
        }
        // Never hand ONNX Runtime an empty tensor: its LSTM kernel aborts the whole process
        // (C++ `terminate`) on a zero-sized batch instead of returning an error.
        if got.contains(&0) {
            if let (0, Some(width)) = (got[0], self.output_width) {
                return Ok(Array2::zeros((0, width)));
            }
            return Err(InferenceError::Shape(format!(
                "input `{}` is empty ({got:?}); every dim must be at least 1",
                self.input_name
            )));
        }
        // `ort` needs a contiguous row-major buffer; this copies only if the view is strided.
        let history = history.as_standard_layout();
        let input = TensorRef::from_array_view(&history)?;

        // A panic while holding the lock cannot leave the session half-updated on our side.
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(ort::inputs![input])?;
        let forecast = outputs[self.output_name.as_str()].try_extract_array::<f32>()?;
        let out_shape = forecast.shape().to_vec();
        let width: usize = out_shape.iter().skip(1).product();
        let forecast = forecast
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((out_shape.first().copied().unwrap_or(0), width))
            .map_err(|_| {
                InferenceError::Shape(format!(
                    "output `{}` has shape {out_shape:?}, expected [batch, …]",
                    self.output_name
                ))
            })?;
        if forecast.nrows() != got[0] {
            return Err(InferenceError::Shape(format!(
                "output `{}` has {} rows for a batch of {}",
                self.output_name,
                forecast.nrows(),
                got[0]
            )));
        }
        Ok(forecast)
    }
}

fn fmt_dims(dims: &[i64]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|&d| if d < 0 { "?".to_owned() } else { d.to_string() })
        .collect();
    format!("[{}]", parts.join(", "))
}
