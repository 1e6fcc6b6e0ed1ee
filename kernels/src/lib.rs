//! Numeric kernels on plain slices: masked normalisation, NaN-skipping statistics,
//! latitude-weighted verification scores (RMSE, ACC) over `[lat][lon]` fields, and a
//! CPU convolution with the `unet2` network built on it ([`conv`], [`unet`]).
//!
//! Missing values are NaN on input. Fields are row-major with latitude as the slow
//! axis, so cell `(i, j)` of an `n_lat x n_lon` field is at index `i * n_lon + j`.
//! Sums are accumulated in f64, row by row, and the row sums are added in row order,
//! so a result does not depend on the number of rayon threads.

pub mod conv;
mod normalize;
mod score;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
mod stats;
pub mod unet;

pub use normalize::{denormalize, normalize};
pub use score::{GridShape, acc, cos_lat_weights, rmse};
pub use stats::{MeanStd, nan_mean_std};

/// Errors of the kernels: every one names the lengths or values involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// Two slices that must have one element per grid cell differ in length.
    #[error("{what} has {actual} values but {expected} were expected; pass slices of equal length")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// A standard deviation that divides the data is zero, negative or not finite.
    #[error("standard deviation {std} is invalid: it must be finite and > 0")]
    InvalidStd { std: f32 },
    /// A latitude outside [-90, 90] degrees.
    #[error("latitude {lat_deg} degrees is outside [-90, 90]")]
    InvalidLatitude { lat_deg: f64 },
    /// Shapes, layouts or values a convolution kernel cannot take, named in the message.
    #[error("{0}")]
    InvalidArgument(String),
}

pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), KernelError> {
    if expected == actual {
        Ok(())
    } else {
        Err(KernelError::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}
