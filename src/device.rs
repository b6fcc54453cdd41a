//! Choosing where tensors live: burn 0.22 picks the backend at run time from a `Device`. The
//! pure-Rust CPU backend `flex` is always built; GPU backends are cargo features.

use burn::prelude::*;

/// The backends a user can ask for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DeviceChoice {
    /// Pure-Rust CPU backend (always available).
    Flex,
    /// GPU through WebGPU/Vulkan (cargo feature `wgpu`).
    Wgpu,
    /// NVIDIA GPU through CUDA (cargo feature `cuda`).
    Cuda,
}

/// Why a device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "this pixelcnn was built without the `{0}` feature; rebuild with `cargo build --release --features {0}`"
    )]
    NotBuilt(&'static str),
    #[error("no usable {0} device: {1}")]
    Unusable(&'static str, String),
}

/// The device a choice gave.
#[derive(Debug, Clone)]
pub struct Selected {
    pub device: Device,
    /// `Some(r)` when rank r of a data-parallel launch on this machine found no discrete GPU r
    /// of its own and shares the default one (`wgpu` only).
    pub shares_default_gpu: Option<usize>,
}

impl DeviceChoice {
    /// The inference device for this choice, checked to work.
    pub fn device(self) -> Result<Device, DeviceError> {
        self.select().map(|selected| selected.device)
    }

    /// The device for this choice, checked to work, and how it was found.
    pub fn select(self) -> Result<Selected, DeviceError> {
        let own = |device| Selected {
            device,
            shares_default_gpu: None,
        };
        match self {
            DeviceChoice::Flex => probe("flex", Device::flex()).map(own),
            DeviceChoice::Wgpu => wgpu_device(),
            DeviceChoice::Cuda => cuda_device().map(own),
        }
    }
}

/// The default GPU, or, as rank r > 0 of a data-parallel launch on this machine, its discrete
/// GPU r ([`crate::parallel::local_rank`]) if it has one (else the default one, which the ranks
/// then share, as [`Selected::shares_default_gpu`] says).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Selected, DeviceError> {
    use burn::tensor::DeviceKind;
    let rank = crate::parallel::local_rank();
    if rank > 0
        && let Ok(device) = probe("wgpu", Device::wgpu(DeviceKind::DiscreteGpu(rank)))
    {
        return Ok(Selected {
            device,
            shares_default_gpu: None,
        });
    }
    let device = probe("wgpu", Device::wgpu(DeviceKind::DefaultDevice))?;
    Ok(Selected {
        device,
        shares_default_gpu: (rank > 0).then_some(rank),
    })
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Selected, DeviceError> {
    Err(DeviceError::NotBuilt("wgpu"))
}

/// GPU 0, or, as rank r of a data-parallel launch on this machine, GPU r.
#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, DeviceError> {
    probe("cuda", Device::cuda(crate::parallel::local_rank()))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt("cuda"))
}

/// Runs one small computation on `device`: GPU runtimes start lazily and panic when no adapter
/// is found, which becomes a clear error here instead of a crash later. The runtime may panic on
/// its own thread: once the program has called [`crate::quiet_panic::install`], the first panic
/// message of any thread during the probe is the one reported. The CPU backend is probed too, so
/// that every device is checked the same way.
fn probe(name: &'static str, device: Device) -> Result<Device, DeviceError> {
    let sum = crate::quiet_panic::catch_quietly_anywhere(|| {
        Tensor::<1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar::<f32>()
    });
    match sum {
        Ok(3.0) => Ok(device),
        Ok(sum) => Err(DeviceError::Unusable(name, format!("1 + 2 gave {sum}"))),
        Err(message) => Err(DeviceError::Unusable(name, message)),
    }
}
