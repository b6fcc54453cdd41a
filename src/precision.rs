//! The precision of the model's matrix products: f32, as the paper trains (the default), or
//! bf16 operands with f32 accumulation on processors with AVX-512 BF16 (`--precision bf16`).
//!
//! Mixed precision as PyTorch's bf16 autocast does it on such processors: every product of the
//! convolutions (forward and backward) rounds its two factors to bf16 and accumulates in f32;
//! the weights, their gradients, the optimiser's state, the gates and the likelihood stay f32.
//! A precision holds for the call that asks for it and no longer: [`scoped`] turns it on for
//! the process, as PyTorch's autocast context does for its thread, and the guard it returns
//! restores what it found when dropped. Training takes its run's precision so
//! ([`crate::train::train`]), and `pixelcnn bench` its `--precision`; a GPU's backends compute
//! in f32 and ignore it. The kernel and why it pays are in `crate::ops` (docs/speed.md).

use serde::{Deserialize, Serialize};

/// The precision of the matrix products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
    "bf16 precision needs a processor with AVX-512 BF16, which this one lacks; f32 runs everywhere"
)]
pub struct Unsupported;

/// Whether this processor can run the bf16 products.
pub fn bf16_available() -> bool {
    crate::ops::bf16_available()
}

/// Runs the CPU's products in `precision` until the guard returned is dropped, which restores
/// the precision it found. Calls that overlap in one process share the setting.
pub fn scoped(precision: Precision) -> Result<Scoped, Unsupported> {
    if precision == Precision::Bf16 && !bf16_available() {
        return Err(Unsupported);
    }
    Ok(Scoped {
        previous: crate::ops::set_bf16_products(precision == Precision::Bf16),
    })
}

/// The precision the products run in now.
pub fn current() -> Precision {
    if crate::ops::bf16_products() {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// A precision in force: [`scoped`]'s guard.
#[must_use = "the precision holds only while the guard lives"]
#[derive(Debug)]
pub struct Scoped {
    previous: bool,
}

impl Drop for Scoped {
    fn drop(&mut self) {
        crate::ops::set_bf16_products(self.previous);
    }
}
