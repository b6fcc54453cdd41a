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

impl DeviceChoice {
    /// The inference device for this choice, checked to work.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            DeviceChoice::Flex => probe("flex", Device::flex()),
            DeviceChoice::Wgpu => wgpu_device(),
            DeviceChoice::Cuda => cuda_device(),
        }
    }
}

/// The default GPU, or, as rank r > 0 of a data-parallel launch on this machine, its discrete
/// GPU r ([`crate::parallel::local_rank`]) if it has one (else, with a warning, the default
/// one, which the ranks then share).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, DeviceError> {
    use burn::tensor::DeviceKind;
    let rank = crate::parallel::local_rank();
    if rank > 0 {
        match probe("wgpu", Device::wgpu(DeviceKind::DiscreteGpu(rank))) {
            Ok(device) => return Ok(device),
            Err(_) => eprintln!(
                "warning: rank {rank} of this machine finds no discrete GPU {rank}: it shares the default one"
            ),
        }
    }
    probe("wgpu", Device::wgpu(DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, DeviceError> {
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
/// its own thread, so the first panic message of any thread during the probe is the one reported
/// (see [`crate::quiet_panic`]). The CPU backend is probed too, so that every device is checked
/// the same way.
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
