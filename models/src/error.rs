//! The error type of the model crate.

use std::path::PathBuf;

/// Errors of loading, running and training a forecast model.
///
/// Variants that wrap a library or OS error include its text in their message and do
/// not return it from `source()`, so a printed error chain states it once.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed, for example on mismatched shapes.
    #[error("tensor operation failed: {0}")]
    Tensor(candle_core::Error),
    /// A model file could not be read or written.
    #[error("cannot access {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `manifest.json` is not valid JSON or misses a field.
    #[error("manifest {path} is invalid: {error}; rewrite it with `gridcast train`")]
    ManifestJson {
        path: PathBuf,
        error: serde_json::Error,
    },
    /// The weights file does not hash to the SHA-256 the manifest records.
    #[error(
        "weights file {path} has SHA-256 {actual} but the manifest expects {expected}; \
         the file is corrupt or belongs to another model, so retrain or restore it"
    )]
    WeightsHash {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The weights file lacks a tensor or contains one of the wrong shape.
    #[error("weights file {path} is invalid: {reason}")]
    InvalidWeights { path: PathBuf, reason: String },
    /// The network was built without a parameter its layout needs.
    #[error("network parameter `{name}` is missing; the weights do not match the architecture")]
    MissingParameter { name: String },
    /// The caller's data does not match what the model was trained on.
    #[error("input does not match the model: {}", mismatches.join("; "))]
    InputMismatch { mismatches: Vec<String> },
    /// A `step` call received the wrong number of history states or shapes.
    #[error("invalid history: {0}")]
    InvalidHistory(String),
    /// The climatology has no field for the requested hour of day.
    #[error("no climatology for valid hour {hour_utc} UTC; available hours: {available:?}")]
    ClimatologyHour { hour_utc: u32, available: Vec<u32> },
    /// A forward pass installed with `NeuralModel::set_forward` failed.
    #[error("network forward pass failed: {0}")]
    Forward(String),
    /// The linear head's change is infinite or NaN, so its coefficients are too large
    /// for this input.
    #[error(
        "the linear head gave a non-finite change for this input; its coefficients in \
         tensor `linear` are too large, so retrain with `gridcast train`"
    )]
    NonFiniteHead,
    /// A forecast state so far from the training data that the model has diverged on
    /// this input or its weights are corrupt. The state is not returned.
    #[error(
        "the forecast of {variable} {}, so the model has diverged on this input or its \
         weights are corrupt; compare the weights file with the one trained, or retrain \
         with `gridcast train`",
        describe_deviation(*deviations, *limit)
    )]
    Diverged {
        variable: String,
        deviations: f32,
        limit: f32,
    },
    /// Training data or configuration that cannot be used.
    #[error("invalid training input: {0}")]
    InvalidTraining(String),
}

fn describe_deviation(deviations: f32, limit: f32) -> String {
    if deviations.is_nan() {
        "is NaN".to_owned()
    } else {
        // Plain notation up to a million, exponent form beyond, where plain would run
        // to dozens of digits.
        let amount = if deviations < 1e6 {
            format!("{deviations:.1}")
        } else {
            format!("{deviations:.2e}")
        };
        format!(
            "lies {amount} standard deviations from its training mean, beyond the limit of \
             {limit}"
        )
    }
}

impl From<candle_core::Error> for ModelError {
    fn from(error: candle_core::Error) -> Self {
        ModelError::Tensor(error)
    }
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            error,
        }
    }
}
