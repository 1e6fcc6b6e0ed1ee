use std::path::{Path, PathBuf};

/// Failure of a forecast run. `is_retryable` reports to a job runner whether another attempt
/// could succeed (I/O hiccups) or never will (corrupt input, a model that does not fit
/// the data).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request does not fit the catalog; callers should have validated first.
    #[error(transparent)]
    Request(#[from] crate::RequestError),
    /// The run was cancelled between rollout steps.
    #[error("forecast cancelled after {steps_done} of {steps_total} steps")]
    Cancelled { steps_done: u32, steps_total: u32 },
    /// Input data that cannot be read or decoded; another attempt would fail the same way.
    #[error("invalid input data in {path}: {message}")]
    CorruptInput { path: PathBuf, message: String },
    /// Reading input or writing output failed at the operating-system level. The
    /// message includes the OS error, which is therefore not returned from `source()`.
    #[error("I/O failed on {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A data or model root that is not a directory: missing, or (`is_file`) a file.
    #[error("{}", describe_missing_root(what, path, *is_file))]
    MissingRoot {
        what: &'static str,
        path: PathBuf,
        is_file: bool,
    },
    /// The model failed to load or run.
    #[error("model {model}: {message}")]
    Model { model: String, message: String },
}

fn describe_missing_root(what: &str, path: &Path, is_file: bool) -> String {
    if is_file {
        format!(
            "{what} root {} is a file, not a directory; set --{what}-root (or the matching \
             setting) to the directory that contains one subdirectory per {}",
            path.display(),
            if what == "data" { "dataset" } else { "model" }
        )
    } else {
        format!(
            "{what} directory {} does not exist; pass --{what}-root (or the matching \
             setting) or run from a directory that contains it",
            path.display()
        )
    }
}

impl EngineError {
    /// Returns whether another attempt of the same request could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Io { .. })
    }
}
