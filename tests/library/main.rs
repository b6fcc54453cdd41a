//! The library's model tests, in one binary: what the papers ask of the model and the sampler,
//! checked on small models. `parity` is the plain burn reference the fused paths are compared
//! with (shared with `cli/tests/wgpu.rs`).
//!
//! - `autoencoder`: the PixelCNN auto-encoder and its deconvolutional baselines;
//! - `cached_sampling`: the cached sampler's logits are the tensor model's, alone and in batches;
//! - `causality`: the autoregressive property, and no blind spot in the Gated PixelCNN;
//! - `loss`: the per-pixel cross-entropy and bits/dim, against hand computations;
//! - `sampling`: reproducible under a seed, greedy at temperature 0, given pixels kept;
//! - `spatial`: location-dependent conditioning, the map s = m(h).

mod autoencoder;
mod cached_sampling;
mod causality;
mod loss;
mod parity;
mod sampling;
mod spatial;
