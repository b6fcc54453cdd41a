//! The backend operations that make the model fast, apart from the model itself: the
//! convolutions of the two stacks as matrix products on channels-last maps
//! ([`channels_last`], over the column matrix of [`columns`] or, on the CPU, the shifted
//! products of [`window`], and the products of [`matmul`]),
//! the fused gate ([`gate`]) and the fused softmax likelihood ([`softmax_nll`]). Each is a burn
//! backend extension with a composed form for GPU backends and one parallel pass each way on the
//! CPU, checked against plain burn code by its unit tests and, as a whole, by the model's parity
//! tests against an independent reference of Figure 2.

#[cfg(target_arch = "x86_64")]
mod bf16;
pub(crate) mod channels_last;
pub(crate) mod columns;
pub(crate) mod gate;
pub(crate) mod matmul;
pub(crate) mod softmax_nll;
mod vector_exp;
pub(crate) mod window;

/// Whether the CPU's products run with bf16 operands now: set only through
/// the precision module's `scoped`, which checks the processor first and restores what it found.
static BF16_PRODUCTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the CPU's products run with bf16 operands now.
pub(crate) fn bf16_products() -> bool {
    BF16_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Turns the bf16 products on or off; returns whether they were on.
pub(crate) fn set_bf16_products(on: bool) -> bool {
    BF16_PRODUCTS.swap(on, std::sync::atomic::Ordering::Relaxed)
}

/// Whether this processor can run the products with bf16 operands.
pub(crate) fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return bf16::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A contiguous f32 tensor of the CPU backend, for the fused operations.
pub(crate) fn flex_tensor(
    values: Vec<f32>,
    shape: burn::tensor::Shape,
) -> burn::backend::flex::FlexTensor {
    burn::backend::flex::FlexTensor::new(
        burn::tensor::Bytes::from_elems(values),
        burn::backend::flex::Layout::contiguous(shape),
        burn::tensor::DType::F32,
    )
}

/// `len` values written by `fill(task, chunk)` over parallel chunks of `chunk_len` (the last may
/// be shorter). Each chunk is zeroed just before `fill` runs, while it is in cache: a zeroed
/// allocation would first clear all the memory in a separate pass.
fn par_filled(len: usize, chunk_len: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let mut values = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(task, chunk)| {
            chunk.fill(std::mem::MaybeUninit::new(0.0));
            // SAFETY: every element of the chunk was just initialised.
            let chunk = unsafe { &mut *(chunk as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
            fill(task, chunk);
        });
    // SAFETY: the chunks cover all `len` elements, and each was initialised.
    unsafe { values.set_len(len) };
    values
}
