//! The precision of the model's matrix products: f32, as the paper trains (the default), or
//! bf16 operands with f32 accumulation on processors with AVX-512 BF16 (`--precision bf16`).
//!
//! Mixed precision as PyTorch's bf16 autocast does it on such processors: every product of the
//! convolutions (forward and backward) rounds its two factors to bf16 and accumulates in f32;
//! the weights, their gradients, the optimiser's state, the gates and the likelihood stay f32.
//! The setting is process-wide, like PyTorch's `set_float32_matmul_precision`: `pixelcnn
//! train` and `pixelcnn bench` set it from their `--precision` (and refuse bf16 on a GPU, whose
//! backends compute in f32 and ignore it). The kernel and why it pays are in the module that
//! computes the products (README, "Speed").

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// The precision of the matrix products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and accumulation.
    #[default]
    F32,
    /// bf16 operands (rounded to nearest even), f32 accumulation.
    Bf16,
}

/// bf16 asked for on a processor without AVX-512 BF16.
#[derive(Debug, thiserror::Error)]
#[error(
    "--precision bf16 needs a processor with AVX-512 BF16, which this one lacks; use --precision f32"
)]
pub struct Unsupported;

static BF16_PRODUCTS: AtomicBool = AtomicBool::new(false);

/// Whether this processor can run the bf16 products.
pub fn bf16_available() -> bool {
    crate::ops::bf16_available()
}

/// Sets the precision of every product the CPU backend computes from now on, in this process.
pub fn set(precision: Precision) -> Result<(), Unsupported> {
    if precision == Precision::Bf16 && !bf16_available() {
        return Err(Unsupported);
    }
    BF16_PRODUCTS.store(precision == Precision::Bf16, Ordering::Relaxed);
    Ok(())
}

/// The precision the products run in now.
pub fn current() -> Precision {
    if BF16_PRODUCTS.load(Ordering::Relaxed) {
        Precision::Bf16
    } else {
        Precision::F32
    }
}
