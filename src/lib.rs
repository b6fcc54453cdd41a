//! # pixelcnn
//!
//! The Gated PixelCNN of van den Oord et al. 2016, *Conditional Image Generation with PixelCNN
//! Decoders* (arXiv 1606.05328), and its predecessor PixelCNN (arXiv 1601.06759), on burn:
//! models, training, likelihood evaluation and autoregressive sampling.

pub mod animation;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod evaluate;
pub mod loss;
pub mod model;
pub mod picture;
pub mod plot;
pub mod sample;
pub mod train;
