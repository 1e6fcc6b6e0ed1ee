//! Runs the shipped network's inference on `gridcast-kernels` instead of candle.
//!
//! candle's CPU convolution spends most of its time outside arithmetic on grids this
//! small (under 3% of peak FLOP/s, docs/benchmarks.md). [`KernelForward`] packs a
//! loaded model's weights once for the direct convolution in `gridcast_kernels::conv`
//! and is installed into the model with `NeuralModel::set_forward`, so every CPU
//! forecast step runs it. Training still uses candle, which has the gradients.

use candle_core::{Device, Tensor};
use gridcast_kernels::unet::{Unet, UnetLayout, Weights};
use gridcast_models::network::UNET2;
use gridcast_models::{ModelError, NeuralModel, features::NetworkForward};

/// The `unet2` network of one model, packed for the CPU kernels.
#[derive(Debug)]
pub struct KernelForward {
    unet: Unet,
}

impl KernelForward {
    /// Packs `model`'s parameters. Fails for a layout the kernels do not build.
    pub fn from_model(model: &NeuralModel) -> Result<KernelForward, ModelError> {
        let arch = &model.manifest().architecture;
        if arch.name != UNET2 {
            return Err(ModelError::Forward(format!(
                "architecture `{}` has no CPU kernel; only `{UNET2}` does",
                arch.name
            )));
        }
        let layout = UnetLayout {
            levels: arch.levels,
            width: arch.width,
            input_channels: arch.input_channels,
            output_channels: arch.output_channels,
        };
        let mut weights = Weights::new();
        for (name, tensor) in model.params() {
            let values = tensor.flatten_all()?.to_vec1::<f32>()?;
            weights.insert(name.clone(), (tensor.dims().to_vec(), values));
        }
        let unet = Unet::new(layout, &weights).map_err(|e| ModelError::Forward(e.to_string()))?;
        Ok(KernelForward { unet })
    }

    /// Returns the packed network, for benchmarks and tests.
    pub fn unet(&self) -> &Unet {
        &self.unet
    }
}

impl NetworkForward for KernelForward {
    fn forward(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        let (batch, _, n_lat, n_lon) = input.dims4()?;
        let values = input
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let output = self
            .unet
            .forward(&values, batch, n_lat, n_lon)
            .map_err(|e| ModelError::Forward(e.to_string()))?;
        let channels = self.unet.layout().output_channels;
        Ok(
            Tensor::from_vec(output, (batch, channels, n_lat, n_lon), &Device::Cpu)?
                .to_device(input.device())?,
        )
    }
}
