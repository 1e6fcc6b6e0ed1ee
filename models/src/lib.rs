//! The gridcast forecast models: a small U-Net in tendency form, the persistence and
//! climatology baselines behind one [`Forecaster`] trait, the manifest that describes
//! a weights file, and deterministic training with candle.

mod error;
pub mod evaluation;
pub mod features;
mod forecaster;
mod json_names;
pub mod linear;
pub mod manifest;
pub mod network;
mod neural;
mod training;
mod training_data;

pub use error::ModelError;
pub use forecaster::{Climatology, Forecaster, FrameShape, Persistence};
pub use json_names::json_type_names;
pub use manifest::{InputSpec, Manifest};
pub use neural::{DIVERGENCE_LIMIT, NeuralModel, load};
pub use training::{
    EpochLoss, LeadWeights, TrainConfig, TrainedModel, masked_mse, persistence_rmse_by_lead, train,
};
pub use training_data::TrainingData;
